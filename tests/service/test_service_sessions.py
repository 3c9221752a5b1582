"""Sessions: owned by the caller that started them, capped, expired when idle, freed on cancel.

Two caller identities come from mutual TLS on the gRPC channel: each caller is
its client certificate's DNS SAN (the principals dns:alice.test and dns:bob.test).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import (
    COMPLETE,
    NEED_INPUT,
    ChannelPki,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    development_keystore,
    handshaker_stub,
    relay,
)

IDLE_TIMEOUT = 0.5


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    code: grpc.StatusCode = raised.value.code()
    return code


def start_client(stub: pb_grpc.HandshakerStub) -> str:
    response = stub.StartClient(pb.StartClientRequest(options=client_options()))
    assert response.step.state == NEED_INPUT
    session_id: str = response.step.session_id
    return session_id


def eventually_starts(stub: pb_grpc.HandshakerStub, within: float) -> float:
    """Retry StartClient while it is RESOURCE_EXHAUSTED; how long it took to succeed."""
    began = time.monotonic()
    while True:
        try:
            start_client(stub)
            return time.monotonic() - began
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            if time.monotonic() - began > within:
                raise AssertionError(f"still RESOURCE_EXHAUSTED after {within} s") from error
            time.sleep(0.05)


class Callers:
    """Stubs for alice and bob on one mutual-TLS service."""

    def __init__(self, service: ServiceProcess, pki: ChannelPki) -> None:
        self.service = service
        self.channels = {name: service.channel(pki.credentials(name)) for name in pki.clients}
        self.alice = handshaker_stub(self.channels["alice.test"])
        self.bob = handshaker_stub(self.channels["bob.test"])

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


@pytest.fixture
def mtls_callers(
    start_service: StartService, channel_pki: ChannelPki, tmp_path: Path
) -> Iterator[Callable[..., Callers]]:
    opened: list[Callers] = []

    def make(*args: str) -> Callers:
        # Both callers may serve with `localhost`: what tells them apart is ownership.
        keystore = development_keystore(
            tmp_path / f"mtls-keystore-{len(opened)}", "dns:alice.test", "dns:bob.test"
        )
        service = start_service(*channel_pki.serve_args(), *args, keystore=keystore)
        callers = Callers(service, channel_pki)
        opened.append(callers)
        return callers

    yield make
    for callers in opened:
        callers.close()


# --- ownership -------------------------------------------------------------------------------


def test_another_callers_session_is_not_found(mtls_callers: Callable[..., Callers]) -> None:
    callers = mtls_callers()
    alice_client = UnaryHandshake(callers.alice, client_options())
    alice_server = UnaryHandshake(callers.alice, pb.ServerOptions())
    hello = alice_client.step()
    sid = alice_client.session_id
    bob = callers.bob

    assert status_of(lambda: bob.Feed(pb.FeedRequest(session_id=sid, in_bytes=b"x"))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert status_of(lambda: bob.GetKeys(pb.GetKeysRequest(session_id=sid))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert status_of(lambda: bob.Abort(pb.AbortRequest(session_id=sid))) == (
        grpc.StatusCode.NOT_FOUND
    )

    # Bob's attempts left alice's session untouched: she completes it and reads her keys.
    server_flight = alice_server.step(hello.out_bytes)
    finished = alice_client.step(server_flight.out_bytes)
    assert finished.state == COMPLETE
    assert alice_server.step(finished.out_bytes).state == COMPLETE
    assert alice_client.keys().write.key

    assert status_of(lambda: bob.GetKeys(pb.GetKeysRequest(session_id=sid))) == (
        grpc.StatusCode.NOT_FOUND
    )
    export = pb.ExportKeyingMaterialRequest(session_id=sid, label=b"EXPORTER-test", length=32)
    assert status_of(lambda: bob.ExportKeyingMaterial(export)) == grpc.StatusCode.NOT_FOUND
    assert len(callers.alice.ExportKeyingMaterial(export).keying_material) == 32


def test_a_caller_without_a_client_certificate_is_refused(
    mtls_callers: Callable[..., Callers], channel_pki: ChannelPki
) -> None:
    callers = mtls_callers()
    anonymous = grpc.secure_channel(
        callers.service.address,
        grpc.ssl_channel_credentials(root_certificates=channel_pki.ca_pem),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )
    with anonymous:
        stub = handshaker_stub(anonymous)
        code = status_of(
            lambda: stub.StartClient(pb.StartClientRequest(options=client_options()), timeout=10)
        )
    assert code == grpc.StatusCode.UNAVAILABLE


# --- caps ------------------------------------------------------------------------------------


def test_sessions_are_capped_per_caller_and_in_total(mtls_callers: Callable[..., Callers]) -> None:
    callers = mtls_callers("--max-sessions", "3", "--max-sessions-per-caller", "2")
    alice, bob = callers.alice, callers.bob
    alice_sessions = [start_client(alice), start_client(alice)]

    # Alice is at her cap of 2, on both APIs; bob is not.
    assert status_of(lambda: start_client(alice)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with StreamHandshake(alice, client_options()) as stream:
        assert status_of(stream.step) == grpc.StatusCode.RESOURCE_EXHAUSTED
    start_client(bob)

    # Three sessions in all: bob, holding one of his two, meets the total cap.
    assert status_of(lambda: start_client(bob)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    server_start = pb.StartServerRequest(options=pb.ServerOptions())
    assert status_of(lambda: bob.StartServer(server_start)) == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Aborting one of alice's sessions makes room.
    alice.Abort(pb.AbortRequest(session_id=alice_sessions[0]))
    start_client(bob)
    assert status_of(lambda: start_client(alice)) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_rejected_start_does_not_hold_a_session(start_service: StartService) -> None:
    service = start_service("--max-sessions-per-caller", "1")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        oversized = pb.StartServerRequest(options=pb.ServerOptions(), in_bytes=bytes((1 << 20) + 1))
        for _ in range(2):
            assert status_of(lambda: stub.StartServer(oversized)) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
        start_client(stub)


# --- idle expiry -----------------------------------------------------------------------------


@pytest.fixture
def short_idle_stub(start_service: StartService) -> Iterator[pb_grpc.HandshakerStub]:
    service = start_service("--idle-timeout", str(IDLE_TIMEOUT))
    with service.channel() as channel:
        yield handshaker_stub(channel)


def test_an_idle_session_expires(short_idle_stub: pb_grpc.HandshakerStub) -> None:
    stub = short_idle_stub
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions())
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    waiting = start_client(stub)
    time.sleep(3 * IDLE_TIMEOUT)
    assert status_of(lambda: stub.Feed(pb.FeedRequest(session_id=waiting, in_bytes=b"\x16"))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert status_of(client.keys) == grpc.StatusCode.NOT_FOUND
    assert status_of(server.keys) == grpc.StatusCode.NOT_FOUND


def test_a_session_in_use_does_not_expire(short_idle_stub: pb_grpc.HandshakerStub) -> None:
    stub = short_idle_stub
    session_id = start_client(stub)
    deadline = time.monotonic() + 3 * IDLE_TIMEOUT
    while time.monotonic() < deadline:
        # An empty Feed touches the session without moving the handshake.
        step = stub.Feed(pb.FeedRequest(session_id=session_id)).step
        assert step.state == NEED_INPUT
        time.sleep(IDLE_TIMEOUT / 4)
    assert stub.Feed(pb.FeedRequest(session_id=session_id)).step.state == NEED_INPUT


def test_an_idle_stream_is_ended_with_deadline_exceeded(
    short_idle_stub: pb_grpc.HandshakerStub,
) -> None:
    with StreamHandshake(short_idle_stub, client_options()) as stream:
        assert stream.step().state == NEED_INPUT
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stream.receive()
        waited = time.monotonic() - began
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert IDLE_TIMEOUT * 0.8 <= waited < IDLE_TIMEOUT + 5


def test_a_stream_that_never_starts_is_ended_with_deadline_exceeded(
    short_idle_stub: pb_grpc.HandshakerStub,
) -> None:
    with StreamHandshake(short_idle_stub, None) as stream, pytest.raises(grpc.RpcError) as raised:
        stream.receive()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_an_abandoned_unary_session_frees_its_slot_when_it_expires(
    start_service: StartService,
) -> None:
    service = start_service("--idle-timeout", str(IDLE_TIMEOUT), "--max-sessions-per-caller", "1")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        start_client(stub)
        assert status_of(lambda: start_client(stub)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        waited = eventually_starts(stub, within=10 * IDLE_TIMEOUT)
    assert waited >= IDLE_TIMEOUT * 0.8


# --- streams free their session --------------------------------------------------------------


@pytest.fixture
def one_session_stub(start_service: StartService) -> Iterator[pb_grpc.HandshakerStub]:
    # A long idle timeout: only the end of the stream can free the slot here.
    service = start_service("--idle-timeout", "60", "--max-sessions-per-caller", "1")
    with service.channel() as channel:
        yield handshaker_stub(channel)


def test_a_cancelled_stream_frees_its_session(one_session_stub: pb_grpc.HandshakerStub) -> None:
    stub = one_session_stub
    stream = StreamHandshake(stub, client_options())
    assert stream.step().state == NEED_INPUT
    assert status_of(lambda: start_client(stub)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    stream.cancel()
    eventually_starts(stub, within=5)


def test_a_stream_closed_by_the_caller_frees_its_session(
    one_session_stub: pb_grpc.HandshakerStub,
) -> None:
    stub = one_session_stub
    stream = StreamHandshake(stub, client_options())
    assert stream.step().state == NEED_INPUT
    stream.close()
    with pytest.raises(StopIteration):
        stream.receive()
    eventually_starts(stub, within=5)


def test_a_completed_stream_frees_its_session(start_service: StartService) -> None:
    service = start_service("--idle-timeout", "60", "--max-sessions-per-caller", "2")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        with (
            StreamHandshake(stub, client_options()) as client,
            StreamHandshake(stub, pb.ServerOptions()) as server,
        ):
            c, s = relay(client, server)
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
        # Both slots come back: two new sessions fit under the cap of 2.
        eventually_starts(stub, within=5)
        eventually_starts(stub, within=5)
