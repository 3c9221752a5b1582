"""Keyless use of the service: private-key operations and chain validation, sync and asyncio.

For a caller whose own TLS stack runs the handshake and needs the service only for the
signature (or TLS 1.2 RSA decryption) and the verdict on its peer's chain:

    with KeylessClient() as keys:                        # $HANDSHAKER_ADDR or 127.0.0.1:50051
        info = keys.get_credential("web")                # chain, key type, schemes
        signature = keys.sign("web", 0x0403, message=b"...")
        verdict = keys.validate_chain(chain, dns_name="example.com")

    async with AsyncKeylessClient() as keys:
        async with keys.pipeline() as ops:               # one Operate stream, many in flight
            signatures = await asyncio.gather(*(ops.sign("web", 0x0403, message=m) for m in ms))

A key is named by its credential name (str) or its leaf's subjectKeyIdentifier (bytes).
Failures raise HandshakerRpcError with the status code; an invalid chain is a Verdict.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from handshaker_wire.v1 import keyless_pb2 as kpb

from .errors import HandshakerRpcError
from .handshake import resolve_address

KEY_OPERATIONS: str = kpb.DESCRIPTOR.services_by_name["KeyOperations"].full_name
VALIDATOR: str = kpb.DESCRIPTOR.services_by_name["CertificateValidator"].full_name
DEFAULT_RPC_TIMEOUT = 10.0
# TLS 1.2's premaster secret.
PREMASTER_LENGTH = 48

Key = str | bytes
Purpose = Literal["server", "client"]


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """The public half of a credential, as GetCredential returns it (never key bytes)."""

    name: str
    certificate_chain: tuple[bytes, ...]
    key_type: str
    signature_schemes: tuple[int, ...]
    decrypts: bool
    subject_key_id: bytes

    @classmethod
    def from_proto(cls, response: kpb.GetCredentialResponse) -> CredentialInfo:
        return cls(
            name=response.credential,
            certificate_chain=tuple(response.certificate_chain),
            key_type=response.key_type,
            signature_schemes=tuple(response.signature_schemes),
            decrypts=response.decrypts,
            subject_key_id=response.subject_key_id,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """ValidateChain's answer: the verified path, or the TLS alert and the reason."""

    valid: bool
    verified_path: tuple[bytes, ...] = ()
    alert: int = 0
    reason: str = ""

    @classmethod
    def from_proto(cls, response: kpb.ValidateChainResponse) -> Verdict:
        return cls(
            valid=response.verdict == kpb.VERDICT_VALID,
            verified_path=tuple(response.verified_path),
            alert=response.alert,
            reason=response.reason,
        )


def key_reference(key: Key) -> kpb.KeyReference:
    if isinstance(key, bytes):
        return kpb.KeyReference(subject_key_id=key)
    return kpb.KeyReference(credential=key)


def sign_request(
    key: Key, scheme: int, *, message: bytes | None = None, digest: bytes | None = None
) -> kpb.SignRequest:
    if (message is None) == (digest is None):
        raise ValueError("give message or digest, one of them")
    request = kpb.SignRequest(key=key_reference(key), signature_scheme=scheme)
    if message is not None:
        request.message = message
    else:
        assert digest is not None
        request.digest = digest
    return request


def decrypt_request(key: Key, ciphertext: bytes, plaintext_length: int) -> kpb.DecryptRequest:
    return kpb.DecryptRequest(
        key=key_reference(key), ciphertext=ciphertext, plaintext_length=plaintext_length
    )


def validate_request(
    chain: Sequence[bytes],
    *,
    purpose: Purpose = "server",
    dns_name: str | None = None,
    ip_address: str | None = None,
    spiffe_id: str | None = None,
    trust_bundle: str | None = None,
    at: datetime.datetime | None = None,
) -> kpb.ValidateChainRequest:
    """A ValidateChainRequest; at most one of dns_name, ip_address and spiffe_id."""
    if sum(x is not None for x in (dns_name, ip_address, spiffe_id)) > 1:
        raise ValueError("give one of dns_name, ip_address and spiffe_id")
    request = kpb.ValidateChainRequest(
        certificate_chain=list(chain),
        purpose=kpb.PURPOSE_SERVER_AUTH if purpose == "server" else kpb.PURPOSE_CLIENT_AUTH,
        trust_bundle=trust_bundle or "",
    )
    if dns_name is not None:
        request.dns_name = dns_name
    elif ip_address is not None:
        request.ip_address = ip_address
    elif spiffe_id is not None:
        request.spiffe_id = spiffe_id
    if at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(at)
        request.validation_time.CopyFrom(stamp)
    return request


def _path(service: str, method: str) -> str:
    return f"/{service}/{method}"


