"""The handshaker gRPC server: listening, channel security, health, reflection, shutdown.

Safe by default: it listens on 127.0.0.1:50051 or a Unix socket. A TCP address
that is not loopback needs TLS on the gRPC channel (mutual TLS when a client CA
is given) unless the operator says --insecure explicitly. A Unix socket is created
owner-only (0600), or 0660 for the group given with --unix-socket-group, by the
service's own relay (unix_relay.py), which names each caller by its uid and gid
(SO_PEERCRED) and hands the connection to gRPC on a private socket. --health-listen
adds a second, plaintext HOST:PORT that serves only grpc.health.v1 (for a kubelet's
gRPC probes, which cannot present a client certificate): nothing else is reachable
there, so it needs neither TLS nor --insecure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import importlib
import ipaddress
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
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
from handshaker.api import options as option_limits
from handshaker.api import servicer as servicer_limits
from handshaker.api.audit import audit_log
from handshaker.api.identity import CallerIdentity
from handshaker.api.keyless import KeyOperationsServicer
from handshaker.api.validator import CertificateValidatorServicer
from handshaker.channel_tls import ReloadingCredentials
from handshaker.keystore import (
    LOCAL,
    DirectoryKeyStore,
    KeyStore,
    KeystoreError,
    Principal,
    pkcs11,
)
from handshaker.keystore.backends import directory_path, open_keystore
from handshaker.keystore.directory import SESSION_STORE_DIR
from handshaker.sessions import MemorySessionStore, SessionStore, SessionStoreUnavailable
from handshaker.sessions.redis_store import RedisSessionStore, is_redis_url, store_name
from handshaker.sessions.sealing import Sealer
from handshaker.unix_relay import UnixRelay

log = logging.getLogger("handshaker.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Handshaker"].full_name
# Every service the port serves besides health and reflection (all share its health).
SERVICE_NAMES = (
    SERVICE_NAME,
    kpb.DESCRIPTOR.services_by_name["KeyOperations"].full_name,
    kpb.DESCRIPTOR.services_by_name["CertificateValidator"].full_name,
)
DEFAULT_LISTEN = "127.0.0.1:50051"
# The pipe a worker reports "listening" on to its supervisor (workers.py).
READY_FD_ENV = "HANDSHAKER_READY_FD"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class ListenError(ValueError):
    """The listen address is malformed, or not allowed without TLS."""


class StoreError(ValueError):
    """The session store is misnamed or unreachable at start."""


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    keystore: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    idle_timeout: float = 10.0
    max_sessions: int = 10_000
    max_sessions_per_caller: int = 1_000
    grace_seconds: float = 5.0
    # "auto": uvloop when it is installed, else asyncio's own loop (run_event_loop).
    event_loop: str = "auto"
    log_level: str = "info"
    stats_interval: float = 60.0
    unix_socket_group: str | None = None
    # "memory", or redis://HOST:PORT/DB, rediss://..., unix:///path.sock
    session_store: str = "memory"
    # The keystore URI (dir:PATH, memory:, a plugin's); None: the `keystore` directory.
    keystore_uri: str | None = None
    pkcs11_module: str | None = None
    pkcs11_sessions: int = pkcs11.DEFAULT_SESSIONS
    handshake_timeout: float = servicer_limits.DEFAULT_HANDSHAKE_TIMEOUT
    max_buffered_bytes: int = servicer_limits.DEFAULT_MAX_BUFFERED_BYTES
    max_frames_per_message: int = servicer_limits.DEFAULT_MAX_FRAMES
    config_cache_bytes: int = option_limits.DEFAULT_CONFIG_CACHE_BYTES
    max_trust_anchors: int = option_limits.DEFAULT_MAX_TRUST_ANCHORS
    max_trust_anchors_bytes: int = option_limits.DEFAULT_MAX_TRUST_ANCHORS_BYTES
    # "stderr", "off", or a file path.
    audit_log: str = "stderr"
    # Service processes on one port (workers.py); the supervisor's workers have an index.
    workers: int = 1
    worker_index: int | None = None
    reuse_port: bool = False
    # HOST:PORT for Prometheus metrics (api/metrics.py); an OTLP gRPC endpoint for traces.
    metrics_listen: str | None = None
    otlp_endpoint: str | None = None
    # HOST:PORT of a plaintext listener serving only grpc.health.v1; None: none.
    health_listen: str | None = None


def is_loopback(listen: str) -> bool:
    """Whether `listen` (HOST:PORT, [V6]:PORT or unix:PATH) stays on this machine."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ListenError(f"listen address {listen!r} is not HOST:PORT or unix:PATH")
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ListenError(f"listen host {host!r} is not an IP address or localhost") from None


