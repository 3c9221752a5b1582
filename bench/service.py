"""Benchmark: server-role handshakes per second through one service process vs the engine.

The bench starts `handshaker serve` on 127.0.0.1 with a fresh keystore (its
development `localhost` credential), then runs server-role handshakes through it
from many concurrent callers, over the Handshake stream (one stream per
connection), the unary API (StartServer, Feed, Abort) and the Multiplex stream
(many connections per stream, frames batched).

The callers and their TLS clients are the load generator:
- `--load go` (the default when Go is installed): clients/go/cmd/loadgen, Go
  callers using the Go client library with crypto/tls as the TLS client. Cheap,
  so the cores this machine has go mostly to the service under test.
- `--load python`: asyncio callers in this process (grpc.aio, the Python
  client's multiplexer), with Python's ssl over MemoryBIO as the TLS client, or
  with `--peer engine` the engine's ClientConnection. Python's ssl client costs
  more per handshake than the service's server side, so this mode measures the
  load generator as much as the service.

The baseline, measured in the same run and rounds alternating with the service's:
the engine's server-side rate in this process with the very ServerConfig the
service builds, timing only the server's calls (both sides run in memory; the
client's calls are timed apart and reported as the client-side cost).

With redis-server on the machine (and unless --no-redis), a second service process
on the same keystore with `--session-store` on a redis-server started here (Unix
socket, no disk) runs the unary API in the same rounds: `redis_ratio` is its rate
over the memory store's (every unary step loads, restores, seals and saves).

With redis-server (and unless --no-workers), a `serve --workers 2` service on that Redis
runs the Handshake stream in the same rounds against the one-process service, both over
WORKER_CONNS connections (the kernel spreads connections, not RPCs, over the workers):
`workers2_ratio` is the two workers' rate over the one process's, and
`workers{1,2}_service_cpu_seconds_per_handshake` the service's CPU per handshake (the
process and all its children, from /proc/PID/stat).

The callers keep 64 handshakes in flight by default: a throughput figure needs
the service saturated (at 32, one service process was measured 84-87% busy on
the Multiplex stream, so the rate there also measures round trips).

The service process's CPU time per handshake (from /proc) is reported next to
the engine's server time, and the load generator's next to it. The last line
printed is one JSON object.

    python bench/service.py [--json] [--seconds S] [--rounds N] [--concurrency C]
                            [--load go|python] [--peer ssl|engine] [--no-redis] [--no-workers]

With `--hsm` it measures instead HSM-backed against file-backed handshakes: two
service processes, one serving a credential whose ECDSA P-256 key is in a SoftHSM2
token made for the run (`keys generate --in pkcs11:`), the other the same key type
from a file, with the same development CA, the same load and API, rounds
alternating. The file-backed service is the baseline.

    python bench/service.py --hsm [--hsm-api stream|unary|multiplex] [--hsm-tls 1.3|1.2]
                            [--pkcs11-sessions N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from handshaker.api import ConfigFactory
from handshaker.keystore import LOCAL, DirectoryKeyStore
from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    HandshakeComplete,
    NamedGroup,
    ServerConfig,
    ServerConnection,
)
from handshaker_client import AsyncHandshakerClient
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc

COMPLETE = pb.HANDSHAKE_STATE_COMPLETE
NEED_INPUT = pb.HANDSHAKE_STATE_NEED_INPUT
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the service process ------------------------------------------------------------------


class Service:
    """`handshaker serve` as a subprocess on 127.0.0.1; its log lines are drained and counted."""

    def __init__(self, keystore: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        command = [
            str(Path(sys.executable).parent / "handshaker"),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--keystore",
            str(keystore),
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.address = ""
        self.log_lines = 0
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._listening.wait(30):
            self.stop()
            raise RuntimeError("handshaker serve did not start listening")

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines += 1
            if not self.address and b'"listening"' in line:
                self.address = str(json.loads(line)["address"])
                self._listening.set()

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far of the service process and of its worker
        processes (`serve --workers N`: the supervisor's children)."""
        return sum(_process_cpu_seconds(pid) for pid in _with_descendants(self.process.pid))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.process.returncode


def _process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0  # gone meanwhile
    # After the command name: state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _with_descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        pending.extend(int(child) for child in children)
    return found


