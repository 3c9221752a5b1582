"""The asyncio handshaker client (grpc.aio): unary RPCs, Handshake and Multiplex streams, typed.

The channel is opened on first use, inside the running event loop.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import grpc
import grpc.aio
from handshaker_wire.v1 import handshaker_pb2 as pb

from .client import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_RPC_TIMEOUT,
    _keys_of,
    first_request,
    method_path,
)
from .errors import HandshakerRpcError
from .handshake import StartOptions, Step, resolve_address
from .keys import SessionKeys
from .multiplex import AsyncMultiplexer, AsyncMultiplexSession

# The metadata key that tells the service the TLS peer's address, for its audit
# trail (the service records it as the caller's word).
PEER_METADATA = "x-handshaker-peer"


def _peer_metadata(peer: str | None) -> tuple[tuple[str, str], ...] | None:
    return ((PEER_METADATA, peer),) if peer else None


class _Calls:
    """The typed multi-callables of one grpc.aio channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.start_client: grpc.aio.UnaryUnaryMultiCallable[
            pb.StartClientRequest, pb.StartClientResponse
        ] = channel.unary_unary(
            method_path("StartClient"),
            request_serializer=pb.StartClientRequest.SerializeToString,
            response_deserializer=pb.StartClientResponse.FromString,
        )
        self.start_server: grpc.aio.UnaryUnaryMultiCallable[
            pb.StartServerRequest, pb.StartServerResponse
        ] = channel.unary_unary(
            method_path("StartServer"),
            request_serializer=pb.StartServerRequest.SerializeToString,
            response_deserializer=pb.StartServerResponse.FromString,
        )
        self.feed: grpc.aio.UnaryUnaryMultiCallable[pb.FeedRequest, pb.FeedResponse] = (
            channel.unary_unary(
                method_path("Feed"),
                request_serializer=pb.FeedRequest.SerializeToString,
                response_deserializer=pb.FeedResponse.FromString,
            )
        )
        self.get_keys: grpc.aio.UnaryUnaryMultiCallable[pb.GetKeysRequest, pb.GetKeysResponse] = (
            channel.unary_unary(
                method_path("GetKeys"),
                request_serializer=pb.GetKeysRequest.SerializeToString,
                response_deserializer=pb.GetKeysResponse.FromString,
            )
        )
        self.export: grpc.aio.UnaryUnaryMultiCallable[
            pb.ExportKeyingMaterialRequest, pb.ExportKeyingMaterialResponse
        ] = channel.unary_unary(
            method_path("ExportKeyingMaterial"),
            request_serializer=pb.ExportKeyingMaterialRequest.SerializeToString,
            response_deserializer=pb.ExportKeyingMaterialResponse.FromString,
        )
        self.abort: grpc.aio.UnaryUnaryMultiCallable[pb.AbortRequest, pb.AbortResponse] = (
            channel.unary_unary(
                method_path("Abort"),
                request_serializer=pb.AbortRequest.SerializeToString,
                response_deserializer=pb.AbortResponse.FromString,
            )
        )
        self.handshake: grpc.aio.StreamStreamMultiCallable[
            pb.HandshakeRequest, pb.HandshakeResponse
        ] = channel.stream_stream(
            method_path("Handshake"),
            request_serializer=pb.HandshakeRequest.SerializeToString,
            response_deserializer=pb.HandshakeResponse.FromString,
        )
        self.multiplex: grpc.aio.StreamStreamMultiCallable[
            pb.MultiplexRequest, pb.MultiplexResponse
        ] = channel.stream_stream(
            method_path("Multiplex"),
            request_serializer=pb.MultiplexRequest.SerializeToString,
            response_deserializer=pb.MultiplexResponse.FromString,
        )