def check_listen(settings: Settings) -> None:
    uses_tls = settings.tls_cert is not None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ListenError("--tls-cert and --tls-key go together")
    if settings.tls_client_ca is not None and not uses_tls:
        raise ListenError("--tls-client-ca needs --tls-cert and --tls-key")
    if settings.unix_socket_group is not None:
        if not settings.listen.startswith("unix:"):
            raise ListenError("--unix-socket-group needs --listen unix:PATH")
        unix_group_id(settings.unix_socket_group)
    if not is_loopback(settings.listen) and not uses_tls and not settings.insecure:
        raise ListenError(
            f"refusing to listen on {settings.listen} without TLS: it is not a loopback address. "
            "Give --tls-cert/--tls-key (and --tls-client-ca for mutual TLS), or --insecure."
        )
    if settings.health_listen is not None:
        if settings.health_listen.startswith(("unix:", "unix-abstract:")):
            raise ListenError("--health-listen takes HOST:PORT (a kubelet probes TCP)")
        is_loopback(settings.health_listen)  # raises on a malformed address


def unix_group_id(group: str) -> int:
    """The gid of a group given by name or number."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"--unix-socket-group: no group named {group!r}") from None


def unix_principal(settings: Settings) -> Principal:
    """Who every caller on an abstract Unix socket is (a Unix path names each by its uid)."""
    if settings.listen.startswith("unix-abstract:"):
        return LOCAL  # no file, no mode: anyone on this host (in this network namespace)
    return Principal.unix_uid(os.getuid())


def unix_path(settings: Settings) -> Path | None:
    """The socket file of --listen unix:PATH (None: not a Unix path)."""
    if not settings.listen.startswith("unix:"):
        return None
    return Path(settings.listen.removeprefix("unix:").removeprefix("//"))


def _unix_relay(settings: Settings) -> UnixRelay | None:
    path = unix_path(settings)
    if path is None:
        return None
    group = None
    if settings.unix_socket_group is not None:
        group = unix_group_id(settings.unix_socket_group)
    return UnixRelay(
        path,
        group=group,
        max_connections=settings.max_sessions,
        max_connections_per_uid=settings.max_sessions_per_caller,
    )


async def _start_relay(relay: UnixRelay) -> None:
    try:
        await relay.start()
    except OSError as error:
        # Taken, or not a member of the group, say: refuse to serve on a socket we could
        # not set up.
        raise ListenError(
            f"cannot listen on unix:{relay.path}: {error.strerror or error}"
        ) from None


def _add_port(
    server: grpc.aio.Server,
    settings: Settings,
    credentials: grpc.ServerCredentials | None,
    relay: UnixRelay | None = None,
) -> int:
    address = relay.grpc_address if relay is not None else settings.listen

    def add() -> int:
        try:
            if credentials is None:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, credentials)
        except RuntimeError:
            # grpc says only "Failed to bind"; the usual cause is a taken address.
            raise ListenError(
                f"cannot listen on {settings.listen}: the address is in use "
                "(another handshaker serve?) or not available on this host"
            ) from None

    if relay is None:
        return add()
    # The private socket, in the relay's 0700 directory, and owner-only itself too.
    previous = os.umask(0o177)
    try:
        return add()
    finally:
        os.umask(previous)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    # In a worker process (workers.py), every line says which worker wrote it.
    worker: int | None = None
    # The time's whole-second part, formatted once a second: every handshake writes
    # an audit line, and strftime cost more than a microsecond each time.
    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry: dict[str, Any] = {
            "time": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO, audit: str = "stderr") -> None:
    # Nothing we write names a source line, thread or process: the Logging HOWTO's
    # "Optimization" settings skip collecting them on every record (every handshake
    # writes an audit line: 40 us a line before, 29 us after).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    configure_audit_log(audit)


def configure_audit_log(target: str) -> None:
    """The audit trail's own stream: stderr, a file (appended, 0600), or off.

    It never propagates to the root logger, so --log-level does not silence it and
    a file target keeps it out of the operational log.
    """
    audit_log.propagate = False
    audit_log.setLevel(logging.INFO)
    for old in audit_log.handlers:
        old.close()
    if target == "off":
        audit_log.handlers[:] = [logging.NullHandler()]
        audit_log.disabled = True
        return
    audit_log.disabled = False
    handler: logging.Handler
    if target == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = Path(target)
        # Created owner-only: the trail says who used which key, from where.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    audit_log.handlers[:] = [handler]


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The channel's TLS, reloaded when its files change (channel_tls.py); None: plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return ReloadingCredentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    ).credentials()


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


def _listen(server: grpc.aio.Server, settings: Settings, relay: UnixRelay | None = None) -> str:
    """Bind the listener; the address as bound (a port 0 resolved)."""
    port = _add_port(server, settings, _server_credentials(settings), relay)
    if port == 0 and not settings.listen.startswith("unix"):
        raise ListenError(
            f"cannot listen on {settings.listen}: the address is in use "
            "(another handshaker serve?) or not available on this host"
        )
    address = settings.listen
    if not address.startswith("unix") and address.endswith(":0"):
        address = f"{address.rpartition(':')[0]}:{port}"
    return address


def _health_listener(
    settings: Settings, health_servicer: Any
) -> tuple[grpc.aio.Server | None, str | None]:
    """The --health-listen server: its own, so the Handshaker service (and reflection)
    are not reachable on its plaintext port; it shares the one health servicer."""
    if settings.health_listen is None:
        return None, None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if settings.reuse_port else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(settings.health_listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ListenError(
            f"cannot listen on {settings.health_listen} (--health-listen): the address is "
            "in use or not available on this host"
        )
    return server, f"{settings.health_listen.rpartition(':')[0]}:{port}"


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
    relay = _unix_relay(settings)
    try:
        servicer = _servicer(settings, keystore, sessions, streams, relay)
        keyless = _keyless_servicers(settings, keystore, servicer)
        server, health_servicer = _grpc_server(settings, servicer, keyless)
        address = _listen(server, settings, relay)
        health_server, health_address = _health_listener(settings, health_servicer)
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
            await _start_relay(relay)
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
        if relay is not None:
            await relay.close()  # after the grace: relayed RPCs finish through it
        if health_server is not None:
            await health_server.stop(None)
        await sessions.close()
        pkcs11.close_all()
        tracing.shutdown()
        counts = servicer.stats.take()
        if counts:
            log.info("handshakes", extra={"fields": counts})
        log.info("stopped")


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


def _refuse(message: str) -> int:
    """One line saying why serve cannot start; exit status 2.

    Plain text for a person at a terminal; a JSON line otherwise, so stderr carries
    only JSON lines for a log collector.
    """
    if sys.stderr.isatty():
        print(f"handshaker serve: {message}", file=sys.stderr)
    else:
        print(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "level": "error",
                    "logger": "handshaker.server",
                    "message": f"handshaker serve: {message}",
                }
            ),
            file=sys.stderr,
        )
    return 2


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
        return _refuse(f"cannot open the audit log {settings.audit_log}: {error.strerror or error}")
    try:
        _check_start(settings)
        store = open_service_keystore(settings)
    except ValueError as error:  # ListenError, StartError, pkcs11's: each one line
        return _refuse(str(error))
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


def _serve_until_stopped(settings: Settings, store: KeyStore) -> int:
    try:
        run_event_loop(lambda: serve(settings, store), settings.event_loop)
    except ValueError as error:  # ListenError, StoreError: one line each
        return _refuse(str(error))
    return 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `handshaker serve` in groups (the keystore option is the CLI's)."""
    _add_listen_arguments(
        parser.add_argument_group("listening", "where and how callers reach the service")
    )
    _add_bounds_arguments(
        parser.add_argument_group("bounds", "what a caller or a peer can make the service hold")
    )
    _add_keys_arguments(
        parser.add_argument_group("keys", "PKCS#11 tokens (the keystore itself is --keystore)")
    )
    _add_fleet_arguments(
        parser.add_argument_group(
            "fleet, logs and metrics",
            "sessions shared by replicas, worker processes, the audit trail, metrics and traces",
        )
    )


