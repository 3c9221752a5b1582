"""--health-listen: a plaintext port that serves gRPC health checking and nothing else.

A kubelet's `grpc:` probe cannot present a client certificate, so a service behind
mutual TLS needs a port it can reach; that port must not be a way around the mTLS
listener to the Handshaker service.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    COMPLETE,
    HANDSHAKER,
    ChannelPki,
    ServiceProcess,
    StartService,
    UnaryHandshake,
    client_options,
    handshaker_stub,
    relay,
)

SERVICE = "handshaker.v1.Handshaker"
SERVING = health_pb2.HealthCheckResponse.SERVING


def health_address(service: ServiceProcess) -> str:
    (listening,) = [e for e in service.log_entries() if e.get("message") == "listening"]
    fields = listening.get("health_address")
    assert isinstance(fields, str), listening
    return fields


def serve(keystore: Path) -> list[str]:
    return [str(HANDSHAKER), "serve", "--keystore", str(keystore), "--listen", "127.0.0.1:0"]


def check(channel: grpc.Channel, name: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    status: int = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
    return status


def test_the_health_port_is_plaintext_beside_an_mtls_listener(
    start_service: StartService, channel_pki: ChannelPki
) -> None:
    service = start_service(*channel_pki.serve_args(), "--health-listen", "127.0.0.1:0")
    address = health_address(service)
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0 and address != service.address
    with grpc.insecure_channel(address) as channel:
        assert check(channel) == SERVING
        assert check(channel, SERVICE) == SERVING
    # The mTLS listener still serves the Handshaker service to a caller with a certificate.
    with service.channel(channel_pki.credentials("alice.test")) as channel:
        assert check(channel, SERVICE) == SERVING


def test_the_health_port_does_not_serve_the_handshaker_service(
    start_service: StartService,
) -> None:
    service = start_service("--health-listen", "127.0.0.1:0")
    with grpc.insecure_channel(health_address(service)) as channel:
        stub = handshaker_stub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.StartClient(pb.StartClientRequest(options=client_options()), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(stub.Handshake(iter([]), timeout=10)))
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Nor reflection: the port tells nothing about the service behind it.
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(reflect.ServerReflectionInfo(iter([request]), timeout=10)))
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # The main listener serves it as before.
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        c, s = relay(
            UnaryHandshake(stub, client_options()), UnaryHandshake(stub, pb.ServerOptions())
        )
        assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert service.stop() == 0


def test_without_the_option_there_is_no_health_address(service: ServiceProcess) -> None:
    (listening,) = [e for e in service.log_entries() if e.get("message") == "listening"]
    assert "health_address" not in listening


@pytest.mark.parametrize(
    ("address", "said"),
    [("unix:/tmp/health.sock", "HOST:PORT"), ("health:80", "not an IP address"), ("x", "HOST")],
)
def test_a_bad_health_address_is_one_error_line(tmp_path: Path, address: str, said: str) -> None:
    result = subprocess.run(
        [*serve(tmp_path / "keystore"), "--health-listen", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_health_port_is_refused(start_service: StartService, tmp_path: Path) -> None:
    first = start_service("--health-listen", "127.0.0.1:0")
    result = subprocess.run(
        [*serve(tmp_path / "other"), "--health-listen", health_address(first)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--health-listen" in result.stderr
    assert "Traceback" not in result.stderr