class AsyncHandshakerClient:
    """A grpc.aio channel to the handshaker service and typed calls over it."""

    def __init__(
        self,
        address: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        rpc_timeout: float = DEFAULT_RPC_TIMEOUT,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.address = resolve_address(address)
        self.rpc_timeout = rpc_timeout
        self.handshake_timeout = handshake_timeout
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._calls_cache: _Calls | None = None
        self._multiplexer: AsyncMultiplexer | None = None

    @property
    def _calls(self) -> _Calls:
        if self._calls_cache is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.address)
            else:
                self._channel = grpc.aio.secure_channel(self.address, self._credentials)
            self._calls_cache = _Calls(self._channel)
        return self._calls_cache

    async def close(self) -> None:
        if self._multiplexer is not None:
            await self._multiplexer.close()
            self._multiplexer = None
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
            self._calls_cache = None

    async def __aenter__(self) -> AsyncHandshakerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # The unary API

    async def start_client(
        self, options: pb.ClientOptions, *, keys_in_response: bool = True, peer: str | None = None
    ) -> Step:
        request = pb.StartClientRequest(options=options, keys_in_response=keys_in_response)
        try:
            response = await self._calls.start_client(
                request, timeout=self.rpc_timeout, metadata=_peer_metadata(peer)
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    async def start_server(
        self,
        options: pb.ServerOptions,
        in_bytes: bytes = b"",
        *,
        keys_in_response: bool = True,
        peer: str | None = None,
    ) -> Step:
        request = pb.StartServerRequest(
            options=options, in_bytes=in_bytes, keys_in_response=keys_in_response
        )
        try:
            response = await self._calls.start_server(
                request, timeout=self.rpc_timeout, metadata=_peer_metadata(peer)
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    async def feed(self, session_id: str, in_bytes: bytes, *, peer: str | None = None) -> Step:
        request = pb.FeedRequest(session_id=session_id, in_bytes=in_bytes)
        try:
            response = await self._calls.feed(
                request, timeout=self.rpc_timeout, metadata=_peer_metadata(peer)
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    async def get_keys(self, session_id: str) -> SessionKeys:
        try:
            response = await self._calls.get_keys(
                pb.GetKeysRequest(session_id=session_id), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return SessionKeys.from_proto(response.keys)

    async def export_keying_material(
        self, session_id: str, label: bytes, context: bytes | None, length: int
    ) -> bytes:
        request = pb.ExportKeyingMaterialRequest(
            session_id=session_id,
            label=label,
            context=context or b"",
            no_context=context is None,
            length=length,
        )
        try:
            response = await self._calls.export(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return response.keying_material

    async def abort(self, session_id: str) -> None:
        try:
            await self._calls.abort(
                pb.AbortRequest(session_id=session_id), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None

    # Sessions for the relay loops

    def handshake(self, options: StartOptions, *, peer: str | None = None) -> AsyncStreamSession:
        """A handshake over one Handshake stream; `peer` (the TLS peer's address) goes to
        the service's audit trail."""
        return AsyncStreamSession(self, options, peer=peer)

    def unary_session(self, options: StartOptions, *, peer: str | None = None) -> AsyncUnarySession:
        """A handshake over StartClient/StartServer and Feed, aborted when closed; `peer`
        goes to the service's audit trail."""
        return AsyncUnarySession(self, options, peer=peer)

    def multiplexer(self) -> AsyncMultiplexer:
        """The client's Multiplex streams, shared by every session it makes (made on first use)."""
        if self._multiplexer is None:
            self._multiplexer = AsyncMultiplexer(
                lambda: self._calls.multiplex(None), rpc_timeout=self.rpc_timeout
            )
        return self._multiplexer

    def multiplexed_session(
        self, options: StartOptions, *, peer: str | None = None
    ) -> AsyncMultiplexSession:
        """A handshake on the client's shared Multiplex stream; `peer` (the TLS peer's
        address) goes to the service's audit trail, for this connection alone."""
        return self.multiplexer().session(options, peer=peer)

    def _open_stream(
        self, peer: str | None = None
    ) -> grpc.aio.StreamStreamCall[pb.HandshakeRequest, pb.HandshakeResponse]:
        return self._calls.handshake(
            None, timeout=self.handshake_timeout, metadata=_peer_metadata(peer)
        )


class AsyncStreamSession:
    """One Handshake stream: one connection's handshake, no session id."""

    def __init__(
        self, client: AsyncHandshakerClient, options: StartOptions, *, peer: str | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._peer = peer
        self._call: grpc.aio.StreamStreamCall[pb.HandshakeRequest, pb.HandshakeResponse] | None = (
            None
        )

    async def start(self, in_bytes: bytes = b"") -> Step:
        if self._call is not None:
            raise RuntimeError("the handshake has started")
        self._call = self._client._open_stream(self._peer)
        # In the start request too: a service that reads it prefers it to the metadata.
        return await self._exchange(first_request(self._options, in_bytes, peer=self._peer))

    async def feed(self, in_bytes: bytes) -> Step:
        return await self._exchange(pb.HandshakeRequest(in_bytes=in_bytes))

    async def _exchange(self, request: pb.HandshakeRequest) -> Step:
        if self._call is None:
            raise RuntimeError("start the handshake first")
        try:
            await self._call.write(request)
            response = await self._call.read()
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        except grpc.aio.UsageError:
            # Writing to a stream the service already ended: its status says why.
            raise await self._status_error() from None
        if not isinstance(response, pb.HandshakeResponse):
            # grpc.aio.EOF: the service ended the stream; its status says why.
            raise await self._status_error()
        return Step.from_proto(response.step, response.keys if response.HasField("keys") else None)

    async def _status_error(self) -> HandshakerRpcError:
        assert self._call is not None
        code = await self._call.code()
        if code == grpc.StatusCode.OK:
            return HandshakerRpcError.protocol("the stream ended before the handshake")
        return HandshakerRpcError(code, await self._call.details() or "")

    async def close(self) -> None:
        """Half-close the stream; cancel it if the service does not end it."""
        call, self._call = self._call, None
        if call is None or call.done():
            return
        with contextlib.suppress(grpc.RpcError, grpc.aio.UsageError):
            await call.done_writing()
        call.cancel()


class AsyncUnarySession:
    """One handshake over the unary API; closing it aborts the session in the service."""

    def __init__(
        self, client: AsyncHandshakerClient, options: StartOptions, *, peer: str | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._peer = peer
        self.session_id = ""

    async def start(self, in_bytes: bytes = b"") -> Step:
        if self.session_id:
            raise RuntimeError("the handshake has started")
        if isinstance(self._options, pb.ClientOptions):
            step = await self._client.start_client(self._options, peer=self._peer)
        else:
            step = await self._client.start_server(self._options, in_bytes, peer=self._peer)
        if not step.session_id:
            raise HandshakerRpcError.protocol("a start without a session id")
        self.session_id = step.session_id
        return step

    async def feed(self, in_bytes: bytes) -> Step:
        if not self.session_id:
            raise RuntimeError("start the handshake first")
        return await self._client.feed(self.session_id, in_bytes, peer=self._peer)

    async def close(self) -> None:
        if not self.session_id:
            return
        session_id, self.session_id = self.session_id, ""
        # Already gone (expired or freed) means nothing is left to free.
        with contextlib.suppress(HandshakerRpcError):
            await self._client.abort(session_id)
