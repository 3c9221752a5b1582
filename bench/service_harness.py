"""What bench/service.py drives and measures with: the service process (and its CPU
from /proc), a redis-server, the engine's baseline rounds in this process, and the
loads (Python callers over each API, or the Go load generator, closed or open loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    HandshakeComplete,
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
        return sum(process_cpu_seconds(pid) for pid in _with_descendants(self.process.pid))

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


def process_cpu_seconds(pid: int) -> float:
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
    # The session store's own process (redis-server), when the round used one.
    store_cpu_seconds: float = 0.0
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


# --- the Go load ---------------------------------------------------------------------------


APIS = ("stream", "unary", "multiplex")
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