def _add_listen_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT|unix:PATH",
        help=f"where to listen (default {DEFAULT_LISTEN}; a non-loopback address needs TLS). "
        "unix:PATH is created 0600 (see --unix-socket-group) and each caller on it is "
        "unix:uid=UID of its own uid (SO_PEERCRED), with the grants of unix:gid=GID of its "
        "gid too; unix-abstract:NAME has no permissions and its callers are local",
    )
    group.add_argument(
        "--health-listen",
        metavar="HOST:PORT",
        help="also serve gRPC health checking (grpc.health.v1, nothing else) in plaintext "
        "here, for probes such as a kubelet's that cannot do mutual TLS (default: off)",
    )
    group.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="TLS certificate chain for the gRPC channel (default: none, plaintext gRPC)",
    )
    group.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="its private key (with --tls-cert)"
    )
    group.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="require client certificates from this CA (mutual TLS; default: not required)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without TLS (never in production; default off)",
    )
    group.add_argument(
        "--unix-socket-group",
        metavar="GROUP",
        help="with --listen unix:PATH: let this group connect too (socket 0660, not 0600). "
        "Each caller is still named by its own uid; grant unix:gid=GID to let every caller "
        "whose (primary) gid it is use a credential (default: owner only)",
    )


def _add_bounds_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="free a session, and end a Handshake or Multiplex stream, that gets no bytes "
        "for this long (default 10)",
    )
    group.add_argument(
        "--handshake-timeout",
        type=float,
        default=servicer_limits.DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="end a handshake that has not completed this long after its start, however "
        "many bytes arrive (DEADLINE_EXCEEDED; default %(default)g)",
    )
    group.add_argument(
        "--max-buffered-bytes",
        type=int,
        default=servicer_limits.DEFAULT_MAX_BUFFERED_BYTES,
        metavar="BYTES",
        help="fail a handshake (illegal_parameter) whose peer makes the service hold more "
        "than this of unfinished records and messages (default %(default)d)",
    )
    group.add_argument(
        "--max-frames-per-message",
        type=int,
        default=servicer_limits.DEFAULT_MAX_FRAMES,
        metavar="N",
        help="frames one Multiplex message may carry; the extras get INVALID_ARGUMENT "
        "(default %(default)d)",
    )
    group.add_argument(
        "--config-cache-bytes",
        type=int,
        default=option_limits.DEFAULT_CONFIG_CACHE_BYTES,
        metavar="BYTES",
        help="memory (estimated) for configs cached by their options (default %(default)d)",
    )
    group.add_argument(
        "--max-trust-anchors",
        type=int,
        default=option_limits.DEFAULT_MAX_TRUST_ANCHORS,
        metavar="N",
        help="certificates a request's inline trust anchors may hold (default %(default)d)",
    )
    group.add_argument(
        "--max-trust-anchors-bytes",
        type=int,
        default=option_limits.DEFAULT_MAX_TRUST_ANCHORS_BYTES,
        metavar="BYTES",
        help="size of a request's inline trust anchors PEM (default %(default)d)",
    )
    group.add_argument(
        "--max-sessions",
        type=int,
        default=10_000,
        metavar="N",
        help="cap on sessions in total (default %(default)d)",
    )
    group.add_argument(
        "--max-sessions-per-caller",
        type=int,
        default=1_000,
        metavar="N",
        help="cap on sessions per caller, and separately on its open Multiplex streams "
        "(default %(default)d)",
    )


