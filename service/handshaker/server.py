"""The handshaker gRPC server: its services, health, background tasks, start and shutdown.

Safe by default: it listens on 127.0.0.1:50051 or a Unix socket (listening.py says
what else it accepts, and why). --health-listen adds a second, plaintext HOST:PORT
that serves only grpc.health.v1 (for a kubelet's gRPC probes, which cannot present a
client certificate): nothing else is reachable there, so it needs neither TLS nor
--insecure. Settings are in settings.py, the command's options in serve_args.py, the
log lines in logs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc

from handshaker import tracing
from handshaker.api import ConfigFactory, HandshakerServicer, HandshakeStats, metrics
from handshaker.api.identity import CallerIdentity
from handshaker.api.keyless import KeyOperationsServicer
from handshaker.api.validator import CertificateValidatorServicer
from handshaker.keystore import (
    DirectoryKeyStore,
    KeyStore,
    KeystoreError,
    pkcs11,
)
from handshaker.keystore.backends import directory_path, open_keystore
from handshaker.keystore.layout import SESSION_STORE_DIR
from handshaker.listening import (
    ListenError,
    check_listen,
    health_listener,
    listen,
    start_relay,
    unix_group_id,
    unix_principal,
    unix_relay,
)
from handshaker.logs import JsonFormatter, configure_logging, refuse
from handshaker.sessions import MemorySessionStore, SessionStore, SessionStoreUnavailable
from handshaker.sessions.redis_store import RedisSessionStore, is_redis_url, store_name
from handshaker.sessions.sealing import Sealer
from handshaker.settings import LOG_LEVELS, READY_FD_ENV, Settings
from handshaker.tls import compiled
from handshaker.unix_relay import UnixRelay

log = logging.getLogger("handshaker.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Handshaker"].full_name
# Every service the port serves besides health and reflection (all share its health).
SERVICE_NAMES = (
    SERVICE_NAME,
    kpb.DESCRIPTOR.services_by_name["KeyOperations"].full_name,
    kpb.DESCRIPTOR.services_by_name["CertificateValidator"].full_name,
)


class StoreError(ValueError):
    """The session store is misnamed or unreachable at start."""


async def _sweep(sessions: MemorySessionStore, interval: float) -> None:
    # Only the in-memory store expires here; a shared store's records carry a TTL.
    while True:
        await asyncio.sleep(interval)
        expired = sessions.expire_idle()
        if expired:
            log.info("idle sessions expired", extra={"fields": {"count": expired}})


async def _reload_keys(sealer: Sealer, interval: float) -> None:
    # A key rotated on the shared directory starts sealing here within `interval`.
    while True:
        await asyncio.sleep(interval)
        try:
            sealer.refresh()
        except (OSError, ValueError) as error:
            log.warning("session-store keys not reloaded", extra={"fields": {"error": str(error)}})


def session_store_keys(keystore: Path) -> Path:
    return keystore / SESSION_STORE_DIR / "keys"


async def open_session_store(settings: Settings) -> tuple[SessionStore, Sealer | None]:
    """The unary API's store, checked reachable; StoreError (one line) when it is not."""
    if settings.session_store == "memory":
        memory = MemorySessionStore(
            idle_timeout=settings.idle_timeout,
            max_sessions=settings.max_sessions,
            max_sessions_per_caller=settings.max_sessions_per_caller,
        )
        return memory, None
    if not is_redis_url(settings.session_store):
        raise StoreError(
            f"--session-store {store_name(settings.session_store)!r}: give memory, "
            "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH.sock"
        )
    if settings.keystore is None:
        raise StoreError(
            "--session-store redis seals its records under keys in a keystore directory: "
            "give --keystore dir:PATH"
        )
    sealer = Sealer(session_store_keys(settings.keystore))
    store = RedisSessionStore(
        settings.session_store,
        sealer,
        idle_timeout=settings.idle_timeout,
        max_sessions=settings.max_sessions,
        max_sessions_per_caller=settings.max_sessions_per_caller,
    )
    try:
        await store.ping()
    except SessionStoreUnavailable as error:
        await store.close()
        raise StoreError(str(error)) from None
    return store, sealer


