"""The audit trail: one JSON line for every private-key use, on the logger "handshaker.audit".

A key is used when the engine signs (server CertificateVerify; client CertificateVerify
under client auth) with an inline Signer, or when the servicer performs a deferred
operation (an AsyncKey: HSM, KMS). Inline signers are wrapped in AuditedSigner, so a
use is seen where it happens, whatever the handshake does next; the servicer opens an
AuditScope around each engine step of a session and writes the scope's uses once the
step's outcome is known, so each line carries the result (ok, or failed with the
alert). A use outside any scope (a replay during a restore, say) is written at once.

A line names the principal, credential, role, operation and scheme, the SNI, the
peer address the caller reported (the `peer_address` of a stream connection's start
request, else gRPC metadata `x-handshaker-peer` of the RPC: it is the caller's word,
recorded as such), the session id's first 8 characters, the result and the alert.
Never a key, a signature, or the data signed.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from handshaker.tls import Credential, Signer
from handshaker.tls.keyops import DeferredKey

audit_log = logging.getLogger("handshaker.audit")

# The metadata key a caller uses to tell the service its TLS peer's address.
PEER_METADATA = "x-handshaker-peer"
# The caller's word, so bounded: an address with a port is far shorter.
MAX_PEER_LENGTH = 128


@dataclass(slots=True)
class KeyUse:
    credential: str
    operation: str
    scheme: int
    ok: bool = True


@dataclass(slots=True)
class AuditScope:
    """One engine step of one session: who asks, and the key uses the step made."""

    principal: str
    role: str
    session: str
    peer: str | None
    sni: str | None = None
    uses: list[KeyUse] = field(default_factory=list)


_scope: contextvars.ContextVar[AuditScope | None] = contextvars.ContextVar(
    "handshaker_audit_scope", default=None
)
# The peer address of the RPC being served (each RPC is its own asyncio task).
rpc_peer: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "handshaker_rpc_peer", default=None
)


def enter(scope: AuditScope) -> contextvars.Token[AuditScope | None]:
    return _scope.set(scope)


def leave(token: contextvars.Token[AuditScope | None]) -> None:
    _scope.reset(token)


def current() -> AuditScope | None:
    return _scope.get()


def _printable_peer(text: str) -> str:
    text = text[: MAX_PEER_LENGTH * 4]  # never more work than the bound needs
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_PEER_LENGTH]


def peer_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The caller-reported peer address, printable and bounded; None when absent."""
    for key, value in metadata or ():
        if key == PEER_METADATA:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return _printable_peer(text)
    return None


def peer_from_request(peer_address: str) -> str | None:
    """A start request's `peer_address`, printable and bounded; None when empty."""
    return _printable_peer(peer_address) if peer_address else None


def record(use: KeyUse) -> None:
    """Note a use in the current scope; outside one, write its line now."""
    scope = _scope.get()
    if scope is not None:
        scope.uses.append(use)
        return
    write(AuditScope("unknown", "unknown", "", None), use, alert=None, reason=None)


def write(scope: AuditScope, use: KeyUse, *, alert: int | None, reason: str | None = None) -> None:
    ok = use.ok and alert is None
    fields: dict[str, object] = {
        "principal": scope.principal,
        "credential": use.credential,
        "role": scope.role,
        "operation": use.operation,
        "scheme": f"0x{use.scheme:04x}",
        "sni": scope.sni,
        "peer": scope.peer,
        "session": scope.session,
        "result": "ok" if ok else "failed",
        "alert": alert,
    }
    if reason is not None and not ok:
        fields["reason"] = reason
    audit_log.info("private key used", extra={"fields": fields})


def flush(scope: AuditScope, *, alert: int | None, reason: str | None = None) -> None:
    """Write the scope's uses with the step's outcome (alert None: the step did not fail)."""
    uses, scope.uses = scope.uses, []
    for use in uses:
        write(scope, use, alert=alert, reason=reason)


class AuditedSigner:
    """A Signer that records each signature it makes (or fails to make)."""

    __slots__ = ("_credential", "_signer")

    def __init__(self, signer: Signer, credential: str) -> None:
        self._signer = signer
        self._credential = credential

    @property
    def signature_schemes(self) -> Sequence[int]:
        return self._signer.signature_schemes

    def sign(self, scheme: int, message: bytes) -> bytes:
        use = KeyUse(self._credential, "sign", scheme)
        try:
            return self._signer.sign(scheme, message)
        except BaseException:
            use.ok = False
            raise
        finally:
            record(use)


class AuditedDecryptingSigner(AuditedSigner):
    """An AuditedSigner over a key that also decrypts (the TLS 1.2 RSA key exchange)."""

    __slots__ = ()

    def decrypt(self, ciphertext: bytes) -> bytes:
        # The result is not checked here: a failed decryption is b"" by design, turned
        # into a random premaster secret by the engine (implicit rejection), so the audit
        # line must not tell a good ciphertext from a bad one either.
        use = KeyUse(self._credential, "decrypt", 0)
        try:
            plaintext: bytes = self._signer.decrypt(ciphertext)  # type: ignore[attr-defined]
            return plaintext
        except BaseException:
            use.ok = False
            raise
        finally:
            record(use)


class AuditedCredentials:
    """Each keystore credential with its signer wrapped, built once per credential object."""

    def __init__(self) -> None:
        # name -> (the keystore's credential, its audited twin); a rotated credential
        # is a new object and gets a new twin.
        self._twins: dict[str, tuple[Credential, Credential]] = {}

    def __call__(self, name: str, credential: Credential) -> Credential:
        if isinstance(credential.signer, DeferredKey):
            return credential  # its operations are audited where the servicer runs them
        twin = self._twins.get(name)
        if twin is not None and twin[0] is credential:
            return twin[1]
        wrapper = (
            AuditedDecryptingSigner
            if callable(getattr(credential.signer, "decrypt", None))
            else AuditedSigner
        )
        audited = Credential(credential.certificate_chain, wrapper(credential.signer, name))
        self._twins[name] = (credential, audited)
        return audited