class RedisProcess:
    """redis-server on a Unix socket in `folder`, nothing on disk."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "redis.sock"
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", "0", "--unixsocket", str(self.socket),
                "--save", "", "--appendonly", "no", "--dir", str(folder),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# --- the engine baseline ------------------------------------------------------------------


@dataclass
class EngineTimes:
    handshakes: int = 0
    server_seconds: float = 0.0
    client_seconds: float = 0.0
    group: int = 0


def engine_handshake(
    client_config: ClientConfig, server_config: ServerConfig, times: EngineTimes
) -> None:
    """Both sides in memory; each side's calls timed on its own clock."""
    clock = time.perf_counter
    t0 = clock()
    client = ClientConnection(client_config)
    hello = client.data_to_send()
    t1 = clock()
    server = ServerConnection(server_config)
    server.receive_data(hello)
    flight = server.data_to_send()
    server.next_event()
    t2 = clock()
    client.receive_data(flight)
    finished = client.data_to_send()
    client_event = client.next_event()
    t3 = clock()
    server.receive_data(finished)
    server_event = server.next_event()
    server.data_to_send()
    t4 = clock()
    if not (
        isinstance(client_event, HandshakeComplete) and isinstance(server_event, HandshakeComplete)
    ):
        raise RuntimeError("engine handshake did not complete")
    times.handshakes += 1
    times.group = server_event.result.group
    times.client_seconds += (t1 - t0) + (t3 - t2)
    times.server_seconds += (t2 - t1) + (t4 - t3)


def engine_round(
    client_config: ClientConfig, server_config: ServerConfig, seconds: float
) -> EngineTimes:
    times = EngineTimes()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            engine_handshake(client_config, server_config, times)
    return times


def engine_paced_round(
    client_config: ClientConfig, server_config: ServerConfig, rate: float, seconds: float
) -> EngineTimes:
    """engine_round at `rate` handshakes per second, the process idle in between: what
    the same server work costs when the core rests between handshakes, as it does in
    the service at half rate (on a VM, a core that idles comes back slower)."""
    times = EngineTimes()
    interval = 1 / rate
    start = time.perf_counter()
    deadline = start + seconds
    while start < deadline:
        delay = start - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        engine_handshake(client_config, server_config, times)
        start += interval
    return times


# --- the TLS client the caller relays for -------------------------------------------------


class Peer:
    """The TLS client on the other end of the caller's socket, in memory."""

    def hello(self) -> bytes:
        raise NotImplementedError

    def finish(self, flight: bytes) -> bytes:
        """Take the server's flight; return the client's last flight once complete."""
        raise NotImplementedError


class EnginePeer(Peer):
    def __init__(self, config: ClientConfig) -> None:
        self._client = ClientConnection(config)

    def hello(self) -> bytes:
        return self._client.data_to_send()

    def finish(self, flight: bytes) -> bytes:
        self._client.receive_data(flight)
        if not isinstance(self._client.next_event(), HandshakeComplete):
            raise RuntimeError("the client did not complete")
        return self._client.data_to_send()


