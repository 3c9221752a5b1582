"""Bounds on what a caller or a TLS peer can make the service hold (issue 9, item 4).

Each test would fail without its bound: a trickled handshake ends at the absolute
deadline on every API, a peer cannot make a session hold more than the buffer cap,
a Multiplex message carries at most K frames and yields between them, an idle
Multiplex stream ends, and open streams count per caller. Every test is bounded in
time, talks to 127.0.0.1 only, and checks that a legitimate handshake still completes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from handshaker.api import ConfigFactory, HandshakerServicer
from handshaker.keystore import EMPTY_POLICY, MemoryKeyStore
from handshaker.sessions import MemorySessionStore
from handshaker.tls import AlertDescription
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import (
    COMPLETE,
    FAILED,
    NEED_INPUT,
    MultiplexStream,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    feed_frame,
    handshaker_stub,
    relay,
    start_frame,
)

DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
TRICKLE_SECONDS = 0.4


def _client_hello(stub: pb_grpc.HandshakerStub) -> bytes:
    start = stub.StartClient(pb.StartClientRequest(options=client_options()))
    return bytes(start.step.out_bytes)


def _legitimate_handshake_completes(stub: pb_grpc.HandshakerStub) -> None:
    c, s = relay(UnaryHandshake(stub, client_options()), UnaryHandshake(stub, pb.ServerOptions()))
    assert (c.state, s.state) == (COMPLETE, COMPLETE)


@pytest.fixture
def strict(start_service: StartService) -> ServiceProcess:
    # An idle timeout longer than the deadline: only the deadline can end a trickle.
    return start_service("--handshake-timeout", "1.5", "--idle-timeout", "5")


def test_a_trickled_unary_handshake_ends_at_the_deadline(strict: ServiceProcess) -> None:
    with strict.channel() as channel:
        stub = handshaker_stub(channel)
        hello = _client_hello(stub)
        server = UnaryHandshake(stub, pb.ServerOptions())
        assert server.step(hello[:1]).state == NEED_INPUT
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            for byte in range(1, len(hello) - 1):
                time.sleep(TRICKLE_SECONDS)
                server.step(hello[byte : byte + 1])
                assert time.monotonic() - began < 10, "the deadline never came"
        assert raised.value.code() == DEADLINE_EXCEEDED
        assert "within 1.5 s" in (raised.value.details() or "")
        _legitimate_handshake_completes(stub)


def test_a_trickled_and_a_silent_handshake_stream_end_at_the_deadline(
    strict: ServiceProcess,
) -> None:
    with strict.channel() as channel:
        stub = handshaker_stub(channel)
        hello = _client_hello(stub)
        # Silent after its start: the idle timeout (5 s) is not what ends it.
        silent = StreamHandshake(stub, pb.ServerOptions())
        began = time.monotonic()
        assert silent.step(hello[:1]).state == NEED_INPUT
        with pytest.raises(grpc.RpcError) as raised:
            silent.receive()
        assert raised.value.code() == DEADLINE_EXCEEDED
        assert time.monotonic() - began < 4
        silent.close()
        trickled = StreamHandshake(stub, pb.ServerOptions())
        assert trickled.step(hello[:1]).state == NEED_INPUT
        with pytest.raises(grpc.RpcError) as raised:
            for byte in range(1, len(hello) - 1):
                time.sleep(TRICKLE_SECONDS)
                trickled.step(hello[byte : byte + 1])
        assert raised.value.code() == DEADLINE_EXCEEDED
        trickled.close()
        _legitimate_handshake_completes(stub)


def test_a_trickled_multiplex_connection_ends_at_the_deadline(strict: ServiceProcess) -> None:
    with strict.channel() as channel:
        stub = handshaker_stub(channel)
        hello = _client_hello(stub)
        with MultiplexStream(stub) as stream:
            [first] = stream.exchange(start_frame(1, pb.ServerOptions(), hello[:1]))
            assert first.response.step.state == NEED_INPUT
            ended = None
            for byte in range(1, len(hello) - 1):
                time.sleep(TRICKLE_SECONDS)
                results = stream.exchange(feed_frame(1, hello[byte : byte + 1]))
                errors = [r for r in results if r.HasField("error")]
                if errors:
                    ended = errors[0]
                    break
            assert ended is not None, "the trickled connection never ended"
            assert ended.error.code in (DEADLINE_EXCEEDED.value[0], NOT_FOUND)
        _legitimate_handshake_completes(stub)


def _handshake_records(body: bytes) -> bytes:
    records = b""
    for offset in range(0, len(body), 16384):
        fragment = body[offset : offset + 16384]
        records += bytes([22, 3, 1]) + len(fragment).to_bytes(2, "big") + fragment
    return records


def _partial_client_hello(size: int) -> bytes:
    """Handshake records carrying the first `size` bytes of a ClientHello that claims 120 KB."""
    return _handshake_records(bytes([1]) + (120_000).to_bytes(3, "big") + bytes(size - 4))


@pytest.mark.parametrize("api", ["unary", "stream"])
def test_a_peer_cannot_make_a_session_buffer_past_the_cap(
    service: ServiceProcess, stub: pb_grpc.HandshakerStub, api: str
) -> None:
    server: UnaryHandshake | StreamHandshake = (
        UnaryHandshake(stub, pb.ServerOptions())
        if api == "unary"
        else StreamHandshake(stub, pb.ServerOptions())
    )
    # Under the default cap (64 KiB) the engine still waits for the rest.
    assert server.step(_partial_client_hello(48 << 10)).state == NEED_INPUT
    step = server.step(_handshake_records(bytes(24 << 10)))
    assert step.state == FAILED
    assert step.failure.alert == AlertDescription.ILLEGAL_PARAMETER
    assert "65536 bytes" in step.failure.reason
    server.close()
    _legitimate_handshake_completes(stub)


def test_a_multiplex_message_carries_at_most_k_frames(start_service: StartService) -> None:
    service = start_service("--max-frames-per-message", "4")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        with MultiplexStream(stub) as stream:
            results = stream.exchange(*(start_frame(i, client_options()) for i in range(1, 7)))
            assert [r.connection_id for r in results] == [1, 2, 3, 4, 5, 6]
            assert all(r.response.step.state == NEED_INPUT for r in results[:4])
            for extra in results[4:]:
                assert extra.error.code == INVALID_ARGUMENT
                assert "at most 4 frames" in extra.error.message
            # The stream and its connections go on.
            [again] = stream.exchange(feed_frame(5, b""))
            assert again.error.code == NOT_FOUND
        _legitimate_handshake_completes(stub)


def test_an_idle_multiplex_stream_ends(start_service: StartService) -> None:
    service = start_service("--idle-timeout", "1")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        with MultiplexStream(stub) as stream:
            stream.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                stream.receive()
            assert raised.value.code() == DEADLINE_EXCEEDED
            assert time.monotonic() - began < 5
        _legitimate_handshake_completes(stub)


def test_multiplex_streams_count_against_the_per_caller_cap(start_service: StartService) -> None:
    service = start_service("--max-sessions-per-caller", "2")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        streams = [MultiplexStream(stub) for _ in range(2)]
        for stream in streams:
            stream.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
        third = MultiplexStream(stub)
        with pytest.raises(grpc.RpcError) as raised:
            third.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Multiplex streams" in (raised.value.details() or "")
        third.close()
        streams.pop().close()
        # A closed stream frees its place.
        deadline = time.monotonic() + 5
        while True:
            fourth = MultiplexStream(stub)
            try:
                fourth.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            finally:
                fourth.close()
        for stream in streams:
            stream.close()


class _FakeContext:
    """Just enough of a grpc.aio ServicerContext for Multiplex: one message, then EOF."""

    def __init__(self, request: pb.MultiplexRequest) -> None:
        self._requests: list[object] = [request, grpc.aio.EOF]  # type: ignore[attr-defined]
        self.written: list[pb.MultiplexResponse] = []

    async def read(self) -> object:
        return self._requests.pop(0)

    async def write(self, response: pb.MultiplexResponse) -> None:
        self.written.append(response)

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def auth_context(self) -> dict[str, Any]:
        return {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


def test_one_big_multiplex_message_yields_to_the_event_loop_between_frames() -> None:
    servicer = HandshakerServicer(
        MemorySessionStore(), ConfigFactory(MemoryKeyStore({}, policy=EMPTY_POLICY))
    )
    order: list[str] = []
    real_frame = servicer._frame

    def frame(*args: Any) -> Any:
        order.append("frame")
        return real_frame(*args)

    servicer._frame = frame  # type: ignore[method-assign]
    request = pb.MultiplexRequest(
        frames=[pb.ConnectionFrame(connection_id=i, abort=True) for i in range(1, 201)]
    )
    context = _FakeContext(request)

    async def run() -> None:
        stop = False

        async def other_rpc() -> None:
            while not stop:
                order.append("other")
                await asyncio.sleep(0)

        other = asyncio.create_task(other_rpc())
        await asyncio.sleep(0)
        await servicer.Multiplex(iter(()), context)  # type: ignore[arg-type]
        stop = True
        await other

    asyncio.run(run())
    assert len(context.written[0].results) == 200
    frames_at = [i for i, what in enumerate(order) if what == "frame"]
    # Another task ran between the first and the last frame, more than once.
    others_between = [
        i for i, what in enumerate(order) if what == "other" and frames_at[0] < i < frames_at[-1]
    ]
    assert len(others_between) >= 200 // 16 - 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (client_options(alpn_protocols=[f"p{i}" for i in range(30_000)]), "alpn_protocols"),
        (pb.ClientOptions(server_name="x" * 65_000), "server_name"),
        (pb.ClientOptions(server_name="a\x00b c"), "server_name"),
        (pb.ServerOptions(alpn_protocols=[f"p{i}" for i in range(30_000)]), "alpn_protocols"),
    ],
    ids=["client-alpn", "long-server-name", "bad-server-name", "server-alpn"],
)
def test_oversized_and_malformed_options_are_invalid_argument_naming_the_field(
    stub: pb_grpc.HandshakerStub, options: pb.ClientOptions | pb.ServerOptions, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        if isinstance(options, pb.ClientOptions):
            stub.StartClient(pb.StartClientRequest(options=options))
        else:
            stub.StartServer(pb.StartServerRequest(options=options))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert details.startswith(f"{field}: "), details
    assert "Error" not in details  # no internal exception class
    with MultiplexStream(stub) as stream:
        [result] = stream.exchange(start_frame(1, options))
        assert result.error.code == INVALID_ARGUMENT
        assert result.error.message.startswith(f"{field}: ")
    _legitimate_handshake_completes(stub)


def test_refused_stream_starts_hold_no_session(start_service: StartService) -> None:
    # A client start that carries in_bytes is refused after its session was made: the
    # refusal must free it, or three of them would fill this caller's cap of 2.
    service = start_service("--max-sessions-per-caller", "2")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        for _ in range(3):
            with StreamHandshake(stub, None) as stream:
                stream.send(
                    pb.HandshakeRequest(client=client_options(), in_bytes=b"\x16\x03\x03\x00\x00")
                )
                with pytest.raises(grpc.RpcError) as raised:
                    stream.receive()
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with (
            StreamHandshake(stub, client_options()) as first,
            StreamHandshake(stub, client_options()) as second,
        ):
            assert first.step().state == NEED_INPUT
            assert second.step().state == NEED_INPUT
