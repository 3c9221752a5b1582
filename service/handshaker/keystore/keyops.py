"""Keys whose private-key operations are awaited: the keystore side of keyops.

A backend whose key lives outside this process (an HSM, a cloud KMS, a remote
keystore) hands the engine an `AsyncKey`: the engine stops with a
PrivateKeyOperation naming it, and the service awaits `perform()` without
blocking its event loop. Failures are KeyOperationError, whose message names
the backend and never carries key material or the data being signed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from handshaker.tls.keyops import DeferredKey, OperationKind, PrivateKeyOperation

from .base import KeystoreError


class KeyOperationError(KeystoreError):
    """A private-key operation failed in its backend (down, refused, timed out)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"keystore {backend}: {reason}")
        self.backend = backend
        self.reason = reason


class AsyncKey(DeferredKey):
    """A private key reached through an asynchronous backend.

    Subclasses implement sign() and, for RSA keys allowed to decrypt, decrypt().
    `backend` names the keystore in failures ("pkcs11:token=...", "kms:...").
    """

    __slots__ = ("backend",)

    def __init__(
        self,
        key_id: str,
        signature_schemes: Sequence[int],
        *,
        backend: str,
        decrypts: bool = False,
    ) -> None:
        super().__init__(key_id, signature_schemes, decrypts=decrypts)
        self.backend = backend

    async def sign(self, scheme: int, message: bytes) -> bytes:
        """Sign the whole `message` with `scheme`; raises KeyOperationError."""
        raise KeyOperationError(self.backend, "this key cannot sign")

    async def sign_digest(self, scheme: int, digest: bytes) -> bytes:
        """Sign a digest made with the scheme's hash (keyless callers); raises KeyOperationError.

        An ECDSA key takes any ECDSA scheme's hash: a TLS 1.2 signature pairs any hash
        with any curve (RFC 5246 section 7.4.1.4.1).
        """
        raise KeyOperationError(self.backend, "this key cannot sign a digest")

    async def decrypt(self, ciphertext: bytes) -> bytes:
        """RSAES-PKCS1-v1_5 decrypt (TLS 1.2 RSA key exchange); raises KeyOperationError."""
        raise KeyOperationError(self.backend, "this key cannot decrypt")


# Told (backend, seconds, ok) after each operation when set (the service's metrics).
observer: Callable[[str, float, bool], None] | None = None


async def perform(operation: PrivateKeyOperation) -> bytes:
    """Run the operation the engine waits for; raises KeyOperationError."""
    watch = observer
    if watch is None:
        return await _perform(operation)
    key = operation.key
    backend = key.backend if isinstance(key, AsyncKey) else "unknown"
    started = time.perf_counter()
    ok = False
    try:
        result = await _perform(operation)
        ok = True
        return result
    finally:
        watch(backend, time.perf_counter() - started, ok)


async def _perform(operation: PrivateKeyOperation) -> bytes:
    key = operation.key
    if not isinstance(key, AsyncKey):
        raise KeyOperationError("unknown", f"key {key.key_id!r} has no asynchronous backend")
    if operation.kind is OperationKind.SIGN:
        if operation.scheme not in key.signature_schemes:
            raise KeyOperationError(
                key.backend, f"key {key.key_id!r} cannot sign with scheme 0x{operation.scheme:04x}"
            )
        return await key.sign(operation.scheme, operation.data)
    if not key.decrypts:
        raise KeyOperationError(key.backend, f"key {key.key_id!r} may not decrypt")
    return await key.decrypt(operation.data)
