"""Running the service: health, reflection, where it may listen, and a graceful stop."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    COMPLETE,
    HANDSHAKER,
    ServiceProcess,
    StartService,
    UnaryHandshake,
    client_options,
    handshaker_stub,
    relay,
    short_socket_dir,
)

SERVICE = "handshaker.v1.Handshaker"
METHODS = {
    "StartClient",
    "StartServer",
    "Feed",
    "GetKeys",
    "ExportKeyingMaterial",
    "Abort",
    "Handshake",
    "Multiplex",
}


# --- health and reflection -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", SERVICE])
def test_health_check_reports_serving(channel: grpc.Channel, name: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_handshaker_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    pool = descriptor_pool.DescriptorPool(database)
    described = pool.FindServiceByName(SERVICE)
    assert {method.name for method in described.methods} == METHODS
    handshake = described.methods_by_name["Handshake"]
    assert handshake.client_streaming and handshake.server_streaming
    assert pool.FindMessageTypeByName("handshaker.v1.SessionKeys").fields_by_name["read"]


# --- where it listens ------------------------------------------------------------------------


def _serve(keystore: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HANDSHAKER), "serve", "--keystore", str(keystore), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_non_loopback_address_without_tls_is_refused(tmp_path: Path) -> None:
    result = _serve(tmp_path / "keystore", "--listen", "0.0.0.0:0")
    assert result.returncode == 2
    assert "refusing" in result.stderr and "0.0.0.0:0" in result.stderr
    assert "--insecure" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_ca_without_a_server_certificate_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    result = _serve(tmp_path / "keystore", "--listen", "127.0.0.1:0", "--tls-client-ca", str(ca))
    assert result.returncode == 2
    assert "--tls-client-ca" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_non_loopback_address_is_allowed_with_insecure(start_service: StartService) -> None:
    # Only binds: no traffic goes to the non-loopback address.
    service = start_service("--insecure", listen="0.0.0.0:0")
    host, _, port = service.address.rpartition(":")
    assert host == "0.0.0.0" and int(port) > 0
    # The wildcard address includes loopback, which is the only address tests talk to.
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert service.stop() == 0


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    directory = short_socket_dir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_it_serves_on_a_unix_socket(start_service: StartService, socket_dir: Path) -> None:
    path = socket_dir / "handshaker.sock"
    service = start_service(listen=f"unix:{path}")
    assert path.is_socket()
    with grpc.insecure_channel(f"unix:{path}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        stub = handshaker_stub(channel)
        c, s = relay(
            UnaryHandshake(stub, client_options()), UnaryHandshake(stub, pb.ServerOptions())
        )
        assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert service.stop() == 0


# --- stopping --------------------------------------------------------------------------------


def test_sigterm_stops_it_gracefully(start_service: StartService) -> None:
    service = start_service()
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        c, s = relay(
            UnaryHandshake(stub, client_options()), UnaryHandshake(stub, pb.ServerOptions())
        )
        assert (c.state, s.state) == (COMPLETE, COMPLETE)
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=15) == 0
    messages = [entry.get("message") for entry in service.log_entries()]
    assert "shutting down" in messages
    assert messages[-1] == "stopped"


def test_sigterm_lets_an_unfinished_unary_session_go(start_service: StartService) -> None:
    # Sessions live in memory: a stop with sessions still open is still a clean exit.
    service: ServiceProcess = start_service()
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        UnaryHandshake(stub, client_options()).step()
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=15) == 0
    assert "stopped" in [entry.get("message") for entry in service.log_entries()]


def test_sigterm_as_soon_as_it_is_listening_stops_it_gracefully(tmp_path: Path) -> None:
    codes = []
    for _ in range(5):
        service = ServiceProcess(tmp_path / "keystore")
        service.start()
        codes.append(service.stop())
    assert codes == [0] * 5
