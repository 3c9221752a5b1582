"""Keyless operations on keystore credentials: sign, decrypt with implicit rejection, describe.

What the KeyOperations service does with a key for a caller whose own TLS stack runs
the handshake (Go crypto/tls, JSSE). The key stays where its backend keeps it: an
inline Signer signs here, an AsyncKey (PKCS#11, KMS) is awaited. Nothing here knows
gRPC or the policy; the service authorizes and audits around these calls.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from handshaker.tls import Credential
from handshaker.tls.signer import SignerError
from handshaker.tls.sigschemes import SCHEMES, SchemeFamily, schemes_of
from handshaker.tls.tls12.rsa_kex import allows_key_encipherment

from .base import KeyNotFound, KeyStore, KeystoreError
from .keyops import AsyncKey, KeyOperationError

# A TLS 1.3 CertificateVerify signs 130-162 bytes, a TLS 1.2 ServerKeyExchange at
# most a few hundred more (an ffdhe8192 share): far below this.
MAX_SIGN_MESSAGE = 16384
# An RSA ciphertext is as long as the modulus: 8192-bit keys and below.
MAX_CIPHERTEXT = 1024
MAX_PLAINTEXT_LENGTH = 256
# An unknown subject key id rebuilds the index at most this often.
INDEX_REBUILD_SECONDS = 1.0
# What an rsaEncryption key signs in TLS 1.2 besides the PSS schemes it lists.
TLS12_EXTRA_SCHEMES = schemes_of(SchemeFamily.RSA_PKCS1, tls13_only=False)


class KeylessRefused(KeystoreError, ValueError):
    """The key cannot do what was asked (scheme, digest length, no decryption): the
    request's fault, not the backend's. `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def subject_key_id(leaf: x509.Certificate) -> bytes:
    """The leaf's subjectKeyIdentifier; without the extension, RFC 5280 method 1 (SHA-1 of
    the subjectPublicKey BIT STRING), which is what most CAs put there."""
    try:
        return leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest


def public_key_sha256(leaf: x509.Certificate) -> str:
    """A short, stable name of the key for audit lines (the SPKI's SHA-256, 16 hex)."""
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:16]


class KeyIndex:
    """Credential names by their leaf's subject key id, over a keystore that reloads.

    A hit is checked against the keystore's current credentials (a rotated leaf may
    carry another key), and an unknown id rebuilds the index at most once a second, so
    a caller sending random ids costs a dictionary lookup. Every credential that is
    used by name is noted at once (`note`), so a caller that looked a new credential up
    by name finds it by its id straight after. Two credentials may share a key: an id
    names all of them, in name order.
    """

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore
        self._by_id: dict[bytes, tuple[str, ...]] = {}
        # name -> (credential object, its id): ids are computed once per loaded credential.
        self._ids: dict[str, tuple[Credential, bytes]] = {}
        self._built = -INDEX_REBUILD_SECONDS

    def names(self, key_id: bytes) -> tuple[str, ...]:
        """The credentials whose leaf has this subject key id; raises KeyNotFound."""
        names = tuple(n for n in self._by_id.get(key_id, ()) if self._id_of(n) == key_id)
        if names:
            return names
        now = time.monotonic()
        if now - self._built >= INDEX_REBUILD_SECONDS:
            self._rebuild(now)
            names = self._by_id.get(key_id, ())
            if names:
                return names
        raise KeyNotFound(f"no credential has the subject key id {key_id.hex()}")

    def note(self, name: str, credential: Credential) -> bytes:
        """The subject key id of `name`'s current credential, which the index now knows."""
        key_id = self._key_id(name, credential)
        known = self._by_id.get(key_id, ())
        if name not in known:
            self._by_id[key_id] = tuple(sorted((*known, name)))
        return key_id

    def _key_id(self, name: str, credential: Credential) -> bytes:
        known = self._ids.get(name)
        if known is not None and known[0] is credential:
            return known[1]
        key_id = subject_key_id(credential.certificate_chain[0])
        self._ids[name] = (credential, key_id)
        return key_id

    def _id_of(self, name: str) -> bytes | None:
        try:
            credential = self._keystore.credential(name)
        except KeyNotFound:
            return None
        return self._key_id(name, credential)

    def _rebuild(self, now: float) -> None:
        self._built = now
        names = sorted(self._keystore.names())
        self._ids = {name: self._ids[name] for name in names if name in self._ids}
        by_id: dict[bytes, tuple[str, ...]] = {}
        for name in names:
            key_id = self._id_of(name)
            if key_id is not None:
                by_id[key_id] = (*by_id.get(key_id, ()), name)
        self._by_id = by_id


def signature_schemes(credential: Credential) -> Sequence[int]:
    return credential.signer.signature_schemes


def decrypts(credential: Credential) -> bool:
    """Whether the key may decrypt: an RSA key whose certificate allows keyEncipherment."""
    key = credential.signer
    if isinstance(key, AsyncKey):
        return key.decrypts
    leaf = credential.certificate_chain[0]
    return callable(getattr(key, "decrypt", None)) and _rsa_encipherment(leaf)


def _rsa_encipherment(leaf: x509.Certificate) -> bool:
    return isinstance(leaf.public_key(), rsa.RSAPublicKey) and allows_key_encipherment(leaf)


async def sign(
    credential: Credential, scheme: int, *, message: bytes | None, digest: bytes | None
) -> bytes:
    """The signature over `message` (or its `digest`) with `scheme`.

    Raises KeylessRefused for a request the key cannot serve, KeyOperationError when
    the backend fails.
    """
    params = SCHEMES.get(scheme)
    if params is None:
        raise KeylessRefused("signature_scheme", f"0x{scheme:04x} is not a signature scheme")
    if not key_signs(credential, scheme):
        raise KeylessRefused(
            "signature_scheme", f"this credential's key cannot sign with scheme 0x{scheme:04x}"
        )
    if params.hash is None:  # EdDSA hashes inside the algorithm
        if message is None:
            raise KeylessRefused("digest", f"scheme 0x{scheme:04x} signs the message, not a digest")
        return await _sign_message(credential, scheme, message)
    if message is not None and scheme in credential.signer.signature_schemes:
        # What a handshake would sign: the backend's usual call.
        return await _sign_message(credential, scheme, message)
    if message is not None:
        hashed = hashes.Hash(params.hash)
        hashed.update(message)
        digest = hashed.finalize()
    if digest is None:
        raise KeylessRefused("input", "set message or digest")
    if len(digest) != params.hash.digest_size:
        raise KeylessRefused(
            "digest",
            f"a {params.hash.name} digest is {params.hash.digest_size} bytes, not {len(digest)}",
        )
    return await _sign_digest(credential, scheme, digest)


def key_signs(credential: Credential, scheme: int) -> bool:
    schemes = credential.signer.signature_schemes
    if scheme in schemes:
        return True
    family = SCHEMES[scheme].family
    families = {SCHEMES[s].family for s in schemes if s in SCHEMES}
    # Any ECDSA hash with an ECDSA key (RFC 5246 section 7.4.1.4.1); RSASSA-PKCS1-v1_5
    # (TLS 1.2) with an rsaEncryption key, which lists only its TLS 1.3 PSS schemes.
    return (family is SchemeFamily.ECDSA and SchemeFamily.ECDSA in families) or (
        family is SchemeFamily.RSA_PKCS1 and SchemeFamily.RSA_PSS_RSAE in families
    )


async def _sign_message(credential: Credential, scheme: int, message: bytes) -> bytes:
    key = credential.signer
    if isinstance(key, AsyncKey):
        return await key.sign(scheme, message)
    try:
        return key.sign(scheme, message)  # type: ignore[union-attr]
    except SignerError as error:
        raise KeyOperationError("inline", str(error)) from None


async def _sign_digest(credential: Credential, scheme: int, digest: bytes) -> bytes:
    key = credential.signer
    if isinstance(key, AsyncKey):
        if type(key).sign_digest is AsyncKey.sign_digest:
            # A plugin's backend that signs whole messages only: the request's to change.
            raise KeylessRefused("digest", "this credential's key signs whole messages only")
        return await key.sign_digest(scheme, digest)
    sign_digest = getattr(key, "sign_digest", None)
    if not callable(sign_digest):
        raise KeylessRefused("digest", "this credential's key signs whole messages only")
    try:
        signature: bytes = sign_digest(scheme, digest)
    except SignerError as error:
        raise KeyOperationError("inline", str(error)) from None
    return signature


async def decrypt(credential: Credential, ciphertext: bytes, plaintext_length: int) -> bytes:
    """RSAES-PKCS1-v1_5 decryption with implicit rejection (RFC 5246 section 7.4.7.1).

    Returns `plaintext_length` bytes: the plaintext when it has that length, else
    random bytes. Both are built in full and blended with a mask, so the answer takes
    the same steps whichever it is; a backend that cannot tell a bad padding from a
    good one (OpenSSL 3.2+ and most tokens answer it with a pseudo-random plaintext)
    leaves nothing to tell apart at all.
    """
    if not 1 <= plaintext_length <= MAX_PLAINTEXT_LENGTH:
        raise KeylessRefused(
            "plaintext_length", f"must be 1 to {MAX_PLAINTEXT_LENGTH} (48 for TLS 1.2)"
        )
    if not 0 < len(ciphertext) <= MAX_CIPHERTEXT:
        raise KeylessRefused("ciphertext", f"must be 1 to {MAX_CIPHERTEXT} bytes")
    if not decrypts(credential):
        raise KeylessRefused(
            "key",
            "this credential's key does not decrypt (an RSA key whose certificate "
            "allows keyEncipherment does)",
        )
    key = credential.signer
    substitute = secrets.token_bytes(plaintext_length)
    if isinstance(key, AsyncKey):
        decrypted = await key.decrypt(ciphertext)
    else:
        decrypted = key.decrypt(ciphertext)  # type: ignore[union-attr]
    return blend(decrypted, substitute)


def blend(decrypted: bytes, substitute: bytes) -> bytes:
    """`decrypted` if it is as long as `substitute`, else `substitute`, without a branch on
    the bytes (Python's len() and == on ints do not depend on the values)."""
    length = len(substitute)
    candidate = (decrypted + bytes(length))[:length]
    mask = -int(len(decrypted) == length) & 0xFF
    inverse = mask ^ 0xFF
    return bytes((d & mask) | (s & inverse) for d, s in zip(candidate, substitute, strict=True))
