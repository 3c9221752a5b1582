"""Many handshakes on a few Multiplex streams (asyncio): frames ready together go in one message.

    async with AsyncHandshakerClient() as client:
        mux = client.multiplexer()
        session = mux.session(server_options())       # same start/feed/close as a stream session
        step = await session.start(client_hello)

A connection stays on one of the multiplexer's streams (two by default); a
stream opens on first use and again after a failure. Each session takes a
fresh connection id, never reused. Misuse of one connection raises HandshakerRpcError for that
session only; a broken stream fails every session waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

import grpc
import grpc.aio
from handshaker_wire.v1 import handshaker_pb2 as pb

from .client import first_request
from .errors import HandshakerRpcError
from .handshake import StartOptions, Step

_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}
# The service answers frames past its per-message cap (serve --max-frames-per-message,
# default 256) with INVALID_ARGUMENT: a busy client splits its batches well below it,
# as the Go and Java clients do (128).
MAX_FRAMES_PER_MESSAGE = 128

MultiplexCall = grpc.aio.StreamStreamCall[pb.MultiplexRequest, pb.MultiplexResponse]


class _Stream:
    """One Multiplex call with its writer and reader tasks."""

    def __init__(self, call: MultiplexCall) -> None:
        self.call = call
        self.pending: list[pb.ConnectionFrame] = []
        self.waiters: dict[int, asyncio.Future[pb.ConnectionResult]] = {}
        self.ready = asyncio.Event()
        # One request in flight per stream: the frames that come up while the service
        # works on a request go out together once it answers, so batches stay large.
        self.answered = asyncio.Event()
        self.answered.set()
        self.error: HandshakerRpcError | None = None
        self.writer = asyncio.create_task(self._write())
        self.reader = asyncio.create_task(self._read())

    def send(
        self, frame: pb.ConnectionFrame, *, wait: bool = True
    ) -> asyncio.Future[pb.ConnectionResult] | None:
        if self.error is not None:
            raise self.error
        self.pending.append(frame)
        self.ready.set()
        if not wait:
            return None
        future: asyncio.Future[pb.ConnectionResult] = asyncio.get_running_loop().create_future()
        self.waiters[frame.connection_id] = future
        return future

    async def _write(self) -> None:
        try:
            while True:
                await self.ready.wait()
                await self.answered.wait()
                self.ready.clear()
                self.answered.clear()
                frames = self.pending[:MAX_FRAMES_PER_MESSAGE]
                self.pending = self.pending[MAX_FRAMES_PER_MESSAGE:]
                if self.pending:
                    self.ready.set()  # the rest goes in the next message
                if not frames:  # a request without frames would get no answer
                    self.answered.set()
                    continue
                await self.call.write(pb.MultiplexRequest(frames=frames))
        except (grpc.RpcError, grpc.aio.UsageError):
            pass  # the reader sees the stream's end and its status

    async def _read(self) -> None:
        try:
            while True:
                response = await self.call.read()
                if not isinstance(response, pb.MultiplexResponse):
                    break  # EOF
                # (An unsolicited answer, an idle connection's expiry, may let one
                # more request go early; that costs nothing.)
                self.answered.set()
                waiters = self.waiters
                for result in response.results:
                    future = waiters.pop(result.connection_id, None)
                    # A result nobody waits for (an idle connection the service ended)
                    # needs no delivery: that session's next frame gets NOT_FOUND.
                    if future is not None and not future.done():
                        future.set_result(result)
            code = await self.call.code()
            details = await self.call.details()
            if code == grpc.StatusCode.OK:
                error = HandshakerRpcError.protocol("the Multiplex stream ended")
            else:
                error = HandshakerRpcError(code, details or "")
        except grpc.RpcError as rpc_error:
            error = HandshakerRpcError.from_grpc(rpc_error)
        except asyncio.CancelledError:
            error = HandshakerRpcError(grpc.StatusCode.CANCELLED, "the multiplexer was closed")
            self._fail(error)
            raise
        self._fail(error)

    def _fail(self, error: HandshakerRpcError) -> None:
        self.error = error
        self.writer.cancel()
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(error)
        self.waiters.clear()

    async def close(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(grpc.RpcError, grpc.aio.UsageError):
            await self.call.done_writing()
        self.call.cancel()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


class AsyncMultiplexer:
    """Sessions that share a few Multiplex streams of a grpc.aio channel.

    A connection stays on the stream its id maps to. More than one stream lets
    this process and the service work at the same time: while the service runs
    one stream's batch, the answers to another's are relayed here.
    """

    def __init__(
        self,
        open_call: Callable[[], MultiplexCall],
        *,
        rpc_timeout: float,
        streams: int = 2,
    ) -> None:
        if streams < 1:
            raise ValueError("streams must be at least 1")
        self._open_call = open_call
        self.rpc_timeout = rpc_timeout
        self._streams: list[_Stream | None] = [None] * streams
        self._ids = itertools.count(1)

    def session(self, options: StartOptions, *, peer: str | None = None) -> AsyncMultiplexSession:
        return AsyncMultiplexSession(self, options, peer=peer)

    def _stream(self, connection_id: int, *, open_new: bool) -> _Stream | None:
        index = connection_id % len(self._streams)
        stream = self._streams[index]
        if open_new and (stream is None or stream.error is not None):
            stream = self._streams[index] = _Stream(self._open_call())
        return stream

    async def exchange(self, frame: pb.ConnectionFrame) -> pb.ConnectionResult:
        stream = self._stream(frame.connection_id, open_new=True)
        assert stream is not None
        future = stream.send(frame)
        assert future is not None
        try:
            async with asyncio.timeout(self.rpc_timeout):
                return await future
        except TimeoutError:
            stream.waiters.pop(frame.connection_id, None)
            raise HandshakerRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "no answer from the service in time"
            ) from None

    def abort(self, connection_id: int) -> None:
        """Free a connection in the service without waiting for the answer."""
        stream = self._stream(connection_id, open_new=False)
        if stream is not None and stream.error is None:
            stream.send(pb.ConnectionFrame(connection_id=connection_id, abort=True), wait=False)

    def next_id(self) -> int:
        return next(self._ids)

    async def close(self) -> None:
        streams, self._streams = self._streams, [None] * len(self._streams)
        for stream in streams:
            if stream is not None:
                await stream.close()


class AsyncMultiplexSession:
    """One connection's handshake on a multiplexer; same calls as a stream session."""

    def __init__(
        self, multiplexer: AsyncMultiplexer, options: StartOptions, *, peer: str | None = None
    ) -> None:
        self._multiplexer = multiplexer
        self._options = options
        # The TLS peer's address, in the connection's first frame (HandshakeRequest.peer_address).
        self._peer = peer
        self.connection_id = 0
        self._open = False

    async def start(self, in_bytes: bytes = b"") -> Step:
        if self.connection_id:
            raise RuntimeError("the handshake has started")
        self.connection_id = self._multiplexer.next_id()
        self._open = True
        return await self._exchange(first_request(self._options, in_bytes, peer=self._peer))

    async def feed(self, in_bytes: bytes) -> Step:
        if not self._open:
            raise RuntimeError(
                "the handshake has ended" if self.connection_id else "start the handshake first"
            )
        return await self._exchange(pb.HandshakeRequest(in_bytes=in_bytes))

    async def _exchange(self, request: pb.HandshakeRequest) -> Step:
        try:
            result = await self._multiplexer.exchange(
                pb.ConnectionFrame(connection_id=self.connection_id, request=request)
            )
        except HandshakerRpcError as error:
            # A broken stream took the connection with it; after a local timeout the
            # connection is still live in the service, and close() aborts it.
            if error.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                self._open = False
            raise
        if result.HasField("error"):
            self._open = False
            code = _STATUS_BY_CODE.get(result.error.code, grpc.StatusCode.UNKNOWN)
            raise HandshakerRpcError(code, result.error.message)
        response = result.response
        step = Step.from_proto(response.step, response.keys if response.HasField("keys") else None)
        if step.state != pb.HANDSHAKE_STATE_NEED_INPUT:
            self._open = False  # the service has freed it
        return step

    async def close(self) -> None:
        if self._open:
            self._open = False
            self._multiplexer.abort(self.connection_id)