class SslPeer(Peer):
    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")

    def hello(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.do_handshake()
        return self._outgoing.read()

    def finish(self, flight: bytes) -> bytes:
        self._incoming.write(flight)
        self._tls.do_handshake()
        return self._outgoing.read()


PeerFactory = Callable[[], Peer]


# --- handshakes through the service -------------------------------------------------------


async def stream_handshake(stub: pb_grpc.HandshakerStub, new_peer: PeerFactory) -> float:
    """One server-role handshake on the Handshake stream; seconds from start to COMPLETE."""
    began = time.perf_counter()
    client = new_peer()
    call = stub.Handshake()
    await call.write(pb.HandshakeRequest(server=pb.ServerOptions(), in_bytes=client.hello()))
    step = (await call.read()).step
    if step.state != NEED_INPUT:
        raise RuntimeError(f"service answered the ClientHello with state {step.state}")
    await call.write(pb.HandshakeRequest(in_bytes=client.finish(step.out_bytes)))
    done = await call.read()
    elapsed = time.perf_counter() - began
    if done.step.state != COMPLETE or not done.keys.write.key:
        raise RuntimeError(f"service did not complete: {done.step.failure.reason}")
    await call.done_writing()
    return elapsed


async def unary_handshake(stub: pb_grpc.HandshakerStub, new_peer: PeerFactory) -> float:
    """One server-role handshake through StartServer and Feed, then Abort to free the session."""
    began = time.perf_counter()
    client = new_peer()
    started = await stub.StartServer(
        pb.StartServerRequest(
            options=pb.ServerOptions(), in_bytes=client.hello(), keys_in_response=True
        )
    )
    step = started.step
    if step.state != NEED_INPUT:
        raise RuntimeError(f"service answered the ClientHello with state {step.state}")
    done = await stub.Feed(
        pb.FeedRequest(session_id=step.session_id, in_bytes=client.finish(step.out_bytes))
    )
    elapsed = time.perf_counter() - began
    if done.step.state != COMPLETE or not done.keys.write.key:
        raise RuntimeError(f"service did not complete: {done.step.failure.reason}")
    await stub.Abort(pb.AbortRequest(session_id=step.session_id))
    return elapsed


class MultiplexHandshake:
    """Server-role handshakes on one shared Multiplex stream, through the Python client's
    multiplexer (which puts the frames that are ready together in one message)."""

    def __init__(self, address: str) -> None:
        self.client = AsyncHandshakerClient(address)
        self.options = pb.ServerOptions()

    async def __call__(self, stub: pb_grpc.HandshakerStub, new_peer: PeerFactory) -> float:
        began = time.perf_counter()
        client = new_peer()
        session = self.client.multiplexed_session(self.options)
        step = await session.start(client.hello())
        if step.state != NEED_INPUT:
            raise RuntimeError(f"service answered the ClientHello with state {step.state}")
        done = await session.feed(client.finish(step.out_bytes))
        elapsed = time.perf_counter() - began
        if done.state != COMPLETE or done.keys is None:
            raise RuntimeError(f"service did not complete: {done.failure}")
        return elapsed


Handshake = Callable[[pb_grpc.HandshakerStub, PeerFactory], Awaitable[float]]


@dataclass
class ServiceRound:
    handshakes: int = 0
    seconds: float = 0.0
    service_cpu_seconds: float = 0.0
    bench_cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.handshakes / self.seconds


async def service_round(
    stub: pb_grpc.HandshakerStub | list[pb_grpc.HandshakerStub],
    handshake: Handshake,
    *,
    new_peer: PeerFactory,
    service: Service,
    seconds: float,
    concurrency: int,
) -> ServiceRound:
    result = ServiceRound()
    began = time.perf_counter()
    deadline = began + seconds
    cpu_before = service.cpu_seconds()
    bench_before = time.process_time()

    # Callers spread over the stubs' connections (a --workers service spreads those).
    stubs = stub if isinstance(stub, list) else [stub]

    async def caller(mine: pb_grpc.HandshakerStub) -> None:
        while time.perf_counter() < deadline:
            result.latencies.append(await handshake(mine, new_peer))

    await asyncio.gather(*(caller(stubs[i % len(stubs)]) for i in range(concurrency)))
    result.seconds = time.perf_counter() - began
    result.service_cpu_seconds = service.cpu_seconds() - cpu_before
    result.bench_cpu_seconds = time.process_time() - bench_before
    result.handshakes = len(result.latencies)
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --- the run ------------------------------------------------------------------------------


APIS = ("stream", "unary", "multiplex")
# Open-loop rounds at half the saturated Multiplex rate, pooled for its p50 and p99.
PACED_ROUNDS = 4
GO_MODULE = Path(__file__).resolve().parent.parent / "clients" / "go"


class GoLoad:
    """clients/go/cmd/loadgen, built once into a temporary folder; one run is one round."""

    def __init__(self, folder: Path, service: Service, ca_file: Path, concurrency: int) -> None:
        self.binary = folder / "loadgen"
        subprocess.run(
            ["go", "build", "-o", str(self.binary), "./cmd/loadgen"], cwd=GO_MODULE, check=True
        )
        self.service = service
        self.ca_file = ca_file
        self.concurrency = concurrency
        self.group = 0
        self.conns = 1
        # The TLS version the Go clients speak ("1.3" or "1.2").
        self.tls = "1.3"

    def for_service(self, service: Service, conns: int = 1) -> GoLoad:
        """The same binary, driving another service process over `conns` connections."""
        load = object.__new__(GoLoad)
        load.__dict__.update(self.__dict__)
        load.service = service
        load.conns = conns
        return load

    def round(self, api: str, seconds: float, *, rate: float = 0.0) -> ServiceRound:
        """One run; with `rate`, open loop at that many handshakes per second."""
        cpu_before = self.service.cpu_seconds()
        began = time.perf_counter()
        run = subprocess.run(
            [
                str(self.binary),
                "-addr",
                self.service.address,
                "-ca",
                str(self.ca_file),
                "-api",
                api,
                "-concurrency",
                str(self.concurrency),
                "-conns",
                str(self.conns),
                "-duration",
                f"{seconds}s",
                "-rate",
                str(rate),
                "-tls",
                self.tls,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        cpu_seconds = self.service.cpu_seconds() - cpu_before
        if run.returncode != 0:
            raise RuntimeError(f"loadgen -api {api} failed: {run.stderr.strip()[-2000:]}")
        report = json.loads(run.stdout.strip().splitlines()[-1])
        if report["errors"]:
            raise RuntimeError(f"loadgen -api {api}: {report['errors']} handshakes failed")
        self.group = int(report["group"])
        result = ServiceRound(
            handshakes=int(report["handshakes"]),
            seconds=float(report["seconds"]),
            # The service's CPU over the whole run: a little more than the measured
            # window (process start, channel set-up), so per handshake it errs high.
            service_cpu_seconds=cpu_seconds,
            bench_cpu_seconds=float(report["cpu_seconds"]),
            latencies=[ms / 1000 for ms in report["latencies_ms"]],
        )
        if result.handshakes == 0 or time.perf_counter() - began > 10 * seconds + 30:
            raise RuntimeError(f"loadgen -api {api} ran no handshakes")
        return result


def half_rate_latency(
    go_load: GoLoad,
    rate: float,
    *,
    rounds: int,
    seconds: float,
    configs: tuple[ClientConfig, ServerConfig],
    engine_rounds: list[EngineTimes],
) -> dict[str, object]:
    """Multiplex open loop at `rate` (half the saturated rate), rounds pooled: p50, p99,
    each round's p99, the service's CPU per handshake, and the engine's paced cost."""
    # Several rounds: a p99 over one 2 s round (about 1,200 handshakes) rests on its
    # 12 slowest, and moved by several ms between runs.
    paced = [go_load.round("multiplex", seconds, rate=rate) for _ in range(rounds)]
    latencies = [latency for r in paced for latency in r.latencies]
    # The engine's server side at the same rate in this process, against its
    # back-to-back time: how much slower the machine runs the same work paced.
    engine_paced = engine_paced_round(*configs, rate, seconds)
    paced_server_ms = 1000 * engine_paced.server_seconds / engine_paced.handshakes
    back_to_back_ms = 1000 * statistics.median(
        t.server_seconds / t.handshakes for t in engine_rounds
    )
    return {
        "offered_per_s": round(rate, 1),
        "achieved_per_s": round(statistics.median(r.rate for r in paced), 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "handshakes": len(latencies),
        # Each paced round's own p99: how much one round's figure moves.
        "p99_ms_by_round": [round(1000 * percentile(r.latencies, 0.99), 2) for r in paced],
        # The service's CPU per handshake at this rate (at saturation it is
        # multiplex_service_cpu_ms_per_handshake): batching lost, caches cold.
        "service_cpu_ms_per_handshake": round(
            1000 * sum(r.service_cpu_seconds for r in paced) / len(latencies), 3
        ),
        "engine_server_ms_per_handshake_paced": round(paced_server_ms, 3),
        "engine_paced_over_back_to_back": round(paced_server_ms / back_to_back_ms, 3),
    }


def _peer_factory(
    args: argparse.Namespace, ca_file: Path, client_config: ClientConfig
) -> PeerFactory:
    """The TLS client of each handshake the Python load makes: Python's ssl or the engine."""
    if args.peer == "ssl":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(ca_file)
        return lambda: SslPeer(context)
    return lambda: EnginePeer(client_config)


def _baseline_client_config(
    args: argparse.Namespace, go_load: GoLoad | None, client_config: ClientConfig
) -> ClientConfig:
    """The baseline's client offers only the group the load's TLS clients negotiate, so
    both sides of the comparison do the same key exchange."""
    if go_load is not None:
        group = go_load.group
    elif args.peer == "ssl":
        group = NamedGroup.X25519  # Python's ssl (OpenSSL 3.0) offers no hybrid group
    else:
        group = client_config.key_share_groups[0]
    return dataclasses.replace(client_config, supported_groups=(group,), key_share_groups=(group,))


async def measure(
    args: argparse.Namespace,
    keystore: Path,
    service: Service,
    folder: Path,
    redis_service: Service | None = None,
    *,
    workers_service: Service | None = None,
) -> dict[str, object]:
    store = DirectoryKeyStore(keystore)
    ca_file = keystore / "dev-ca" / "ca.crt"
    dev_ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    client_config = ClientConfig(server_name="localhost", trust_anchors=(dev_ca,))
    # The very config the service builds for ServerOptions() on this keystore.
    server_config = ConfigFactory(store).server(pb.ServerOptions(), LOCAL)
    multiplex = MultiplexHandshake(service.address)
    python_handshakes: dict[str, Handshake] = {
        "stream": stream_handshake,
        "unary": unary_handshake,
        "multiplex": multiplex,
    }
    new_peer = _peer_factory(args, ca_file, client_config)
    go_load = GoLoad(folder, service, ca_file, args.concurrency) if args.load == "go" else None
    redis_load = (
        go_load.for_service(redis_service)
        if go_load is not None and redis_service is not None
        else None
    )

    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]

        redis_channel = grpc.aio.insecure_channel(redis_service.address) if redis_service else None
        redis_stub = (
            pb_grpc.HandshakerStub(redis_channel)  # type: ignore[no-untyped-call]
            if redis_channel is not None
            else None
        )
        # "unary_redis": the unary API on the service whose sessions are in Redis.
        apis = (*APIS, "unary_redis") if redis_service is not None else APIS
        # "stream_workers1"/"stream_workers2": the stream API over WORKER_CONNS connections
        # to one service process, and to a `--workers 2` service.
        fleet = WorkersContenders(service, workers_service, go_load)
        apis = (*apis, *fleet.targets)

        async def service_api_round(api: str, seconds: float) -> ServiceRound:
            if api in fleet.targets:
                return await fleet.round(api, seconds, args.concurrency, new_peer)
            target, target_stub, load = service, stub, go_load
            if api == "unary_redis":
                assert redis_service is not None and redis_stub is not None
                target, target_stub, load, api = redis_service, redis_stub, redis_load, "unary"
            if load is not None:
                return load.round(api, seconds)
            return await service_round(
                target_stub,
                python_handshakes[api],
                new_peer=new_peer,
                service=target,
                seconds=seconds,
                concurrency=args.concurrency,
            )

        for api in apis:
            await service_api_round(api, 0.5)
        client_config = _baseline_client_config(args, go_load, client_config)
        group = client_config.key_share_groups[0]
        if engine_round(client_config, server_config, 0.3).group != group:
            raise RuntimeError(f"the baseline did not negotiate group {group:#06x}")

        engine_rounds: list[EngineTimes] = []
        service_rounds: dict[str, list[ServiceRound]] = {api: [] for api in apis}
        for number in range(args.rounds):
            engine_rounds.append(engine_round(client_config, server_config, args.seconds))
            for api in apis:
                service_rounds[api].append(await service_api_round(api, args.seconds))
            if not args.json:
                engine = engine_rounds[-1]
                print(
                    f"round {number + 1}: engine server side "
                    f"{engine.handshakes / engine.server_seconds:.0f}/s; service "
                    + ", ".join(
                        f"{api} {rounds[-1].rate:.0f}/s" for api, rounds in service_rounds.items()
                    ),
                    file=sys.stderr,
                )

        # Latency at half the saturated Multiplex rate, open loop (Go load only).
        half_rate: dict[str, object] | None = None
        if go_load is not None:
            saturated = statistics.median(r.rate for r in service_rounds["multiplex"])
            half_rate = half_rate_latency(
                go_load,
                saturated / 2,
                rounds=max(PACED_ROUNDS, args.rounds),
                seconds=args.seconds,
                configs=(client_config, server_config),
                engine_rounds=engine_rounds,
            )

        if redis_channel is not None:
            await redis_channel.close(None)
        await fleet.close()
    await multiplex.client.close()
    per_api = _per_api(service_rounds)
    result = _figures(per_api, engine_rounds, half_rate)
    result.update(
        {
            "load": args.load,
            "group": NamedGroup(group).name,
            "peer": "go crypto/tls" if args.load == "go" else args.peer,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "round_seconds": args.seconds,
            "cores": os.cpu_count(),
            "service_log_lines": service.log_lines,
            "python": sys.version.split()[0],
        }
    )
    for api, figures in per_api.items():
        for name, value in figures.items():
            result[f"{api}_{name}"] = round(
                value, 3 if "cpu" in name else 1 if "per_s" in name else 2
            )
    return result


def _per_api(service_rounds: dict[str, list[ServiceRound]]) -> dict[str, dict[str, float]]:
    """Each API's rate (median round), p50/p99 over all its handshakes, CPU per handshake."""
    per_api: dict[str, dict[str, float]] = {}
    for api, rounds in service_rounds.items():
        latencies = [latency for r in rounds for latency in r.latencies]
        handshakes = sum(r.handshakes for r in rounds)
        per_api[api] = {
            "handshakes_per_s": statistics.median(r.rate for r in rounds),
            "p50_ms": 1000 * percentile(latencies, 0.50),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "service_cpu_ms_per_handshake": 1000
            * sum(r.service_cpu_seconds for r in rounds)
            / handshakes,
            "bench_process_cpu_ms_per_handshake": 1000
            * sum(r.bench_cpu_seconds for r in rounds)
            / handshakes,
        }
    return per_api


def _over(
    per_api: dict[str, dict[str, float]], top: str, bottom: str, figure: str = "handshakes_per_s"
) -> float | None:
    """per_api[top][figure] / per_api[bottom][figure]; None when either did not run."""
    if top not in per_api or bottom not in per_api:
        return None
    return round(per_api[top][figure] / per_api[bottom][figure], 3)


def _figures(
    per_api: dict[str, dict[str, float]],
    engine_rounds: list[EngineTimes],
    half_rate: dict[str, object] | None,
) -> dict[str, object]:
    """The headline figures: the best API against the engine, and the ratios."""
    engine_rate = statistics.median(t.handshakes / t.server_seconds for t in engine_rounds)
    client_ms = statistics.median(1000 * t.client_seconds / t.handshakes for t in engine_rounds)
    best = max(APIS, key=lambda api: per_api[api]["handshakes_per_s"])
    service_rate = per_api[best]["handshakes_per_s"]
    engine_server_ms = 1000 / engine_rate
    workers_cpu = {
        name: round(per_api[api]["service_cpu_ms_per_handshake"] / 1000, 6)
        if api in per_api
        else None
        for name, api in (("workers2", "stream_workers2"), ("workers1", "stream_workers1"))
    }
    return {
        "benchmark": "server_role_handshakes_through_one_service_process",
        "service_handshakes_per_s": round(service_rate, 1),
        "engine_handshakes_per_s": round(engine_rate, 1),
        "ratio": round(service_rate / engine_rate, 3),
        "best_api": best,
        "p50_ms": round(per_api[best]["p50_ms"], 2),
        "p99_ms": round(per_api[best]["p99_ms"], 2),
        # Multiplex at half its saturated rate, open loop: the latency a caller sees
        # with headroom left (target p99 < 10 ms).
        "multiplex_half_rate": half_rate,
        "engine_server_ms_per_handshake": round(engine_server_ms, 3),
        "engine_client_ms_per_handshake": round(client_ms, 3),
        # Service CPU per handshake against the engine's server time: the service's
        # overhead with the client's share of the cores taken out.
        "cpu_ratio": round(
            engine_server_ms / min(f["service_cpu_ms_per_handshake"] for f in per_api.values()), 3
        ),
        # The unary API with sessions in Redis over the same API on the memory store.
        "redis_ratio": _over(per_api, "unary_redis", "unary"),
        "redis_cpu_ratio": _over(per_api, "unary", "unary_redis", "service_cpu_ms_per_handshake"),
        # Two worker processes on one port over one (the stream API, the same connections).
        "workers2_ratio": _over(per_api, "stream_workers2", "stream_workers1"),
        # The service's CPU (the supervisor and every worker, from /proc) per handshake.
        "workers2_service_cpu_seconds_per_handshake": workers_cpu["workers2"],
        "workers1_service_cpu_seconds_per_handshake": workers_cpu["workers1"],
    }


WORKER_CONNS = 8


class WorkersContenders:
    """The stream API over WORKER_CONNS connections: to the one-process service, and to
    the `--workers 2` service (the kernel spreads connections, not RPCs, over workers)."""

    def __init__(
        self, service: Service, workers_service: Service | None, go_load: GoLoad | None
    ) -> None:
        self.channels: list[grpc.aio.Channel] = []
        self.targets: dict[str, tuple[Service, list[pb_grpc.HandshakerStub], GoLoad | None]] = {}
        if workers_service is None:
            return
        for name, target in (("stream_workers1", service), ("stream_workers2", workers_service)):
            load = go_load.for_service(target, WORKER_CONNS) if go_load is not None else None
            self.targets[name] = (target, self._stubs(target.address), load)

    def _stubs(self, address: str) -> list[pb_grpc.HandshakerStub]:
        stubs = []
        for _ in range(WORKER_CONNS):
            # A subchannel pool of its own: a connection of its own.
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            self.channels.append(channel)
            stubs.append(pb_grpc.HandshakerStub(channel))  # type: ignore[no-untyped-call]
        return stubs

    async def round(
        self, name: str, seconds: float, concurrency: int, new_peer: PeerFactory
    ) -> ServiceRound:
        target, stubs, load = self.targets[name]
        if load is not None:
            return load.round("stream", seconds)
        return await service_round(
            stubs,
            stream_handshake,
            new_peer=new_peer,
            service=target,
            seconds=seconds,
            concurrency=concurrency,
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)


# --- HSM-backed against file-backed ------------------------------------------------------

HSM_PIN = "bench-pin-1234"
HSM_TOKEN = "bench"


def make_softhsm_token(folder: Path) -> dict[str, str]:
    """A SoftHSM2 token for this run in its own directory; the environment that reaches it."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SystemExit("--hsm needs SoftHSM2: apt-get install softhsm2")
    tokens = folder / "tokens"
    tokens.mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(conf), "HANDSHAKER_PKCS11_PIN": HSM_PIN}
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            HSM_TOKEN,
            "--so-pin",
            "so-" + HSM_PIN,
            "--pin",
            HSM_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return env


def _summary(rounds: list[ServiceRound]) -> dict[str, float]:
    latencies = [latency for r in rounds for latency in r.latencies]
    handshakes = sum(r.handshakes for r in rounds)
    return {
        "handshakes_per_s": round(statistics.median(r.rate for r in rounds), 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "service_cpu_ms_per_handshake": round(
            1000 * sum(r.service_cpu_seconds for r in rounds) / handshakes, 3
        ),
    }


async def measure_hsm(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    token_env = make_softhsm_token(folder)
    extra = ["--max-sessions-per-caller", str(max(1000, 4 * args.concurrency))]
    file_keystore = folder / "file-keystore"
    services: dict[str, Service] = {}
    try:
        # The file-backed service makes the development CA and its `localhost` (ECDSA P-256).
        services["file"] = Service(file_keystore, extra)
        hsm_keystore = folder / "hsm-keystore"
        hsm_keystore.mkdir(mode=0o700)
        # The same CA for both, so one TLS client configuration trusts both services.
        shutil.copytree(file_keystore / "dev-ca", hsm_keystore / "dev-ca")
        subprocess.run(
            [
                str(Path(sys.executable).parent / "handshaker"),
                "keys",
                "generate",
                "localhost",
                "--san",
                "DNS:localhost",
                "--san",
                "IP:127.0.0.1",
                "--in",
                f"pkcs11:token={HSM_TOKEN}",
                "--key-type",
                "ecdsa-p256",
                "--allow",
                "local",
                "--default",
                "--keystore",
                str(hsm_keystore),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **token_env},
        )
        services["hsm"] = Service(
            hsm_keystore, [*extra, "--pkcs11-sessions", str(args.pkcs11_sessions)], env=token_env
        )
        ca_file = file_keystore / "dev-ca" / "ca.crt"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        version = ssl.TLSVersion.TLSv1_2 if args.hsm_tls == "1.2" else ssl.TLSVersion.TLSv1_3
        context.minimum_version = context.maximum_version = version
        context.load_verify_locations(ca_file)

        def new_peer() -> Peer:
            return SslPeer(context)

        loads: dict[str, Callable[[float], Awaitable[ServiceRound]]] = {}
        channels = []
        multiplexers: list[MultiplexHandshake] = []
        for kind, service in services.items():
            (folder / kind).mkdir(exist_ok=True)
            if args.load == "go":
                go_load = GoLoad(folder / kind, service, ca_file, args.concurrency)
                go_load.tls = args.hsm_tls

                async def go_round(seconds: float, load: GoLoad = go_load) -> ServiceRound:
                    return load.round(args.hsm_api, seconds)

                loads[kind] = go_round
            else:
                channel = grpc.aio.insecure_channel(service.address)
                channels.append(channel)
                stub = pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]
                handshakes: dict[str, Handshake] = {
                    "stream": stream_handshake,
                    "unary": unary_handshake,
                }
                if args.hsm_api == "multiplex":
                    multiplex = MultiplexHandshake(service.address)
                    multiplexers.append(multiplex)
                    handshakes["multiplex"] = multiplex
                handshake = handshakes[args.hsm_api]

                async def python_round(
                    seconds: float,
                    stub: pb_grpc.HandshakerStub = stub,
                    handshake: Handshake = handshake,
                    service: Service = service,
                ) -> ServiceRound:
                    return await service_round(
                        stub,
                        handshake,
                        new_peer=new_peer,
                        service=service,
                        seconds=seconds,
                        concurrency=args.concurrency,
                    )

                loads[kind] = python_round
        for kind in services:
            await loads[kind](0.5)
        rounds: dict[str, list[ServiceRound]] = {kind: [] for kind in services}
        for number in range(args.rounds):
            for kind in services:
                rounds[kind].append(await loads[kind](args.seconds))
            if not args.json:
                print(
                    f"round {number + 1}: "
                    + ", ".join(f"{kind} {r[-1].rate:.0f}/s" for kind, r in rounds.items()),
                    file=sys.stderr,
                )
        for channel in channels:
            await channel.close(None)
        for multiplexer in multiplexers:
            await multiplexer.client.close()
    finally:
        codes = {kind: service.stop() for kind, service in services.items()}
    file_figures = _summary(rounds["file"])
    hsm_figures = _summary(rounds["hsm"])
    result: dict[str, object] = {
        "benchmark": "hsm_backed_against_file_backed_server_handshakes",
        "hsm_handshakes_per_s": hsm_figures["handshakes_per_s"],
        "file_handshakes_per_s": file_figures["handshakes_per_s"],
        "ratio": round(hsm_figures["handshakes_per_s"] / file_figures["handshakes_per_s"], 3),
        # What a token signature costs the service process: the rate hides it while the
        # machine, not the service, is the limit.
        "cpu_ratio": round(
            hsm_figures["service_cpu_ms_per_handshake"]
            / file_figures["service_cpu_ms_per_handshake"],
            3,
        ),
        **{f"hsm_{name}": value for name, value in hsm_figures.items()},
        **{f"file_{name}": value for name, value in file_figures.items()},
        "key_type": "ecdsa-p256",
        "tls": args.hsm_tls,
        "token": "SoftHSM2",
        "pkcs11_sessions": args.pkcs11_sessions,
        "api": args.hsm_api,
        "load": args.load,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "round_seconds": args.seconds,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "service_exit_codes": codes,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for each contender")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="handshakes in flight (default 64: enough to keep one service process busy, so "
        "the rate is its capacity rather than a round-trip limit)",
    )
    parser.add_argument(
        "--load",
        choices=("go", "python"),
        default="go" if shutil.which("go") else "python",
        help="the load generator: Go callers with crypto/tls, or Python ones here",
    )
    parser.add_argument(
        "--peer",
        choices=("ssl", "engine"),
        default="ssl",
        help="the TLS client Python callers relay for (with --load python)",
    )
    parser.add_argument(
        "--no-redis",
        action="store_true",
        help="skip the unary API on a Redis session store (redis_ratio)",
    )
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="skip `serve --workers 2` against one process (workers2_ratio; needs redis-server)",
    )
    parser.add_argument(
        "--hsm",
        action="store_true",
        help="measure HSM-backed (a SoftHSM2 token key) against file-backed handshakes",
    )
    parser.add_argument("--hsm-api", choices=APIS, default="stream", help="the API for --hsm")
    parser.add_argument(
        "--hsm-tls", choices=("1.3", "1.2"), default="1.3", help="the TLS version for --hsm"
    )
    parser.add_argument(
        "--pkcs11-sessions", type=int, default=4, help="the HSM service's --pkcs11-sessions"
    )
    args = parser.parse_args(argv)

    if args.hsm:
        with tempfile.TemporaryDirectory(prefix="handshaker-bench-hsm-") as folder:
            print(json.dumps(asyncio.run(measure_hsm(args, Path(folder)))))
        return 0
    with tempfile.TemporaryDirectory(prefix="handshaker-bench-") as folder:
        keystore = Path(folder) / "keystore"
        caps = ["--max-sessions-per-caller", str(max(1000, 4 * args.concurrency))]
        service = Service(keystore, caps)
        redis: RedisProcess | None = None
        redis_service: Service | None = None
        workers_service: Service | None = None
        try:
            if not (args.no_redis and args.no_workers) and shutil.which("redis-server"):
                redis = RedisProcess(Path(folder))
            if redis is not None and not args.no_redis:
                redis_service = Service(keystore, [*caps, "--session-store", redis.url])
            if redis is not None and not args.no_workers:
                # More than one worker needs the shared store (streams stay in each worker).
                workers_service = Service(
                    keystore, [*caps, "--session-store", redis.url, "--workers", "2"]
                )
            result = asyncio.run(
                measure(
                    args,
                    keystore,
                    service,
                    Path(folder),
                    redis_service,
                    workers_service=workers_service,
                )
            )
        finally:
            code = service.stop()
            if workers_service is not None:
                result_workers_code = workers_service.stop()
            if redis_service is not None:
                result_redis_code = redis_service.stop()
            if redis is not None:
                redis.stop()
        result["service_exit_code"] = code
        if redis_service is not None:
            result["redis_service_exit_code"] = result_redis_code
        if workers_service is not None:
            result["workers_service_exit_code"] = result_workers_code
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
