"""The Multiplex stream: many connections on one stream, batched frames, misuse per connection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from handshaker.tls import AlertDescription
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import (
    COMPLETE,
    FAILED,
    NEED_INPUT,
    ChannelPki,
    MultiplexStream,
    ServiceProcess,
    StartService,
    client_options,
    feed_frame,
    handshaker_stub,
    start_frame,
)

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def _step(result: pb.ConnectionResult) -> pb.HandshakeStep:
    assert not result.HasField("error"), result.error.message
    return result.response.step


def _handshake_pairs(stream: MultiplexStream, ids: list[tuple[int, int]]) -> None:
    """Run a client-role and a server-role connection against each other for every id pair,
    all on `stream`, each round of frames in one request; asserts each completes."""
    hellos = stream.exchange(*(start_frame(c, client_options()) for c, _ in ids))
    assert [r.connection_id for r in hellos] == [c for c, _ in ids]
    flights = stream.exchange(
        *(
            start_frame(s, pb.ServerOptions(), _step(hello).out_bytes)
            for (_, s), hello in zip(ids, hellos, strict=True)
        )
    )
    assert all(_step(r).state == NEED_INPUT for r in flights)
    finished = stream.exchange(
        *(feed_frame(c, _step(f).out_bytes) for (c, _), f in zip(ids, flights, strict=True))
    )
    assert all(_step(r).state == COMPLETE for r in finished)
    done = stream.exchange(
        *(feed_frame(s, _step(f).out_bytes) for (_, s), f in zip(ids, finished, strict=True))
    )
    for client_result, server_result in zip(finished, done, strict=True):
        assert _step(server_result).state == COMPLETE
        client_keys, server_keys = client_result.response.keys, server_result.response.keys
        assert client_keys.write.key and client_keys.write.key == server_keys.read.key
        assert client_keys.read.key == server_keys.write.key
        assert client_result.response.step.session_id == ""


def test_many_connections_complete_on_one_stream_in_batched_frames(
    stub: pb_grpc.HandshakerStub,
) -> None:
    with MultiplexStream(stub) as stream:
        _handshake_pairs(stream, [(2 * n + 1, 2 * n + 2) for n in range(20)])
        # Ids of ended connections may be used again on the same stream.
        _handshake_pairs(stream, [(1, 2)])


def test_misuse_ends_only_its_own_connection(stub: pb_grpc.HandshakerStub) -> None:
    with MultiplexStream(stub) as stream:
        [hello] = stream.exchange(start_frame(1, client_options()))
        results = stream.exchange(
            pb.ConnectionFrame(connection_id=0, request=pb.HandshakeRequest(in_bytes=b"x")),
            feed_frame(7, b"\x16\x03\x01"),
            start_frame(3, client_options(), b"\x16"),
            start_frame(4, pb.ServerOptions(credential="no-such-credential")),
            start_frame(5, pb.ServerOptions(), _step(hello).out_bytes),
        )
        assert [r.connection_id for r in results] == [0, 7, 3, 4, 5]
        assert [r.error.code for r in results[:4]] == [
            INVALID_ARGUMENT,
            NOT_FOUND,
            INVALID_ARGUMENT,
            NOT_FOUND,
        ]
        assert "nonzero" in results[0].error.message
        assert all(not r.HasField("response") for r in results[:4])
        assert _step(results[4]).state == NEED_INPUT
        # A second start on a live connection ends it; its peer connection goes on alone.
        [again] = stream.exchange(start_frame(5, pb.ServerOptions()))
        assert again.error.code == INVALID_ARGUMENT
        [gone] = stream.exchange(feed_frame(5, b""))
        assert gone.error.code == NOT_FOUND
        # The stream and its other connections are unharmed.
        [waiting] = stream.exchange(feed_frame(1, b""))
        assert _step(waiting).state == NEED_INPUT
        _handshake_pairs(stream, [(10, 11)])


def test_a_tls_failure_is_in_band_and_ends_the_connection(stub: pb_grpc.HandshakerStub) -> None:
    with MultiplexStream(stub) as stream:
        [failed] = stream.exchange(start_frame(1, pb.ServerOptions(), b"GET / HTTP/1.1\r\n\r\n"))
        step = _step(failed)
        assert step.state == FAILED
        assert step.failure.alert == AlertDescription.UNEXPECTED_MESSAGE
        assert step.out_bytes[:1] == b"\x15", "the alert record to send"
        [gone] = stream.exchange(feed_frame(1, b""))
        assert gone.error.code == NOT_FOUND


@pytest.fixture
def two_session_stub(start_service: StartService) -> Iterator[pb_grpc.HandshakerStub]:
    service = start_service("--max-sessions-per-caller", "2")
    with service.channel() as channel:
        yield handshaker_stub(channel)


def test_connections_count_against_the_caps_and_abort_or_stream_end_frees_them(
    two_session_stub: pb_grpc.HandshakerStub,
) -> None:
    stub = two_session_stub
    with MultiplexStream(stub) as stream:
        results = stream.exchange(
            start_frame(1, client_options()),
            start_frame(2, client_options()),
            start_frame(3, client_options()),
        )
        assert [_step(r).state for r in results[:2]] == [NEED_INPUT, NEED_INPUT]
        assert results[2].error.code == RESOURCE_EXHAUSTED
        [aborted] = stream.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
        assert aborted.connection_id == 1
        assert not aborted.HasField("response") and not aborted.HasField("error")
        [started] = stream.exchange(start_frame(3, client_options()))
        assert _step(started).state == NEED_INPUT
        [gone] = stream.exchange(feed_frame(1, b""))
        assert gone.error.code == NOT_FOUND
    # The first stream ended: both of its live connections were freed.
    deadline = time.monotonic() + 5
    with MultiplexStream(stub) as stream:
        while True:
            results = stream.exchange(
                start_frame(1, client_options()), start_frame(2, client_options())
            )
            if all(r.response.step.state == NEED_INPUT for r in results):
                break
            assert time.monotonic() < deadline, "the ended stream's connections were not freed"
            stream.exchange(*(pb.ConnectionFrame(connection_id=i, abort=True) for i in (1, 2)))
            time.sleep(0.05)


IDLE_TIMEOUT = 0.6


def test_an_idle_connection_is_ended_and_reported_while_the_stream_stays(
    start_service: StartService,
) -> None:
    service = start_service("--idle-timeout", str(IDLE_TIMEOUT))
    with service.channel() as channel, MultiplexStream(handshaker_stub(channel)) as stream:
        stream.exchange(start_frame(1, client_options()), start_frame(2, client_options()))
        # Connection 2 is kept busy; connection 1 is left alone.
        began = time.monotonic()
        while time.monotonic() - began < 3 * IDLE_TIMEOUT:
            [busy] = stream.exchange(feed_frame(2, b""))
            if busy.connection_id == 1:  # the service's own report arrived first
                expired = busy
                [busy] = stream.receive()
                break
            assert _step(busy).state == NEED_INPUT
            time.sleep(IDLE_TIMEOUT / 6)
        else:
            [expired] = stream.receive()
        assert expired.connection_id == 1
        assert expired.error.code == DEADLINE_EXCEEDED
        assert busy.connection_id == 2 and _step(busy).state == NEED_INPUT
        [gone] = stream.exchange(feed_frame(1, b""))
        assert gone.error.code == NOT_FOUND


def test_connection_ids_belong_to_their_stream_and_caller(
    start_service: StartService, channel_pki: ChannelPki
) -> None:
    service: ServiceProcess = start_service(*channel_pki.serve_args())
    channels = {
        name: service.channel(channel_pki.credentials(name)) for name in channel_pki.clients
    }
    try:
        alice = handshaker_stub(channels["alice.test"])
        bob = handshaker_stub(channels["bob.test"])
        with MultiplexStream(alice) as alice_stream, MultiplexStream(bob) as bob_stream:
            [hello] = alice_stream.exchange(start_frame(1, client_options()))
            assert _step(hello).state == NEED_INPUT
            # Bob's id 1 is not alice's connection 1.
            [foreign] = bob_stream.exchange(feed_frame(1, b""))
            assert foreign.error.code == NOT_FOUND
            with MultiplexStream(alice) as other_stream:
                [elsewhere] = other_stream.exchange(feed_frame(1, b""))
                assert elsewhere.error.code == NOT_FOUND
            [still] = alice_stream.exchange(feed_frame(1, b""))
            assert _step(still).state == NEED_INPUT
    finally:
        for channel in channels.values():
            channel.close()


def test_the_python_multiplexer_aborts_a_connection_whose_answer_came_too_late(
    start_service: StartService,
) -> None:
    """A local timeout leaves the connection live in the service: close() must abort it,
    or it would hold its caller's only slot until the idle timeout (10 s)."""
    import asyncio
    import signal

    import handshaker_client as hc

    service = start_service("--max-sessions-per-caller", "1")
    options = hc.client_options("localhost", ca_pem=service.dev_ca_pem)

    async def scenario() -> float:
        async with hc.AsyncHandshakerClient(service.address, rpc_timeout=0.5) as client:
            mux = client.multiplexer()
            warm = mux.session(options)
            await warm.start()  # both ends of the stream are up before the pause
            await warm.close()
            late = mux.session(options)
            service.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(hc.HandshakerRpcError) as raised:
                    await late.start()
                assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
                await late.close()
            finally:
                service.send_signal(signal.SIGCONT)
            began = time.monotonic()
            while True:
                try:
                    step = await mux.session(options).start()
                    assert step.state == NEED_INPUT
                    return time.monotonic() - began
                except hc.HandshakerRpcError as error:
                    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert time.monotonic() - began < 5, "the late connection was not aborted"
                    await asyncio.sleep(0.05)

    assert asyncio.run(scenario()) < 5