def _add_keys_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--pkcs11-module",
        metavar="PATH",
        help="PKCS#11 module for key URIs without module-path (default: SoftHSM2's, if found). "
        f"The PIN comes from the URI's pin-source=file:PATH or ${pkcs11.PIN_ENV}, never a flag",
    )
    group.add_argument(
        "--pkcs11-sessions",
        type=int,
        default=pkcs11.DEFAULT_SESSIONS,
        metavar="N",
        help="logged-in sessions (and threads) per PKCS#11 token: how many token operations "
        f"run at once (default {pkcs11.DEFAULT_SESSIONS})",
    )


def _add_fleet_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--session-store",
        default="memory",
        metavar="memory|redis://HOST:PORT/DB|rediss://...|unix:///PATH.sock",
        help="where the unary API's sessions live between RPCs (default memory; Redis lets "
        "replicas share them, sealed under keys in <keystore>/session-store/keys)",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N|auto",
        help="service processes on the one port (SO_REUSEPORT), under a supervisor that "
        "restarts one that dies; auto: one per CPU this process may use. More than 1 needs "
        "--session-store redis://... and a TCP --listen (default 1: no supervisor)",
    )
    group.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop each service process runs on: uvloop (less CPU per "
        "handshake), asyncio (the standard library's), or auto: uvloop when it is "
        "installed (default %(default)s)",
    )
    group.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight RPCs may still run before they are cancelled "
        "(default %(default)g)",
    )
    group.add_argument(
        "--audit-log",
        default="stderr",
        metavar="FILE|stderr|off",
        help="where the audit trail goes: one JSON line per private-key use, logger "
        "handshaker.audit (default stderr)",
    )
    group.add_argument(
        "--log-level",
        choices=tuple(LOG_LEVELS),
        default="info",
        help="debug adds a line per completed handshake (default info: failures, and the "
        "stats line)",
    )
    group.add_argument(
        "--stats-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often to log the handshake counts (default 60)",
    )
    group.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
    )
    group.add_argument(
        "--otlp-endpoint",
        metavar="HOST:PORT",
        help="trace the RPCs with OpenTelemetry, exported over OTLP/gRPC to this collector "
        "(needs handshaker[otel]; default: off)",
    )