async def _report(stats: HandshakeStats, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        counts = stats.take()
        if counts:
            log.info("handshakes", extra={"fields": {"seconds": interval, **counts}})


def keystore_problem(keystore: KeyStore) -> str | None:
    """Why the keystore cannot be read right now (None: it can)."""
    try:
        keystore.names()
    except KeystoreError as error:
        return str(error)
    problem: str | None = getattr(keystore, "problem", None)
    return problem


async def _backend_problems(keystore: KeyStore) -> dict[str, str]:
    for pool in pkcs11.pools():
        if pool.failure is not None:
            # Without traffic nothing would notice the token is back: try it ourselves.
            with contextlib.suppress(KeystoreError):
                await pool.run(pkcs11.probe)
    problems = pkcs11.unusable()
    problem = keystore_problem(keystore)
    if problem is not None:
        problems["keystore"] = problem
    return problems


async def _watch_backends(health_servicer: Any, keystore: KeyStore, interval: float = 1.0) -> None:
    """NOT_SERVING while the keystore cannot be read or a key backend (a PKCS#11 token)
    fails; probed every `interval` until it works again."""
    serving = True
    while True:
        await asyncio.sleep(interval)
        problems = await _backend_problems(keystore)
        if bool(problems) == serving:
            serving = not problems
            await _set_health(health_servicer, serving)
            log.warning(
                "key backends usable again" if serving else "key backend unusable",
                extra={"fields": {"backends": problems} if problems else {}},
            )


def _streams_store(settings: Settings, sessions: SessionStore) -> MemorySessionStore:
    """Streams stay in memory on this process, whichever store the unary API uses."""
    if isinstance(sessions, MemorySessionStore):
        return sessions
    return MemorySessionStore(
        idle_timeout=settings.idle_timeout,
        max_sessions=settings.max_sessions,
        max_sessions_per_caller=settings.max_sessions_per_caller,
    )


def _servicer(
    settings: Settings,
    keystore: KeyStore,
    sessions: SessionStore,
    streams: MemorySessionStore,
    relay: UnixRelay | None = None,
) -> HandshakerServicer:
    return HandshakerServicer(
        sessions,
        ConfigFactory(
            keystore,
            cache_bytes=settings.config_cache_bytes,
            max_trust_anchors=settings.max_trust_anchors,
            max_trust_anchors_bytes=settings.max_trust_anchors_bytes,
        ),
        idle_timeout=settings.idle_timeout,
        identity=CallerIdentity(
            unix_principal(settings), relay.peers if relay is not None else None
        ),
        streams=streams,
        handshake_timeout=settings.handshake_timeout,
        max_buffered_bytes=settings.max_buffered_bytes,
        max_frames=settings.max_frames_per_message,
    )


def _keyless_servicers(
    settings: Settings, keystore: KeyStore, servicer: HandshakerServicer
) -> tuple[KeyOperationsServicer, CertificateValidatorServicer]:
    """KeyOperations and CertificateValidator, with the handshakes' caller identity and
    trust stores."""
    return (
        KeyOperationsServicer(
            keystore,
            servicer.identity,
            max_streams_per_caller=settings.max_sessions_per_caller,
        ),
        CertificateValidatorServicer(keystore, servicer.configs.trust_store, servicer.identity),
    )


def _grpc_server(
    settings: Settings,
    servicer: HandshakerServicer,
    keyless: tuple[KeyOperationsServicer, CertificateValidatorServicer],
) -> tuple[grpc.aio.Server, Any]:
    """The gRPC server with the Handshaker, keyless, health and reflection services; the
    health servicer."""
    server = grpc.aio.server(
        interceptors=tracing.interceptors(settings.otlp_endpoint),
        options=[
            ("grpc.max_receive_message_length", 4 << 20),
            # Worker processes share one port; a lone process refuses a taken one.
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        ],
    )
    pb_grpc.add_HandshakerServicer_to_server(  # type: ignore[no-untyped-call]
        servicer,
        server,
    )
    kpb_grpc.add_KeyOperationsServicer_to_server(keyless[0], server)  # type: ignore[no-untyped-call]
    kpb_grpc.add_CertificateValidatorServicer_to_server(  # type: ignore[no-untyped-call]
        keyless[1], server
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server, health_servicer


def _log_listening(
    settings: Settings, address: str, health_address: str | None, relay: UnixRelay | None = None
) -> None:
    fields: dict[str, object] = {
        "address": address,
        "tls": settings.tls_cert is not None,
        "mtls": settings.tls_client_ca is not None,
        "session_store": store_name(settings.session_store),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    if settings.listen.startswith("unix-abstract:"):
        fields["unix_principal"] = str(unix_principal(settings))
    elif settings.listen.startswith("unix:"):
        # Each caller is unix:uid=UID (its gid's grants apply too), from SO_PEERCRED.
        fields["unix_principal"] = "peer uid (SO_PEERCRED)"
        if settings.unix_socket_group is not None:
            fields["unix_socket_group"] = unix_group_id(settings.unix_socket_group)
    if relay is not None:
        fields["grpc_socket"] = str(relay.private_socket)  # in the relay's 0700 directory
    if health_address is not None:
        fields["health_address"] = health_address
    # "compiled" (mypyc) or "python", and why: a slower engine is said at start.
    fields["engine"] = compiled.DESCRIPTION
    # The objects _freeze_heap took out of the cyclic collector's reach (0: in-process).
    fields["gc_frozen_objects"] = gc.get_freeze_count()
    if settings.worker_index is not None:
        # The supervisor says "listening" once every worker is up.
        fields["worker"] = settings.worker_index
        log.info("worker listening", extra={"fields": fields})
    else:
        log.info("listening", extra={"fields": fields})


async def _set_health(health_servicer: Any, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, status)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)


async def _watch_parent(stop: asyncio.Event, interval: float = 1.0) -> None:
    """A worker whose supervisor is gone (killed -9, say) drains and stops by itself."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(interval)
    log.warning("supervisor gone; stopping", extra={"fields": {"supervisor": parent}})
    stop.set()


def _announce_ready() -> None:
    """Tell the supervisor (through the pipe it handed down) that this worker listens."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None:
        with contextlib.suppress(OSError, ValueError):
            os.write(int(fd), b"1")
            os.close(int(fd))


async def serve(
    settings: Settings, keystore: KeyStore, *, ready: asyncio.Event | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight RPCs for up to grace_seconds."""
    check_listen(settings)
    sessions, sealer = await open_session_store(settings)
    streams = _streams_store(settings, sessions)
    relay = unix_relay(settings)
    try:
        servicer = _servicer(settings, keystore, sessions, streams, relay)
        keyless = _keyless_servicers(settings, keystore, servicer)
        server, health_servicer = _grpc_server(settings, servicer, keyless)
        address = listen(server, settings, relay)
        health_server, health_address = health_listener(settings, health_servicer)
    except BaseException:
        if relay is not None:
            relay.remove_private_dir()
        await sessions.close()
        raise
    observer = metrics.start(settings.metrics_listen, settings.worker_index is not None)
    if observer is not None:
        servicer.metrics = observer
        keyless[0].metrics = observer
    # Signal handlers go in before anyone can learn that we listen, so a SIGTERM
    # sent on the "listening" line already drains gracefully.
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await server.start()
    if relay is not None:
        try:
            await start_relay(relay)
        except ListenError:
            await server.stop(None)
            relay.remove_private_dir()
            await sessions.close()
            raise
    if health_server is not None:
        await health_server.start()
    await _set_health(health_servicer, True)
    _log_listening(settings, address, health_address, relay)
    tasks = [
        asyncio.create_task(_sweep(streams, min(1.0, settings.idle_timeout / 2))),
        asyncio.create_task(_report(servicer.stats, settings.stats_interval)),
        asyncio.create_task(_watch_backends(health_servicer, keystore)),
    ]
    if sealer is not None:
        tasks.append(asyncio.create_task(_reload_keys(sealer, 10.0)))
    if observer is not None:
        tasks.append(asyncio.create_task(observer.sample(keystore, sessions, streams)))
    if settings.worker_index is not None:
        tasks.append(asyncio.create_task(_watch_parent(stop)))
    _announce_ready()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await _drain(settings, server, health_servicer, tasks)
        await _close(relay, health_server, sessions, servicer.stats)


async def _drain(
    settings: Settings,
    server: grpc.aio.Server,
    health_servicer: Any,
    tasks: list[asyncio.Task[None]],
) -> None:
    """NOT_SERVING first (watchers learn it), then up to the grace for in-flight RPCs."""
    log.info("shutting down", extra={"fields": {"grace_seconds": settings.grace_seconds}})
    await health_servicer.enter_graceful_shutdown()
    for task in tasks:
        task.cancel()
    await server.stop(settings.grace_seconds)


async def _close(
    relay: UnixRelay | None,
    health_server: grpc.aio.Server | None,
    sessions: SessionStore,
    stats: HandshakeStats,
) -> None:
    """After the drain: the relay, the health port, the store, the token sessions, traces."""
    if relay is not None:
        await relay.close()  # after the grace: relayed RPCs finish through it
    if health_server is not None:
        await health_server.stop(None)
    await sessions.close()
    pkcs11.close_all()
    tracing.shutdown()
    counts = stats.take()
    if counts:
        log.info("handshakes", extra={"fields": counts})
    log.info("stopped")


class StartError(ValueError):
    """Something the service needs at start is missing or unusable (one line, exit 2)."""


def check_workers(settings: Settings) -> None:
    """Worker processes share one TCP port and hold no unary session of their own."""
    if settings.workers < 1:
        raise StartError("--workers must be at least 1 (or auto)")
    if settings.workers == 1 or settings.worker_index is not None:
        return
    if settings.listen.startswith(("unix:", "unix-abstract:")):
        raise StartError(
            f"--workers {settings.workers} needs a TCP --listen: worker processes share a port "
            "with SO_REUSEPORT, which a Unix socket does not have (run one process per socket)"
        )
    if settings.session_store == "memory":
        raise StartError(
            f"--workers {settings.workers} needs --session-store redis://...: with the memory "
            "store a unary session lives in one worker, and the next RPC may reach another"
        )


def _check_start(settings: Settings) -> None:
    check_listen(settings)
    check_workers(settings)
    tracing.check(settings.otlp_endpoint)
    metrics.check(settings.metrics_listen)
    pkcs11.configure(
        pkcs11.Pkcs11Settings(module_path=settings.pkcs11_module, sessions=settings.pkcs11_sessions)
    )


def run(settings: Settings) -> int:
    """The `handshaker serve` command: bootstrap the keystore, then serve (or supervise)."""
    JsonFormatter.worker = settings.worker_index
    try:
        configure_logging(LOG_LEVELS[settings.log_level], settings.audit_log)
    except OSError as error:
        return refuse(f"cannot open the audit log {settings.audit_log}: {error.strerror or error}")
    try:
        _check_start(settings)
        store = open_service_keystore(settings)
    except ValueError as error:  # ListenError, StartError, pkcs11's: each one line
        return refuse(str(error))
    if settings.workers > 1 and settings.worker_index is None:
        from handshaker import workers  # noqa: PLC0415 (only the supervisor needs it)

        return workers.supervise(settings)
    return _serve_until_stopped(settings, store)


def open_service_keystore(settings: Settings) -> KeyStore:
    """The keystore, bootstrapped and read once; StartError (one line) when it cannot be."""
    spec = settings.keystore_uri if settings.keystore_uri is not None else str(settings.keystore)
    try:
        keystore_path = directory_path(spec)
        if keystore_path is None:
            other = open_keystore(spec)
            log.info(
                "keystore ready", extra={"fields": {"keystore": spec, "credentials": other.names()}}
            )
            if sys.stderr.isatty() and settings.worker_index is None:
                print(f"handshaker: keystore {spec}", file=sys.stderr)
            return other
        return _open_directory(settings, keystore_path)
    except OSError as error:
        raise StartError(f"--keystore {spec} cannot be read: {error.strerror or error}") from None
    except KeystoreError as error:
        raise StartError(f"--keystore {spec}: {error}") from None


def _open_directory(settings: Settings, keystore_path: Path) -> DirectoryKeyStore:
    store = DirectoryKeyStore(keystore_path)
    ca_path = store.ensure_development_ca()
    log.info(
        "keystore ready",
        extra={
            "fields": {
                "keystore": str(keystore_path),
                "credentials": store.names(),
                "development_ca": str(ca_path) if ca_path.exists() else None,
            }
        },
    )
    if not store.policy_path.exists() and settings.worker_index is None:
        log.warning(
            "no policy file: every credential is denied until one is granted "
            "(handshaker keys allow NAME PRINCIPAL)",
            extra={"fields": {"policy": str(store.policy_path)}},
        )
    # A line for people at a terminal; a log collector gets only the JSON lines (the
    # "keystore ready" line above carries the same paths).
    if sys.stderr.isatty() and settings.worker_index is None:
        if ca_path.exists():
            print(
                f"handshaker: keystore {keystore_path}; development CA certificate at {ca_path} "
                "(trust it in clients of services that use the development credentials)",
                file=sys.stderr,
            )
        else:
            print(f"handshaker: keystore {keystore_path}", file=sys.stderr)
    return store


def run_event_loop(main: Callable[[], Coroutine[Any, Any, None]], choice: str = "auto") -> None:
    """Run main() on uvloop (libuv's loop) when chosen or, for auto, installed; else on
    asyncio's. Side by side under the same load, uvloop took 4-9% less service CPU per
    handshake and gave a lower p99 on every API (gRPC's poller hands each event to the
    loop, and uvloop's callbacks and readers cost less)."""
    if choice != "asyncio":
        try:
            uvloop: Any = importlib.import_module("uvloop")
        except ImportError:  # not on this platform (Windows), or not installed
            if choice == "uvloop":
                raise ValueError("--event-loop uvloop: uvloop is not installed") from None
        else:
            uvloop.run(main())
            return
    asyncio.run(main())


def _freeze_heap() -> None:
    """Move what the process has built so far out of the cyclic collector's reach.

    Modules, protobuf descriptors, gRPC and the keystore's certificates live as long
    as the process; frozen (gc.freeze), a full collection no longer walks them. Under
    load a full collection of the unfrozen heap held the event loop 10-19 ms, every
    handshake in flight with it; it now walks only what serving made. Garbage first,
    so none of it is kept.
    """
    gc.collect()
    gc.freeze()


def _serve_until_stopped(settings: Settings, store: KeyStore) -> int:
    _freeze_heap()
    try:
        run_event_loop(lambda: serve(settings, store), settings.event_loop)
    except ValueError as error:  # ListenError, StoreError: one line each
        return refuse(str(error))
    return 0
