"""The KeyOperations gRPC servicer: keyless Sign, Decrypt and GetCredential, and their stream.

For callers whose own TLS stack runs the handshake and who need only the private-key
operation (keystore/keyless.py does it). Each call is authorized by the policy, with
separate grants: Sign needs `sign` on the credential, Decrypt needs `decrypt`, and
GetCredential (public facts only) any grant on it. Each Sign and Decrypt, allowed or
refused, is written to the audit trail; a refusal by the policy is never a key use.

Operate pipelines operations on one stream: at most `max_in_flight` run at once (the
stream is not read further until one finishes, so a fast writer is slowed, not
buffered), answers are written as operations finish, and a failed operation is an
OperationError answer with the status its unary RPC would have had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc

from handshaker.keystore import (
    AccessDenied,
    KeyNotFound,
    KeyOperationError,
    KeyStore,
    KeystoreError,
    KeystoreUnavailable,
    Principal,
    Role,
    check_name,
    key_type,
    keyless,
)
from handshaker.keystore.keyops import AsyncKey
from handshaker.tls import Credential

from . import audit
from .identity import CallerIdentity, Unauthenticated

if TYPE_CHECKING:
    from .metrics import ServiceMetrics

log = logging.getLogger("handshaker.api")

DEFAULT_MAX_IN_FLIGHT = 64
MAX_KEY_ID = 64
_T = TypeVar("_T")
_ANY_GRANT = (Role.SIGN, Role.DECRYPT, Role.SERVER, Role.CLIENT)


class Refusal(Exception):
    """An operation answered with a gRPC status instead of a result."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KeyOperationsServicer(kpb_grpc.KeyOperationsServicer):
    # Set by the server when --metrics-listen is given.
    metrics: ServiceMetrics | None = None

    def __init__(
        self,
        keystore: KeyStore,
        identity: CallerIdentity | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_streams_per_caller: int = 1_000,
    ) -> None:
        self._keystore = keystore
        self._identity = identity if identity is not None else CallerIdentity()
        self._index = keyless.KeyIndex(keystore)
        self._max_in_flight = max_in_flight
        self._max_streams = max_streams_per_caller
        self._streams: Counter[str] = Counter()

    # --- the unary RPCs ----------------------------------------------------------------

    async def Sign(
        self, request: kpb.SignRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> kpb.SignResponse:
        return await self._unary(context, lambda who: self._sign(who, request))

    async def Decrypt(
        self, request: kpb.DecryptRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> kpb.DecryptResponse:
        return await self._unary(context, lambda who: self._decrypt(who, request))

    async def GetCredential(
        self,
        request: kpb.GetCredentialRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> kpb.GetCredentialResponse:
        return await self._unary(context, lambda who: self._get_credential(who, request))

    async def _unary(
        self,
        context: grpc.aio.ServicerContext[object, object],
        operation: Callable[[Principal], Awaitable[_T]],
    ) -> _T:
        try:
            return await operation(self._caller(context))
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)
            raise  # context.abort raises; this line only satisfies the type checker

    def _caller(self, context: grpc.aio.ServicerContext[object, object]) -> Principal:
        audit.rpc_peer.set(audit.peer_from_metadata(context.invocation_metadata()))
        try:
            return self._identity(context)
        except Unauthenticated as error:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, str(error)) from None

    # --- the operations ----------------------------------------------------------------

    def _credential(
        self, principal: Principal, reference: kpb.KeyReference, roles: tuple[Role, ...]
    ) -> tuple[str, Credential]:
        """The credential a request names, if the principal holds one of `roles` on it."""
        which = reference.WhichOneof("key")
        try:
            if which == "credential":
                name = reference.credential
                if len(name) > 128:
                    raise Refusal(
                        grpc.StatusCode.INVALID_ARGUMENT, "key.credential: at most 128 characters"
                    )
                try:
                    check_name(name)
                except ValueError as error:
                    raise Refusal(
                        grpc.StatusCode.INVALID_ARGUMENT, f"key.credential: {error}"
                    ) from None
            elif which == "subject_key_id":
                if not 0 < len(reference.subject_key_id) <= MAX_KEY_ID:
                    raise Refusal(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"key.subject_key_id: 1 to {MAX_KEY_ID} bytes",
                    )
                return self._granted(principal, self._index.names(reference.subject_key_id), roles)
            else:
                raise Refusal(
                    grpc.StatusCode.INVALID_ARGUMENT, "key: set credential or subject_key_id"
                )
            return self._granted(principal, (name,), roles)
        except KeyNotFound as error:
            raise Refusal(grpc.StatusCode.NOT_FOUND, str(error)) from None
        except AccessDenied as error:
            log.info(
                "permission denied",
                extra={"fields": {"caller": str(principal), "reason": str(error)}},
            )
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, str(error)) from None
        except KeystoreUnavailable as error:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, str(error)) from None

    def _granted(
        self, principal: Principal, names: tuple[str, ...], roles: tuple[Role, ...]
    ) -> tuple[str, Credential]:
        """The first of `names` (credentials with one key) that the principal may use."""
        policy = self._keystore.policy()
        for name in names:
            if any(policy.allows_credential(principal, name, role) for role in roles):
                credential = self._keystore.credential(name)
                # A caller that found the credential by name may use its id straight after.
                self._index.note(name, credential)
                return name, credential
        # Unknown names are NOT_FOUND before any word on grants.
        self._keystore.credential(names[0])
        grants = " or ".join(role.value for role in roles)
        raise AccessDenied(
            f"{principal} may not use the credential {names[0]!r} ({grants} grant needed)"
        )

    async def _sign(self, principal: Principal, request: kpb.SignRequest) -> kpb.SignResponse:
        name, credential = self._credential(principal, request.key, (Role.SIGN,))
        which = request.WhichOneof("input")
        if which is None:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "input: set message or digest")
        if which == "message" and len(request.message) > keyless.MAX_SIGN_MESSAGE:
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message: at most {keyless.MAX_SIGN_MESSAGE} bytes",
            )
        scheme = request.signature_scheme
        signature = await self._use(
            principal,
            name,
            credential,
            audit.KeyUse(name, "sign", scheme),
            keyless.sign(
                credential,
                scheme,
                message=request.message if which == "message" else None,
                digest=request.digest if which == "digest" else None,
            ),
        )
        return kpb.SignResponse(signature=signature)

    async def _decrypt(
        self, principal: Principal, request: kpb.DecryptRequest
    ) -> kpb.DecryptResponse:
        name, credential = self._credential(principal, request.key, (Role.DECRYPT,))
        plaintext = await self._use(
            principal,
            name,
            credential,
            audit.KeyUse(name, "decrypt", 0),
            keyless.decrypt(credential, request.ciphertext, request.plaintext_length),
        )
        return kpb.DecryptResponse(plaintext=plaintext)

    async def _get_credential(
        self, principal: Principal, request: kpb.GetCredentialRequest
    ) -> kpb.GetCredentialResponse:
        name, credential = self._credential(principal, request.key, _ANY_GRANT)
        leaf = credential.certificate_chain[0]
        return kpb.GetCredentialResponse(
            credential=name,
            certificate_chain=credential.chain_der,
            key_type=key_type(leaf),
            signature_schemes=_schemes(credential),
            decrypts=keyless.decrypts(credential),
            subject_key_id=self._index.note(name, credential),
        )

    async def _use(
        self,
        principal: Principal,
        name: str,
        credential: Credential,
        use: audit.KeyUse,
        operation: Awaitable[bytes],
    ) -> bytes:
        """Run one key operation: status on failure, an audit line and a metric either way."""
        key = credential.signer
        backend = key.backend if isinstance(key, AsyncKey) else "inline"
        started = time.perf_counter()
        reason: str | None = None
        try:
            return await operation
        except keyless.KeylessRefused as error:
            use.ok, reason = False, f"{error.field}: {error}"
            code = (
                grpc.StatusCode.FAILED_PRECONDITION
                if error.field == "key"
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            raise Refusal(code, reason) from None
        except (KeyOperationError, KeystoreError) as error:
            use.ok, reason = False, str(error)
            raise Refusal(grpc.StatusCode.UNAVAILABLE, reason) from None
        except asyncio.CancelledError:
            use.ok, reason = False, "the request was cancelled during the operation"
            raise
        except Exception as error:  # a backend's bug is one failed operation, named
            use.ok, reason = False, f"keystore {backend}: operation failed ({type(error).__name__})"
            log.exception("keyless operation failed", extra={"fields": {"credential": name}})
            raise Refusal(grpc.StatusCode.INTERNAL, reason) from None
        finally:
            scope = audit.AuditScope(str(principal), "keyless", "", audit.rpc_peer.get())
            audit.write(scope, use, alert=None, reason=reason)
            metrics = self.metrics
            if metrics is not None:
                metrics.key_operation(backend, time.perf_counter() - started, use.ok)

    # --- the stream --------------------------------------------------------------------

    async def Operate(
        self,
        request_iterator: AsyncIterator[kpb.OperateRequest],
        context: grpc.aio.ServicerContext[kpb.OperateRequest, kpb.OperateResponse],
    ) -> None:
        try:
            principal = self._caller(context)  # type: ignore[arg-type]
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)
            return
        owner = str(principal)
        if self._streams[owner] >= self._max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this caller holds {self._max_streams} Operate streams",
            )
            return
        self._streams[owner] += 1
        try:
            await self._operate(principal, context)
        finally:
            self._streams[owner] -= 1
            if self._streams[owner] <= 0:
                del self._streams[owner]

    async def _operate(
        self,
        principal: Principal,
        context: grpc.aio.ServicerContext[kpb.OperateRequest, kpb.OperateResponse],
    ) -> None:
        slots = asyncio.Semaphore(self._max_in_flight)
        write_lock = asyncio.Lock()
        # Ids still running (a second one is refused), and every task until it has written.
        running: set[int] = set()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(request: kpb.OperateRequest) -> None:
            response = kpb.OperateResponse(operation_id=request.operation_id)
            try:
                await self._one(principal, request, response)
            except Refusal as refusal:
                response.error.code = refusal.code.value[0]
                response.error.message = refusal.message
            finally:
                running.discard(request.operation_id)
                slots.release()
            async with write_lock:
                await context.write(response)

        try:
            while True:
                await slots.acquire()
                request = await context.read()
                if request is grpc.aio.EOF:  # type: ignore[attr-defined]
                    slots.release()
                    break
                assert isinstance(request, kpb.OperateRequest)
                if request.operation_id in running:
                    slots.release()
                    async with write_lock:
                        await context.write(
                            kpb.OperateResponse(
                                operation_id=request.operation_id,
                                error=kpb.OperationError(
                                    code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                    message=f"operation_id: {request.operation_id} is still "
                                    "running on this stream",
                                ),
                            )
                        )
                    continue
                running.add(request.operation_id)
                task = asyncio.create_task(answer(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in list(tasks):
                task.cancel()

    async def _one(
        self, principal: Principal, request: kpb.OperateRequest, response: kpb.OperateResponse
    ) -> None:
        which = request.WhichOneof("operation")
        if which == "sign":
            response.sign.CopyFrom(await self._sign(principal, request.sign))
        elif which == "decrypt":
            response.decrypt.CopyFrom(await self._decrypt(principal, request.decrypt))
        elif which == "get_credential":
            response.get_credential.CopyFrom(
                await self._get_credential(principal, request.get_credential)
            )
        else:
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                "operation: set sign, decrypt or get_credential",
            )


def _schemes(credential: Credential) -> list[int]:
    """The schemes the key signs with: its TLS 1.3 ones, then TLS 1.2's PKCS#1 for RSA keys."""
    schemes = list(keyless.signature_schemes(credential))
    for scheme in keyless.TLS12_EXTRA_SCHEMES:
        if scheme not in schemes and keyless.key_signs(credential, scheme):
            schemes.append(scheme)
    return schemes