def serve_command(args: argparse.Namespace, keystore: Path, keystore_uri: str | None = None) -> int:
    return run(
        Settings(
            listen=args.listen,
            keystore=keystore,
            keystore_uri=keystore_uri,
            pkcs11_module=args.pkcs11_module,
            pkcs11_sessions=args.pkcs11_sessions,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            insecure=args.insecure,
            idle_timeout=args.idle_timeout,
            max_sessions=args.max_sessions,
            max_sessions_per_caller=args.max_sessions_per_caller,
            log_level=args.log_level,
            stats_interval=args.stats_interval,
            unix_socket_group=args.unix_socket_group,
            session_store=args.session_store,
            handshake_timeout=args.handshake_timeout,
            max_buffered_bytes=args.max_buffered_bytes,
            max_frames_per_message=args.max_frames_per_message,
            config_cache_bytes=args.config_cache_bytes,
            max_trust_anchors=args.max_trust_anchors,
            max_trust_anchors_bytes=args.max_trust_anchors_bytes,
            audit_log=args.audit_log,
            health_listen=args.health_listen,
            workers=args.workers,
            grace_seconds=args.shutdown_grace,
            event_loop=args.event_loop,
            metrics_listen=args.metrics_listen,
            otlp_endpoint=args.otlp_endpoint,
        )
    )


def _workers(text: str) -> int:
    """--workers N, or auto: the CPUs this process may run on."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or auto: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return count
