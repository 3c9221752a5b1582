"""The synchronous handshaker client: the unary RPCs and the Handshake stream, typed.

    with HandshakerClient() as client:            # $HANDSHAKER_ADDR or 127.0.0.1:50051
        session = client.handshake(client_options("example.com"))
        step = session.start()                    # the ClientHello is in step.out_bytes

gRPC failures raise HandshakerRpcError with the status code; a TLS failure is a
step in state FAILED (the relay loops turn it into HandshakeError).
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from types import TracebackType
from typing import TypeVar, cast

import grpc
from google.protobuf.message import Message
from handshaker_wire.v1 import handshaker_pb2 as pb

from .errors import HandshakerRpcError
from .handshake import StartOptions, Step, resolve_address
from .keys import SessionKeys

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["Handshaker"].full_name
DEFAULT_RPC_TIMEOUT = 10.0
DEFAULT_HANDSHAKE_TIMEOUT = 30.0


def method_path(method: str) -> str:
    return f"/{SERVICE_NAME}/{method}"


Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


def _unary(
    channel: grpc.Channel, method: str, request: type[Request], response: type[Response]
) -> grpc.UnaryUnaryMultiCallable[Request, Response]:
    """The typed callable of one unary RPC of the service."""
    return channel.unary_unary(
        method_path(method),
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


def _keys_of(
    response: pb.StartClientResponse | pb.StartServerResponse | pb.FeedResponse,
) -> pb.SessionKeys | None:
    return response.keys if response.HasField("keys") else None


def first_request(
    options: StartOptions, in_bytes: bytes = b"", *, peer: str | None = None
) -> pb.HandshakeRequest:
    """The request that opens a Handshake stream (or a Multiplex connection); `peer`, the
    TLS peer's address, goes to the service's audit trail."""
    if isinstance(options, pb.ClientOptions):
        return pb.HandshakeRequest(client=options, in_bytes=in_bytes, peer_address=peer or "")
    return pb.HandshakeRequest(server=options, in_bytes=in_bytes, peer_address=peer or "")


class HandshakerClient:
    """A channel to the handshaker service and typed calls over it."""

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
        if credentials is None:
            self._channel = grpc.insecure_channel(self.address)
        else:
            self._channel = grpc.secure_channel(self.address, credentials)
        channel = self._channel
        self._start_client = _unary(
            channel, "StartClient", pb.StartClientRequest, pb.StartClientResponse
        )
        self._start_server = _unary(
            channel, "StartServer", pb.StartServerRequest, pb.StartServerResponse
        )
        self._feed = _unary(channel, "Feed", pb.FeedRequest, pb.FeedResponse)
        self._get_keys = _unary(channel, "GetKeys", pb.GetKeysRequest, pb.GetKeysResponse)
        self._export = _unary(
            channel,
            "ExportKeyingMaterial",
            pb.ExportKeyingMaterialRequest,
            pb.ExportKeyingMaterialResponse,
        )
        self._abort = _unary(channel, "Abort", pb.AbortRequest, pb.AbortResponse)
        self._handshake: grpc.StreamStreamMultiCallable[
            pb.HandshakeRequest, pb.HandshakeResponse
        ] = channel.stream_stream(
            method_path("Handshake"),
            request_serializer=pb.HandshakeRequest.SerializeToString,
            response_deserializer=pb.HandshakeResponse.FromString,
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> HandshakerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # The unary API

    def start_client(self, options: pb.ClientOptions, *, keys_in_response: bool = True) -> Step:
        request = pb.StartClientRequest(options=options, keys_in_response=keys_in_response)
        try:
            response = self._start_client(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    def start_server(
        self, options: pb.ServerOptions, in_bytes: bytes = b"", *, keys_in_response: bool = True
    ) -> Step:
        request = pb.StartServerRequest(
            options=options, in_bytes=in_bytes, keys_in_response=keys_in_response
        )
        try:
            response = self._start_server(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    def feed(self, session_id: str, in_bytes: bytes) -> Step:
        request = pb.FeedRequest(session_id=session_id, in_bytes=in_bytes)
        try:
            response = self._feed(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Step.from_proto(response.step, _keys_of(response))

    def get_keys(self, session_id: str) -> SessionKeys:
        try:
            response = self._get_keys(
                pb.GetKeysRequest(session_id=session_id), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return SessionKeys.from_proto(response.keys)

    def export_keying_material(
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
            response = self._export(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return response.keying_material

    def abort(self, session_id: str) -> None:
        try:
            self._abort(pb.AbortRequest(session_id=session_id), timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None

    # Sessions for the relay loops

    def handshake(self, options: StartOptions, *, peer: str | None = None) -> StreamSession:
        """A handshake over one Handshake stream; `peer` (the TLS peer's address) goes to
        the service's audit trail."""
        return StreamSession(self, options, peer=peer)

    def unary_session(self, options: StartOptions) -> UnarySession:
        """A handshake over StartClient/StartServer and Feed, aborted when closed."""
        return UnarySession(self, options)

    def _open_stream(
        self, requests: Iterator[pb.HandshakeRequest]
    ) -> grpc.CallIterator[pb.HandshakeResponse]:
        return self._handshake(requests, timeout=self.handshake_timeout)


class StreamSession:
    """One Handshake stream: one connection's handshake, no session id."""

    def __init__(
        self, client: HandshakerClient, options: StartOptions, *, peer: str | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._peer = peer
        self._requests: queue.SimpleQueue[pb.HandshakeRequest | None] = queue.SimpleQueue()
        self._call: grpc.CallIterator[pb.HandshakeResponse] | None = None
        self._responses: Iterator[pb.HandshakeResponse] | None = None

    def start(self, in_bytes: bytes = b"") -> Step:
        if self._call is not None:
            raise RuntimeError("the handshake has started")
        self._call = self._client._open_stream(iter(self._requests.get, None))
        self._responses = iter(self._call)
        return self._exchange(first_request(self._options, in_bytes, peer=self._peer))

    def feed(self, in_bytes: bytes) -> Step:
        if self._responses is None:
            raise RuntimeError("start the handshake first")
        return self._exchange(pb.HandshakeRequest(in_bytes=in_bytes))

    def _exchange(self, request: pb.HandshakeRequest) -> Step:
        assert self._responses is not None
        self._requests.put(request)
        try:
            response = next(self._responses)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        except StopIteration:
            raise HandshakerRpcError.protocol("the stream ended before the handshake") from None
        return Step.from_proto(response.step, response.keys if response.HasField("keys") else None)

    def close(self) -> None:
        """Half-close the stream and cancel it if the service has not ended it yet."""
        call, self._call, self._responses = self._call, None, None
        if call is None:
            return
        self._requests.put(None)
        # The response iterator is also a grpc.Future; cancelling an ended call does nothing.
        cast("grpc.Future[pb.HandshakeResponse]", call).cancel()


class UnarySession:
    """One handshake over the unary API; closing it aborts the session in the service."""

    def __init__(self, client: HandshakerClient, options: StartOptions) -> None:
        self._client = client
        self._options = options
        self.session_id = ""

    def start(self, in_bytes: bytes = b"") -> Step:
        if self.session_id:
            raise RuntimeError("the handshake has started")
        if isinstance(self._options, pb.ClientOptions):
            step = self._client.start_client(self._options)
        else:
            step = self._client.start_server(self._options, in_bytes)
        if not step.session_id:
            raise HandshakerRpcError.protocol("a start without a session id")
        self.session_id = step.session_id
        return step

    def feed(self, in_bytes: bytes) -> Step:
        if not self.session_id:
            raise RuntimeError("start the handshake first")
        return self._client.feed(self.session_id, in_bytes)

    def close(self) -> None:
        if not self.session_id:
            return
        session_id, self.session_id = self.session_id, ""
        # Already gone (expired or freed) means nothing is left to free.
        with contextlib.suppress(HandshakerRpcError):
            self._client.abort(session_id)
