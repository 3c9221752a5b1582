"""`serve --workers N`: worker processes on one port under a supervisor (real processes).

Two workers on one Redis serve handshakes on the one port; a worker killed with
SIGKILL is restarted while the other keeps serving; SIGTERM drains them all and
the supervisor exits 0; the memory store and a Unix socket are refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from redis_kit import RedisServer
from service_kit import (
    COMPLETE,
    HANDSHAKER,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    handshaker_stub,
    relay,
    short_socket_dir,
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def fleet(start_service: StartService, redis: RedisServer, *args: str) -> ServiceProcess:
    return start_service("--workers", "2", "--session-store", redis.url, *args)


def listening(service: ServiceProcess) -> dict[str, object]:
    return next(
        e for e in service.log_entries() if e.get("message") == "listening" and "workers" in e
    )


def pids(service: ServiceProcess) -> list[int]:
    found = listening(service)["pids"]
    assert isinstance(found, list)
    return [int(p) for p in found]


def client_options(service: ServiceProcess) -> pb.ClientOptions:
    return pb.ClientOptions(server_name="localhost", trust_anchors_pem=service.dev_ca_pem)


def handshake_on_new_connection(service: ServiceProcess, api: str = "stream") -> None:
    """One handshake, both sides in the service, over a fresh TCP connection."""
    with grpc.insecure_channel(
        service.address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        stub = handshaker_stub(channel)
        make: Callable[..., UnaryHandshake | StreamHandshake] = (
            StreamHandshake if api == "stream" else UnaryHandshake
        )
        with make(stub, client_options(service)) as c, make(stub, pb.ServerOptions()) as s:
            last_c, last_s = relay(c, s)
        assert (last_c.state, last_s.state) == (COMPLETE, COMPLETE)


def handshake_reconnecting(service: ServiceProcess, api: str = "stream") -> None:
    """One handshake on a fresh connection, reconnecting (up to 3 times) when the connection
    itself is reset: around a worker's death and restart the kernel may reset a connection
    it had already queued on that worker's socket, and a client reconnects."""
    for attempt in range(3):
        try:
            handshake_on_new_connection(service, api)
            return
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE or attempt == 2:  # type: ignore[attr-defined]
                raise
            time.sleep(0.2)


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def workers_that_completed(service: ServiceProcess) -> set[object]:
    return {
        e.get("worker") for e in service.log_entries() if e.get("message") == "handshake complete"
    }


def test_two_workers_serve_handshakes_on_one_port(
    start_service: StartService, redis_server: RedisServer
) -> None:
    service = fleet(start_service, redis_server, "--log-level", "debug")
    assert len(set(pids(service))) == 2
    worker_lines = [e for e in service.log_entries() if e.get("message") == "worker listening"]
    assert {e["address"] for e in worker_lines} == {service.address}
    # Each connection goes to one worker; 24 of them reach both but with odds 2^-23.
    for number in range(24):
        handshake_on_new_connection(service, "stream" if number % 2 else "unary")
    wait_for(lambda: workers_that_completed(service) == {0, 1}, timeout=10)


def test_a_killed_worker_is_restarted_and_the_port_keeps_serving(
    start_service: StartService, redis_server: RedisServer
) -> None:
    service = fleet(start_service, redis_server)
    victim, survivor = pids(service)
    os.kill(victim, signal.SIGKILL)
    # Until the kernel has closed the victim's listening socket a new connection may
    # still land on it; once it is gone (or a zombie) only live workers get them.
    wait_for(lambda: _dead(victim))
    # The other worker holds the port meanwhile.
    for _ in range(4):
        handshake_reconnecting(service)

    def restarted() -> bool:
        return any(e.get("message") == "worker restarted" for e in service.log_entries())

    wait_for(restarted)
    exited = next(
        e for e in service.log_entries() if e.get("message") == "worker exited; restarting it"
    )
    assert exited["pid"] == victim and exited["signal"] == "SIGKILL"
    assert float(str(exited["restart_in"])) > 0
    new_pid = next(
        int(str(e["pid"])) for e in service.log_entries() if e.get("message") == "worker restarted"
    )
    assert new_pid not in (victim, survivor)
    os.kill(new_pid, 0)  # alive
    for _ in range(6):
        handshake_reconnecting(service, "unary")
    assert service.stop() == 0


def test_sigterm_drains_every_worker_and_exits_0(
    start_service: StartService, redis_server: RedisServer
) -> None:
    service = fleet(start_service, redis_server, "--shutdown-grace", "2")
    workers = pids(service)
    handshake_on_new_connection(service, "unary")
    with service.channel() as channel:
        UnaryHandshake(handshaker_stub(channel), client_options(service)).step()
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=20) == 0
    entries = service.log_entries()
    assert sum(1 for e in entries if e.get("message") == "stopped" and "worker" in e) == 2
    assert entries[-1]["message"] == "stopped"
    assert entries[-1]["worker_exit_codes"] == [0, 0]
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HANDSHAKER), "serve", "--keystore", str(tmp_path / "keystore"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_workers_with_the_memory_store_are_refused(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--workers 2 needs --session-store redis://" in lines[0]
    assert "Traceback" not in result.stderr


def test_workers_on_a_unix_socket_are_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    directory = short_socket_dir()
    result = _serve(
        tmp_path,
        "--listen",
        f"unix:{directory}/h.sock",
        "--workers",
        "2",
        "--session-store",
        redis_server.url,
    )
    assert result.returncode == 2
    assert "needs a TCP --listen" in result.stderr and "SO_REUSEPORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_workers_auto_is_one_per_usable_cpu(
    start_service: StartService, redis_server: RedisServer
) -> None:
    service = start_service("--workers", "auto", "--session-store", redis_server.url)
    expected = len(os.sched_getaffinity(0))
    if expected == 1:
        assert "worker listening" not in [e.get("message") for e in service.log_entries()]
    else:
        assert len(pids(service)) == expected
    handshake_on_new_connection(service, "unary")
