"""Operability: health follows the keystore and the drain, the channel's TLS reloads from its
files without dropping streams, --shutdown-grace bounds the drain, and what cannot work at
start (a taken port, an unreadable keystore or TLS file, an unreachable Redis) is one line
and exit status 2, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    COMPLETE,
    HANDSHAKER,
    NEED_INPUT,
    ChannelPki,
    StartService,
    StreamHandshake,
    development_keystore,
    handshaker_stub,
    make_channel_pki,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_status(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return int(response.status)


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_not_serving_while_the_keystore_cannot_be_read(
    start_service: StartService, tmp_path: Path
) -> None:
    service = start_service()
    moved = tmp_path / "moved-away"
    with service.channel() as channel:
        assert health_status(channel) == SERVING
        service.keystore.rename(moved)
        eventually(lambda: health_status(channel) == NOT_SERVING)
        moved.rename(service.keystore)
        eventually(lambda: health_status(channel) == SERVING)
    warnings = [e for e in service.log_entries() if e.get("message") == "key backend unusable"]
    backends = warnings[0]["backends"]
    assert isinstance(backends, dict) and "cannot be read" in backends["keystore"]
    assert service.stop() == 0


def test_a_health_watch_sees_not_serving_when_the_drain_starts(
    start_service: StartService,
) -> None:
    service = start_service("--shutdown-grace", "3")
    with service.channel() as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="handshaker.v1.Handshaker"), timeout=20
        )
        assert next(watch).status == SERVING
        service.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        watch.cancel()
    assert service.wait(timeout=20) == 0


def test_shutdown_grace_bounds_the_drain(start_service: StartService) -> None:
    # An open Handshake stream that never finishes (idle timeout 60 s) holds the drain
    # for the grace, not longer.
    service = start_service("--shutdown-grace", "1", "--idle-timeout", "60")
    with service.channel() as channel:
        stream = StreamHandshake(handshaker_stub(channel), pb.ClientOptions(server_name="x"))
        assert stream.step().state == NEED_INPUT
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
        took = time.monotonic() - started
        stream.close()
    assert 0.9 <= took < 4.0, took
    assert any(e.get("grace_seconds") == 1.0 for e in service.log_entries())


# --- the channel's TLS reloads -----------------------------------------------------------------


def _install(pki: ChannelPki, directory: Path) -> None:
    """Replace the served files the way an operator (or a Secret mount) would: atomically."""
    for name in ("ca", "cert", "key"):
        target = directory / pki.files[name].name
        temporary = directory / f".{target.name}.new"
        shutil.copyfile(pki.files[name], temporary)
        temporary.replace(target)


def _connect(service_address: str, pki: ChannelPki, caller: str) -> grpc.Channel:
    return grpc.secure_channel(
        service_address,
        pki.credentials(caller),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )


def test_the_channel_certificate_and_client_ca_reload_without_dropping_streams(
    start_service: StartService, tmp_path: Path, channel_pki: ChannelPki
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    _install(channel_pki, served)
    service = start_service(
        "--tls-cert", str(served / "server.pem"), "--tls-key", str(served / "server.key"),
        "--tls-client-ca", str(served / "ca.pem"),
        keystore=development_keystore(tmp_path / "ks", "dns:alice.test"),
    )  # fmt: skip
    (tmp_path / "renewed").mkdir()
    renewed = make_channel_pki(tmp_path / "renewed", ("carol.test",))
    old = _connect(service.address, channel_pki, "alice.test")
    stub = handshaker_stub(old)
    # A handshake on two streams of the old connection, half done when the files change.
    client = StreamHandshake(stub, pb.ClientOptions(server_name="localhost"))
    server = StreamHandshake(stub, pb.ServerOptions())
    hello = client.step()
    flight = server.step(hello.out_bytes)
    assert (hello.state, flight.state) == (NEED_INPUT, NEED_INPUT)

    _install(renewed, served)
    time.sleep(1.2)  # the files are looked at once a second at most
    with _connect(service.address, renewed, "carol.test") as fresh:
        eventually(lambda: _healthy(fresh))
    assert any(e.get("message") == "channel TLS reloaded" for e in service.log_entries())
    # Client certificates are still required, now from the new CA.
    no_certificate = grpc.ssl_channel_credentials(root_certificates=renewed.ca_pem)
    with grpc.secure_channel(
        service.address, no_certificate, options=[("grpc.ssl_target_name_override", "localhost")]
    ) as anonymous:
        assert not _healthy(anonymous)
    # The old CA's callers are not let in any more on a new connection.
    with _connect(service.address, channel_pki, "bob.test") as stale:
        assert not _healthy(stale)
    # The streams opened before carry on to the end.
    finished = client.step(flight.out_bytes)
    last = server.step(finished.out_bytes)
    assert (finished.state, last.state) == (COMPLETE, COMPLETE)
    client.close()
    server.close()
    old.close()
    assert service.stop() == 0


def _healthy(channel: grpc.Channel) -> bool:
    try:
        return health_status(channel) == SERVING
    except grpc.RpcError:
        return False


def test_a_half_written_certificate_keeps_the_previous_one(
    start_service: StartService, tmp_path: Path, channel_pki: ChannelPki
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    _install(channel_pki, served)
    service = start_service(
        "--tls-cert", str(served / "server.pem"), "--tls-key", str(served / "server.key"),
        "--tls-client-ca", str(served / "ca.pem"),
    )  # fmt: skip
    (tmp_path / "renewed").mkdir()
    renewed = make_channel_pki(tmp_path / "renewed", ("carol.test",))
    # The new certificate, but still the old key: it does not match, so nothing changes.
    shutil.copyfile(renewed.files["cert"], served / "server.pem")
    time.sleep(1.2)
    with _connect(service.address, channel_pki, "alice.test") as channel:
        assert _healthy(channel)
    eventually(
        lambda: any(
            e.get("message") == "channel TLS not reloaded; keeping the previous certificate"
            for e in service.log_entries()
        )
    )
    assert service.stop() == 0


# --- what cannot work at start -----------------------------------------------------------------


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HANDSHAKER), "serve", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_is_one_line(
    start_service: StartService, tmp_path: Path, workers: str
) -> None:
    from redis_kit import RedisServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        redis = RedisServer().start()
        try:
            result = _serve(
                "--keystore", str(tmp_path / "ks"), "--listen", f"127.0.0.1:{port}",
                "--workers", workers, "--session-store", redis.url,
            )  # fmt: skip
        finally:
            redis.stop()
    _one_line(result, f"cannot listen on 127.0.0.1:{port}")


def test_a_keystore_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "keystore"
    not_a_directory.write_text("a file where the keystore directory should be")
    result = _serve("--keystore", str(not_a_directory), "--listen", "127.0.0.1:0")
    _one_line(result, f"--keystore {not_a_directory} cannot be read")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_redis_that_cannot_be_reached_is_one_line(tmp_path: Path, workers: str) -> None:
    result = _serve(
        "--keystore", str(tmp_path / "ks"), "--listen", "127.0.0.1:0", "--workers", workers,
        "--session-store", f"unix://{tmp_path}/no-redis-here.sock",
    )  # fmt: skip
    _one_line(result, "no-redis-here.sock")


def test_an_unreadable_channel_certificate_is_one_line(tmp_path: Path) -> None:
    result = _serve(
        "--keystore", str(tmp_path / "ks"), "--listen", "127.0.0.1:0",
        "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key"),
    )  # fmt: skip
    _one_line(result, f"cannot read --tls-cert {tmp_path / 'missing.pem'}")
    assert not os.path.exists(tmp_path / "missing.pem")
