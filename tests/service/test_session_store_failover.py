"""Failover: three `handshaker serve` replicas share one Redis and one keystore, every
unary call of a handshake goes to another replica, and then each replica is killed
(SIGKILL) after its call, before the next one. Handshakes against `openssl s_server`
(client role) and `openssl s_client` (server role) still complete, and application
data protected with the session keys crosses both ways.

A killed replica's process is gone: the next replica rebuilds the connection from the
sealed snapshot in Redis in a fresh process, which is the point of the exercise.
"""

from __future__ import annotations

import functools
import shutil
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from interop.peers import PeerProcess
from pki import PkiFiles, TestPKI
from redis_kit import RedisServer
from service_kit import (
    COMPLETE,
    NEED_INPUT,
    RecordLayer,
    ServiceProcess,
    StartService,
    Step,
    UnaryHandshake,
    handshaker_stub,
)

PING = b"ping through the fleet\n"
PONG = b"pong from openssl\n"
REPLICAS = 3
_T = TypeVar("_T")


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("the openssl command is missing: apt-get install openssl")
    return path


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


class Fleet:
    """Replicas on one Redis and one keystore; each call goes to another replica than the
    last. With `kill`, the replica that took a call is SIGKILLed before the next call (a
    new one is started when none would be left)."""

    def __init__(
        self, start_service: StartService, redis: RedisServer, keystore: Path, *, kill: bool
    ) -> None:
        self._spawn = lambda: start_service("--session-store", redis.url, keystore=keystore)
        self.live: list[ServiceProcess] = [self._spawn() for _ in range(REPLICAS)]
        self._stubs: dict[int, pb_grpc.HandshakerStub] = {}
        self._kill = kill
        self._next = 0
        self._last: ServiceProcess | None = None
        self.calls: list[int] = []  # the pid that served each call
        self.killed = 0

    def call(self, handshake: UnaryHandshake, do: Callable[[], _T]) -> _T:
        last = self._last
        if last is not None and self._kill:
            last.process.send_signal(signal.SIGKILL)
            last.process.wait(15)
            self.live.remove(last)
            self.killed += 1
            if not self.live:
                self.live.append(self._spawn())
        service = self.live[self._next % len(self.live)]
        if service is last:
            self._next += 1
            service = self.live[self._next % len(self.live)]
        self._next += 1
        stub = self._stubs.get(service.process.pid)
        if stub is None:
            stub = self._stubs[service.process.pid] = handshaker_stub(service.channel())
        handshake.stub = stub
        self._last = service
        self.calls.append(service.process.pid)
        return do()


def drive(
    fleet: Fleet, handshake: UnaryHandshake, sock: socket.socket, first_in: bytes
) -> tuple[pb.SessionKeys, bytes]:
    """Run the handshake between `sock` and the fleet; the keys and the bytes read past it."""
    data = first_in
    step: Step = fleet.call(handshake, functools.partial(handshake.step, data))
    while True:
        if step.out_bytes:
            sock.sendall(step.out_bytes)
        if step.state != NEED_INPUT:
            break
        data = sock.recv(65536)
        assert data, "the peer closed during the handshake"
        step = fleet.call(handshake, functools.partial(handshake.step, data))
    assert step.state == COMPLETE, step.failure
    leftover = data[step.bytes_consumed :]
    keys = fleet.call(handshake, handshake.keys)
    return keys, leftover


def assert_each_call_on_another_replica(fleet: Fleet) -> None:
    assert len(fleet.calls) >= 3  # start, at least one Feed, GetKeys
    assert all(a != b for a, b in zip(fleet.calls, fleet.calls[1:], strict=False)), fleet.calls


@contextmanager
def s_server(openssl: str, pki: TestPKI, pki_files: PkiFiles) -> Iterator[tuple[PeerProcess, int]]:
    files = pki_files[pki.servers["ecdsa-p256"]]
    args = [
        openssl, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_3",
        "-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True) as peer:
        yield peer, int(peer.wait_for(r"^ACCEPT .*:(\d+)\s*$")[1])


@pytest.mark.parametrize("kill", [False, True], ids=["round-robin", "sigkill-after-each-call"])
def test_client_role_through_the_fleet_against_s_server(
    *,
    openssl: str,
    pki: TestPKI,
    pki_files: PkiFiles,
    start_service: StartService,
    redis_server: RedisServer,
    tmp_path: Path,
    kill: bool,
) -> None:
    fleet = Fleet(start_service, redis_server, tmp_path / "keystore", kill=kill)
    options = pb.ClientOptions(
        server_name="localhost", trust_anchors_pem=Path(pki_files.root_ca).read_text()
    )
    with (
        s_server(openssl, pki, pki_files) as (peer, port),
        socket.create_connection(("127.0.0.1", port), timeout=15) as sock,
    ):
        handshake = UnaryHandshake(handshaker_stub(grpc.insecure_channel("unused")), options)
        keys, leftover = drive(fleet, handshake, sock, b"")
        records = RecordLayer(keys)
        records.feed(leftover)
        sock.sendall(records.seal(PING))
        peer.wait_for(r"^ping through the fleet$")
        peer.write(PONG)
        assert records.read_from(sock) == PONG
    assert_each_call_on_another_replica(fleet)
    if kill:
        assert fleet.killed == len(fleet.calls) - 1


@pytest.mark.parametrize("kill", [False, True], ids=["round-robin", "sigkill-after-each-call"])
def test_server_role_through_the_fleet_for_s_client(
    *,
    openssl: str,
    start_service: StartService,
    redis_server: RedisServer,
    tmp_path: Path,
    kill: bool,
) -> None:
    fleet = Fleet(start_service, redis_server, tmp_path / "keystore", kill=kill)
    ca_file = tmp_path / "keystore" / "dev-ca" / "ca.crt"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        args = [
            openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-nocommands",
            "-servername", "localhost", "-CAfile", ca_file,
            "-verify_return_error", "-verify_hostname", "localhost",
        ]  # fmt: skip
        with PeerProcess(args, merge_stderr=True) as peer:
            listener.settimeout(15)
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(15)
                hello = sock.recv(65536)
                handshake = UnaryHandshake(
                    handshaker_stub(grpc.insecure_channel("unused")), pb.ServerOptions()
                )
                keys, leftover = drive(fleet, handshake, sock, hello)
                records = RecordLayer(keys)
                records.feed(leftover)
                sock.sendall(records.seal(PING))
                peer.wait_for(r"^ping through the fleet$")
                peer.write(PONG)
                assert records.read_from(sock) == PONG
                peer.close_stdin()
                assert peer.wait() == 0, peer.describe()
    assert "Verify return code: 0 (ok)" in peer.stdout
    assert_each_call_on_another_replica(fleet)
    if kill:
        assert fleet.killed == len(fleet.calls) - 1