class KeylessClient:
    """Blocking calls to KeyOperations and CertificateValidator."""

    def __init__(
        self,
        address: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        rpc_timeout: float = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        self.address = resolve_address(address)
        self.rpc_timeout = rpc_timeout
        channel = (
            grpc.insecure_channel(self.address)
            if credentials is None
            else grpc.secure_channel(self.address, credentials)
        )
        self._channel = channel
        self._sign: grpc.UnaryUnaryMultiCallable[kpb.SignRequest, kpb.SignResponse] = (
            channel.unary_unary(
                _path(KEY_OPERATIONS, "Sign"),
                request_serializer=kpb.SignRequest.SerializeToString,
                response_deserializer=kpb.SignResponse.FromString,
            )
        )
        self._decrypt: grpc.UnaryUnaryMultiCallable[kpb.DecryptRequest, kpb.DecryptResponse] = (
            channel.unary_unary(
                _path(KEY_OPERATIONS, "Decrypt"),
                request_serializer=kpb.DecryptRequest.SerializeToString,
                response_deserializer=kpb.DecryptResponse.FromString,
            )
        )
        self._get: grpc.UnaryUnaryMultiCallable[
            kpb.GetCredentialRequest, kpb.GetCredentialResponse
        ] = channel.unary_unary(
            _path(KEY_OPERATIONS, "GetCredential"),
            request_serializer=kpb.GetCredentialRequest.SerializeToString,
            response_deserializer=kpb.GetCredentialResponse.FromString,
        )
        self._validate: grpc.UnaryUnaryMultiCallable[
            kpb.ValidateChainRequest, kpb.ValidateChainResponse
        ] = channel.unary_unary(
            _path(VALIDATOR, "ValidateChain"),
            request_serializer=kpb.ValidateChainRequest.SerializeToString,
            response_deserializer=kpb.ValidateChainResponse.FromString,
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> KeylessClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def sign(
        self, key: Key, scheme: int, *, message: bytes | None = None, digest: bytes | None = None
    ) -> bytes:
        """The signature (as TLS sends it) over `message`, or over its `digest`."""
        request = sign_request(key, scheme, message=message, digest=digest)
        try:
            return self._sign(request, timeout=self.rpc_timeout).signature
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None

    def decrypt(
        self, key: Key, ciphertext: bytes, plaintext_length: int = PREMASTER_LENGTH
    ) -> bytes:
        """RSAES-PKCS1-v1_5 with implicit rejection: `plaintext_length` bytes, always."""
        try:
            response = self._decrypt(
                decrypt_request(key, ciphertext, plaintext_length), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return response.plaintext

    def get_credential(self, key: Key) -> CredentialInfo:
        request = kpb.GetCredentialRequest(key=key_reference(key))
        try:
            return CredentialInfo.from_proto(self._get(request, timeout=self.rpc_timeout))
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None

    def validate_chain(
        self,
        chain: Sequence[bytes],
        *,
        purpose: Purpose = "server",
        dns_name: str | None = None,
        ip_address: str | None = None,
        spiffe_id: str | None = None,
        trust_bundle: str | None = None,
        at: datetime.datetime | None = None,
    ) -> Verdict:
        """The verdict on a DER chain (leaf first); an invalid chain is a Verdict, not an error."""
        request = validate_request(
            chain,
            purpose=purpose,
            dns_name=dns_name,
            ip_address=ip_address,
            spiffe_id=spiffe_id,
            trust_bundle=trust_bundle,
            at=at,
        )
        try:
            return Verdict.from_proto(self._validate(request, timeout=self.rpc_timeout))
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None


class AsyncKeylessClient:
    """The asyncio twin of KeylessClient, with a pipelined Operate stream."""

    def __init__(
        self,
        address: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        rpc_timeout: float = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        self.address = resolve_address(address)
        self.rpc_timeout = rpc_timeout
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = (
                grpc.aio.insecure_channel(self.address)
                if self._credentials is None
                else grpc.aio.secure_channel(self.address, self._credentials)
            )
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def __aenter__(self) -> AsyncKeylessClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def sign(
        self, key: Key, scheme: int, *, message: bytes | None = None, digest: bytes | None = None
    ) -> bytes:
        call = self._open().unary_unary(
            _path(KEY_OPERATIONS, "Sign"),
            request_serializer=kpb.SignRequest.SerializeToString,
            response_deserializer=kpb.SignResponse.FromString,
        )
        request = sign_request(key, scheme, message=message, digest=digest)
        try:
            response: kpb.SignResponse = await call(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return response.signature

    async def decrypt(
        self, key: Key, ciphertext: bytes, plaintext_length: int = PREMASTER_LENGTH
    ) -> bytes:
        call = self._open().unary_unary(
            _path(KEY_OPERATIONS, "Decrypt"),
            request_serializer=kpb.DecryptRequest.SerializeToString,
            response_deserializer=kpb.DecryptResponse.FromString,
        )
        try:
            response: kpb.DecryptResponse = await call(
                decrypt_request(key, ciphertext, plaintext_length), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return response.plaintext

    async def get_credential(self, key: Key) -> CredentialInfo:
        call = self._open().unary_unary(
            _path(KEY_OPERATIONS, "GetCredential"),
            request_serializer=kpb.GetCredentialRequest.SerializeToString,
            response_deserializer=kpb.GetCredentialResponse.FromString,
        )
        try:
            response: kpb.GetCredentialResponse = await call(
                kpb.GetCredentialRequest(key=key_reference(key)), timeout=self.rpc_timeout
            )
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return CredentialInfo.from_proto(response)

    async def validate_chain(
        self,
        chain: Sequence[bytes],
        *,
        purpose: Purpose = "server",
        dns_name: str | None = None,
        ip_address: str | None = None,
        spiffe_id: str | None = None,
        trust_bundle: str | None = None,
        at: datetime.datetime | None = None,
    ) -> Verdict:
        call = self._open().unary_unary(
            _path(VALIDATOR, "ValidateChain"),
            request_serializer=kpb.ValidateChainRequest.SerializeToString,
            response_deserializer=kpb.ValidateChainResponse.FromString,
        )
        request = validate_request(
            chain,
            purpose=purpose,
            dns_name=dns_name,
            ip_address=ip_address,
            spiffe_id=spiffe_id,
            trust_bundle=trust_bundle,
            at=at,
        )
        try:
            response: kpb.ValidateChainResponse = await call(request, timeout=self.rpc_timeout)
        except grpc.RpcError as error:
            raise HandshakerRpcError.from_grpc(error) from None
        return Verdict.from_proto(response)

    def pipeline(self) -> OperationPipeline:
        """Operations pipelined on one Operate stream (`async with keys.pipeline() as ops`)."""
        return OperationPipeline(self._open())


class OperationPipeline:
    """Many key operations in flight on one Operate stream, each awaited on its own."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[kpb.OperateResponse]] = {}
        self._call: grpc.aio.StreamStreamCall[kpb.OperateRequest, kpb.OperateResponse] | None = None
        self._reader: asyncio.Task[None] | None = None
        # grpc.aio takes one write at a time on a stream.
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> OperationPipeline:
        call = self._channel.stream_stream(
            _path(KEY_OPERATIONS, "Operate"),
            request_serializer=kpb.OperateRequest.SerializeToString,
            response_deserializer=kpb.OperateResponse.FromString,
        )()  # type: ignore[call-arg]  # grpc.aio: no iterator means call.write() feeds it
        self._call = call
        self._reader = asyncio.create_task(self._read(call))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        call, reader = self._call, self._reader
        if call is None or reader is None:
            return
        if exc is None and self._waiting:
            await asyncio.gather(*self._waiting.values(), return_exceptions=True)
        await call.done_writing()
        if exc is not None:
            call.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    async def _read(
        self, call: grpc.aio.StreamStreamCall[kpb.OperateRequest, kpb.OperateResponse]
    ) -> None:
        failure: HandshakerRpcError | None = None
        try:
            while True:
                # read(), not `async for`: grpc.aio refuses to mix the iterator with write().
                response = await call.read()
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]
                    break
                assert isinstance(response, kpb.OperateResponse)
                future = self._waiting.pop(response.operation_id, None)
                if future is not None and not future.done():
                    future.set_result(response)
        except grpc.RpcError as error:
            failure = HandshakerRpcError.from_grpc(error)
        finally:
            ended = failure or HandshakerRpcError.protocol("the Operate stream ended")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ended)
            self._waiting.clear()

    async def _operate(self, request: kpb.OperateRequest) -> kpb.OperateResponse:
        if self._call is None:
            raise RuntimeError("use the pipeline in `async with`")
        operation_id = next(self._ids)
        request.operation_id = operation_id
        future: asyncio.Future[kpb.OperateResponse] = asyncio.get_running_loop().create_future()
        self._waiting[operation_id] = future
        async with self._write_lock:
            await self._call.write(request)
        response = await future
        if response.WhichOneof("result") == "error":
            raise HandshakerRpcError(_status(response.error.code), response.error.message)
        return response

    async def sign(
        self, key: Key, scheme: int, *, message: bytes | None = None, digest: bytes | None = None
    ) -> bytes:
        request = kpb.OperateRequest(sign=sign_request(key, scheme, message=message, digest=digest))
        return (await self._operate(request)).sign.signature

    async def decrypt(
        self, key: Key, ciphertext: bytes, plaintext_length: int = PREMASTER_LENGTH
    ) -> bytes:
        request = kpb.OperateRequest(decrypt=decrypt_request(key, ciphertext, plaintext_length))
        return (await self._operate(request)).decrypt.plaintext

    async def get_credential(self, key: Key) -> CredentialInfo:
        request = kpb.OperateRequest(
            get_credential=kpb.GetCredentialRequest(key=key_reference(key))
        )
        return CredentialInfo.from_proto((await self._operate(request)).get_credential)


def _status(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN
