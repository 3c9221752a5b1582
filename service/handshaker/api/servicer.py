"""The Handshaker gRPC servicer: the unary RPCs, the Handshake stream and the Multiplex
stream, each made of the shared steps (steps.py).

A Multiplex message carries at most max_frames frames (the extras get INVALID_ARGUMENT
each) and the loop yields to other RPCs every few frames; a Multiplex stream with no
live connection ends after the idle timeout, and each open stream counts against a
per-caller cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc

from handshaker.keystore import Principal
from handshaker.sessions import Session, SessionNotFound, SessionStoreUnavailable
from handshaker.tls import ProtocolVersion
from handshaker.tls.key_schedule import CipherSuiteParams

from . import audit
from .responses import fill_session_keys
from .status import StatusError, unary
from .steps import MAX_IN_BYTES, SessionSteps

log = logging.getLogger("handshaker.api")

MAX_EXPORT_LENGTH = 16384

# The PRF labels of RFC 5246 and RFC 7627, which an RFC 5705 exporter must not reuse.
TLS12_RESERVED_LABELS = frozenset(
    {
        b"client finished",
        b"server finished",
        b"master secret",
        b"key expansion",
        b"extended master secret",
    }
)

# Frames handled between two yields to the event loop, so one big message shares it.
FRAMES_PER_YIELD = 16


class HandshakerServicer(SessionSteps, pb_grpc.HandshakerServicer):
    # --- unary RPCs (misuse raises StatusError; the unary wrapper answers it) -------------

    @unary
    async def StartClient(
        self, request: pb.StartClientRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.StartClientResponse:
        session = await self._start_unary(
            self._caller(context), request.options, request.keys_in_response
        )
        response = pb.StartClientResponse()
        await self._advance(session, b"", response)
        if self._saves:
            await self._save(session)
        return response

    @unary
    async def StartServer(
        self, request: pb.StartServerRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.StartServerResponse:
        if len(request.in_bytes) > MAX_IN_BYTES:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "in_bytes larger than 1 MiB")
        session = await self._start_unary(
            self._caller(context), request.options, request.keys_in_response
        )
        response = pb.StartServerResponse()
        await self._advance(session, request.in_bytes, response)
        if self._saves:
            await self._save(session)
        return response

    @unary
    async def Feed(
        self, request: pb.FeedRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.FeedResponse:
        session = await self._session(request.session_id, self._caller(context))
        response = pb.FeedResponse()
        await self._advance(session, request.in_bytes, response)
        if self._saves:
            await self._save(session)
        return response

    @unary
    async def GetKeys(
        self, request: pb.GetKeysRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetKeysResponse:
        session = await self._session(request.session_id, self._caller(context))
        if session.result is None:
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, "the handshake is not complete")
        response = pb.GetKeysResponse()
        fill_session_keys(response.keys, session.result)
        return response

    @unary
    async def ExportKeyingMaterial(
        self,
        request: pb.ExportKeyingMaterialRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ExportKeyingMaterialResponse:
        session = await self._session(request.session_id, self._caller(context))
        result = session.result
        if result is None:
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, "the handshake is not complete")
        if not 1 <= request.length <= MAX_EXPORT_LENGTH:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "length must be 1 to 16384")
        # HkdfLabel.label is <7..255> including the "tls13 " prefix.
        if not 1 <= len(request.label) <= 249:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "label must be 1 to 249 bytes")
        context_value: bytes | None = request.context
        if result.version == ProtocolVersion.TLS1_2:
            # RFC 5705 section 4: the labels the TLS PRF itself uses are not exporters.
            if request.label in TLS12_RESERVED_LABELS:
                raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "label is reserved by TLS 1.2")
            if len(request.context) >= 2**16:
                raise StatusError(
                    grpc.StatusCode.INVALID_ARGUMENT, "context must be under 65536 bytes"
                )
            if request.no_context:
                context_value = None
        elif request.length > 255 * CipherSuiteParams.for_suite(result.cipher_suite).hash_len:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "length too large for the hash")
        material = result.export_keying_material(request.label, context_value, request.length)
        return pb.ExportKeyingMaterialResponse(keying_material=material)

    @unary
    async def Abort(
        self, request: pb.AbortRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AbortResponse:
        if not request.session_id:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        try:
            # Neither loaded nor restored: the store checks the owner as it deletes.
            await self._sessions.discard(request.session_id, str(self._caller(context)))
        except SessionNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, "no such session") from None
        except SessionStoreUnavailable as error:
            raise StatusError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        log.debug("session aborted", extra={"fields": {"session": request.session_id[:8]}})
        return pb.AbortResponse()

    # --- the stream -----------------------------------------------------------------------

    async def Handshake(
        self,
        request_iterator: AsyncIterator[pb.HandshakeRequest],
        context: grpc.aio.ServicerContext[pb.HandshakeRequest, pb.HandshakeResponse],
    ) -> None:
        # context.read()/write() rather than an async generator over request_iterator:
        # the same messages with fewer layers of awaitables on the hot path.
        session: Session | None = None
        opened = time.monotonic()
        try:
            owner = self._caller(context)  # type: ignore[arg-type]
            while True:
                left = self._deadline_left(session, opened)
                try:
                    # An idle stream is an abandoned handshake: end it like an idle session.
                    # The absolute deadline bounds the wait too, so a silent stream ends
                    # on time, not at its next message. (asyncio.timeout adds a timer,
                    # not a task, to each read.)
                    async with asyncio.timeout(max(0.0, min(self._idle_timeout, left))):
                        request = await context.read()
                except TimeoutError:
                    if self._deadline_left(session, opened) <= 0:
                        raise StatusError(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the handshake did not complete within {self._handshake_timeout:g} s",
                        ) from None
                    raise StatusError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        "no handshake bytes within the idle timeout",
                    ) from None
                if request is grpc.aio.EOF:  # type: ignore[attr-defined]
                    return
                assert isinstance(request, pb.HandshakeRequest)
                if session is None:
                    session = self._stream_start(owner, request)
                elif request.HasField("client") or request.HasField("server"):
                    raise StatusError(
                        grpc.StatusCode.INVALID_ARGUMENT, "only the first message may start"
                    )
                self._streams.touch(session)
                response = pb.HandshakeResponse()
                state = await self._advance(session, request.in_bytes, response, with_id=False)
                await context.write(response)
                if state != pb.HANDSHAKE_STATE_NEED_INPUT:
                    return
        except StatusError as abort:
            await self._fail(context, abort)  # type: ignore[arg-type]
        finally:
            if session is not None:
                self._streams.remove(session.session_id)

    def _stream_start(self, owner: Principal, request: pb.HandshakeRequest) -> Session:
        """The session a Handshake stream's first message starts."""
        start = request.WhichOneof("start")
        if start is None:
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message on a stream must carry client or server options",
            )
        options = request.client if start == "client" else request.server
        session = self._start(owner, options, True)
        if start == "client" and request.in_bytes:
            self._streams.remove(session.session_id)
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a client start carries no in_bytes; the client speaks first",
            )
        session.peer = audit.peer_from_request(request.peer_address)
        return session

    # --- the multiplexed stream -----------------------------------------------------------

    async def Multiplex(
        self,
        request_iterator: AsyncIterator[pb.MultiplexRequest],
        context: grpc.aio.ServicerContext[pb.MultiplexRequest, pb.MultiplexResponse],
    ) -> None:
        try:
            owner = self._caller(context)  # type: ignore[arg-type]
            if self._multiplex_streams[str(owner)] >= self._max_streams:
                raise StatusError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this caller holds {self._max_streams} Multiplex streams",
                )
        except StatusError as abort:
            await self._fail(context, abort)  # type: ignore[arg-type]
            return
        self._multiplex_streams[str(owner)] += 1
        try:
            await self._multiplex(owner, context)
        finally:
            self._multiplex_streams[str(owner)] -= 1
            if self._multiplex_streams[str(owner)] <= 0:
                del self._multiplex_streams[str(owner)]

    async def _multiplex(
        self,
        owner: Principal,
        context: grpc.aio.ServicerContext[pb.MultiplexRequest, pb.MultiplexResponse],
    ) -> None:
        live: dict[int, Session] = {}
        idle = self._idle_timeout
        # Idle and overdue connections are found by a sweep every quarter of the
        # shorter timeout, not by a timer each: one read timeout covers them all.
        period = min(idle, self._handshake_timeout) / 4
        next_sweep = time.monotonic() + period
        # A read is never cancelled (that would break the stream): the sweep waits
        # beside it, and the same read is awaited again after a sweep.
        read: asyncio.Task[object] | None = None
        try:
            while True:
                pending = read
                if pending is None:
                    pending = read = asyncio.create_task(context.read())
                if live:
                    await asyncio.wait((pending,), timeout=max(0.0, next_sweep - time.monotonic()))
                else:
                    # No connection to expire: the stream itself may idle for the idle
                    # timeout (a proxy keeps one open between bursts), then it ends and
                    # stops holding its memory; a client opens a new one when it needs it.
                    done, _ = await asyncio.wait((pending,), timeout=idle)
                    if not done:
                        await context.abort(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            "no connection on this Multiplex stream within the idle timeout",
                        )
                request = None
                if pending.done():
                    request, read = pending.result(), None
                    if request is grpc.aio.EOF:  # type: ignore[attr-defined]
                        return
                response = pb.MultiplexResponse()
                results = response.results
                if request is not None:
                    assert isinstance(request, pb.MultiplexRequest)
                    await self._answer_frames(owner, live, request, response)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + period
                    self._sweep(live, now, response)
                if results:
                    await context.write(response)
        finally:
            if read is not None:
                read.cancel()
            for session in live.values():
                self._streams.remove(session.session_id)

    async def _answer_frames(
        self,
        owner: Principal,
        live: dict[int, Session],
        request: pb.MultiplexRequest,
        response: pb.MultiplexResponse,
    ) -> None:
        """One MultiplexRequest's frames, each answered in `response` (in order)."""
        results = response.results
        waiting: list[tuple[Session, int, pb.ConnectionResult]] = []
        for index, frame in enumerate(request.frames):
            result = results.add()
            if index >= self._max_frames:
                # Refused unread, so the extras cost an answer each, no work.
                result.connection_id = frame.connection_id
                _frame_error(
                    result,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"at most {self._max_frames} frames per Multiplex message",
                )
                continue
            if index and index % FRAMES_PER_YIELD == 0:
                # Let other RPCs run: one message must not hold the loop.
                await asyncio.sleep(0)
            session = self._frame(owner, live, frame, result)
            if session is not None:
                waiting.append((session, len(frame.request.in_bytes), result))
        # Every connection of the message that waits for a key operation (a deferred
        # key: HSM, KMS) waits at once; an inline signer's are done.
        deferred = [
            self._key_operations(w[0])
            for w in waiting
            if w[0].connection is not None and w[0].connection.pending_operation is not None
        ]
        if deferred:
            await asyncio.gather(*deferred)
        for session, fed, result in waiting:
            self._frame_step(live, session, fed, result)

    def _sweep(self, live: dict[int, Session], now: float, response: pb.MultiplexResponse) -> None:
        """End the stream's overdue and idle connections, each with a result that says so."""
        for connection_id, session in list(live.items()):
            if now - session.started_at > self._handshake_timeout:
                message = f"the handshake did not complete within {self._handshake_timeout:g} s"
            elif now - session.last_used > self._idle_timeout:
                message = "no handshake bytes within the idle timeout"
            else:
                continue
            self._end(live, connection_id)
            _frame_error(
                response.results.add(connection_id=connection_id),
                grpc.StatusCode.DEADLINE_EXCEEDED,
                message,
            )

    def _end(self, live: dict[int, Session], connection_id: int) -> None:
        session = live.pop(connection_id, None)
        if session is not None:
            self._streams.remove(session.session_id)

    def _frame(
        self,
        owner: Principal,
        live: dict[int, Session],
        frame: pb.ConnectionFrame,
        result: pb.ConnectionResult,
    ) -> Session | None:
        """Answer one frame of the Multiplex stream in `result`; misuse ends only its own
        connection. A session waiting for a private-key operation is returned instead:
        the caller awaits it and answers with _frame_step."""
        connection_id = result.connection_id = frame.connection_id
        try:
            if connection_id == 0:
                raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "connection_id must be nonzero")
            session = live.get(connection_id)
            if frame.abort:
                self._end(live, connection_id)
                return None
            request = frame.request
            start = request.WhichOneof("start")
            if session is None:
                if start is None:
                    raise StatusError(
                        grpc.StatusCode.NOT_FOUND,
                        "no live connection with this id; a connection's first frame "
                        "must carry client or server options",
                    )
                if start == "client" and request.in_bytes:
                    raise StatusError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "a client start carries no in_bytes; the client speaks first",
                    )
                options = request.client if start == "client" else request.server
                session = self._start(owner, options, True)
                # Per connection: one Multiplex stream carries many TLS peers.
                session.peer = audit.peer_from_request(request.peer_address)
                live[connection_id] = session
            elif start is not None:
                raise StatusError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "this connection has started; only its first frame may carry options",
                )
            elif time.monotonic() - session.last_used > self._idle_timeout:
                raise StatusError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "no handshake bytes within the idle timeout"
                )
            else:
                self._streams.touch(session)
            connection = self._feed(session, request.in_bytes)
        except StatusError as abort:
            self._end(live, connection_id)
            result.ClearField("response")
            _frame_error(result, abort.code, abort.message)
            return None
        if connection.pending_operation is not None:
            return session
        self._frame_step(live, session, len(request.in_bytes), result)
        return None

    def _frame_step(
        self, live: dict[int, Session], session: Session, fed: int, result: pb.ConnectionResult
    ) -> None:
        state = self._respond(session, fed, result.response, with_id=False)
        if state != pb.HANDSHAKE_STATE_NEED_INPUT:
            self._end(live, result.connection_id)


def _frame_error(result: pb.ConnectionResult, code: grpc.StatusCode, message: str) -> None:
    error = result.error
    error.code = code.value[0]
    error.message = message
