"""Private-key operations the engine can wait for: a named suspension point.

A credential's key is either a `Signer` the engine calls inline (a key held in
this process) or a `DeferredKey`: a handle to a key whose operations the
engine's caller runs, asynchronously if it likes (an HSM, a cloud KMS, a remote
keystore). For a DeferredKey the engine stops in a "waiting for a private-key
operation" state and reports a `PrivateKeyOperation` (BoringSSL's
ssl_private_key_retry); `complete_private_key_operation(result)` resumes it.
The engine stays free of I/O, threads and clocks: waiting is a state, not a call.

One mechanism serves every operation a handshake needs: SIGN for TLS 1.3
CertificateVerify (and TLS 1.2 CertificateVerify and ServerKeyExchange), DECRYPT
for TLS 1.2's RSA key exchange (the premaster secret; implicit rejection is the
engine's, tls12/rsa_kex.py, whatever the backend returns).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from .errors import HandshakeFailure
from .signer import Signer, SignerError

if TYPE_CHECKING:
    from .core import Connection, HandshakeState


class OperationKind(enum.Enum):
    SIGN = "sign"
    DECRYPT = "decrypt"


# Subclassed by the keystore layer, which stays Python when the engine is compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class DeferredKey:
    """A handle to a private key whose operations the engine's caller performs.

    `key_id` names the key to the caller's backend (a keystore credential name,
    a PKCS#11 URI, a KMS key id); it is not secret. Subclasses (in the keystore
    layer) add how to perform an operation; the engine never calls them.
    """

    def __init__(
        self, key_id: str, signature_schemes: Sequence[int], *, decrypts: bool = False
    ) -> None:
        self.key_id = key_id
        self._schemes = tuple(signature_schemes)
        # Whether the key may decrypt (TLS 1.2 RSA key exchange, opt-in).
        self.decrypts = decrypts

    @property
    def signature_schemes(self) -> Sequence[int]:
        return self._schemes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"


# What a credential carries as its private key.
PrivateKeyHandle = Signer | DeferredKey


@dataclass(frozen=True, slots=True)
class PrivateKeyOperation:
    """One private-key operation the handshake waits for.

    SIGN: `scheme` is the TLS SignatureScheme and `data` the whole content to be
    signed (not a digest). DECRYPT: `scheme` is 0 and `data` the RSA ciphertext
    (RSAES-PKCS1-v1_5, RFC 5246 section 7.4.7.1).
    """

    kind: OperationKind
    key: DeferredKey
    scheme: int
    data: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return self.key.key_id


class PrivateKeyOperationFailed(Exception):
    """The caller's backend could not perform the operation; the reason names the backend."""


# What a state does with the operation's result: returns the next state.
Continuation = Callable[["Connection", bytes], "HandshakeState"]


class AwaitPrivateKeyOperation:
    """The state while a private-key operation is out: no handshake message is acceptable.

    It is never snapshotted: a caller that loses the process running the
    operation replays the last input from the snapshot before it.
    """

    def __init__(self, operation: PrivateKeyOperation, resume: Continuation) -> None:
        self.operation = operation
        self.resume = resume

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        raise AssertionError("the connection holds records while an operation is out")


def sign_then(
    conn: Connection,
    key: PrivateKeyHandle,
    scheme: int,
    content: bytes,
    then: Continuation,
) -> HandshakeState:
    """Sign `content` inline with a Signer, or stop for a DeferredKey; then go on with `then`."""
    if isinstance(key, DeferredKey):
        return AwaitPrivateKeyOperation(
            PrivateKeyOperation(OperationKind.SIGN, key, scheme, content), then
        )
    return then(conn, key.sign(scheme, content))


def decrypt_then(
    conn: Connection,
    key: PrivateKeyHandle,
    ciphertext: bytes,
    then: Continuation,
) -> HandshakeState:
    """RSAES-PKCS1-v1_5-decrypt `ciphertext` inline, or stop for a DeferredKey; then `then`.

    `then` gets the plaintext, or b"" when an inline key's decryption failed: the TLS 1.2
    caller turns every failure into a random premaster secret (RFC 5246 section 7.4.7.1),
    so a failure must not be an exception that takes another path.
    """
    if isinstance(key, DeferredKey):
        if not key.decrypts:
            raise HandshakeFailure("the credential's key may not decrypt")
        return AwaitPrivateKeyOperation(
            PrivateKeyOperation(OperationKind.DECRYPT, key, 0, ciphertext), then
        )
    decrypt = getattr(key, "decrypt", None)
    if decrypt is None:
        raise HandshakeFailure("the credential's key cannot decrypt")
    plaintext: bytes = decrypt(ciphertext)
    return then(conn, plaintext)


__all__ = [
    "AwaitPrivateKeyOperation",
    "Continuation",
    "DeferredKey",
    "OperationKind",
    "PrivateKeyHandle",
    "PrivateKeyOperation",
    "PrivateKeyOperationFailed",
    "SignerError",
    "decrypt_then",
    "sign_then",
]
