"""The Signer seam: the only way the engine uses a private key.

A keystore backend (directory, memory, later PKCS#11 or a cloud KMS) hands the
engine a Signer; the engine never sees key bytes. The interface is deliberately
narrow, one scheme list and one sign call, so an HSM can sit behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .codepoints import SignatureScheme
from .sigschemes import ECDSA_SCHEME_FOR_CURVE, SCHEMES, SchemeFamily, schemes_of


class Signer(Protocol):
    """Signs TLS handshake messages with a key the caller never sees."""

    @property
    def signature_schemes(self) -> Sequence[int]:
        """The schemes this key can sign with, most preferred first (IANA code points)."""
        ...

    def sign(self, scheme: int, message: bytes) -> bytes:
        """Sign `message` (the full content to be signed, not a digest) with `scheme`."""
        ...


class SignerError(Exception):
    """The signing backend failed (the service maps this to UNAVAILABLE or internal_error)."""


_RSA_PSS_RSAE = schemes_of(SchemeFamily.RSA_PSS_RSAE)
_RSA_PSS_PSS = schemes_of(SchemeFamily.RSA_PSS_PSS)
# TLS 1.2 only: RSASSA-PKCS1-v1_5 by an rsaEncryption key (tls12/common.signing_schemes).
_RSA_PKCS1 = schemes_of(SchemeFamily.RSA_PKCS1, tls13_only=False)

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def schemes_for_key(key: PrivateKey, *, rsa_pss_pss: bool = False) -> tuple[int, ...]:
    """The TLS 1.3 CertificateVerify schemes a private key can produce.

    An RSA key in an rsaEncryption certificate signs rsa_pss_rsae_*; an RSA key in
    an RSASSA-PSS certificate (`rsa_pss_pss=True`) signs rsa_pss_pss_* (RFC 8446
    section 4.2.3).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scheme = ECDSA_SCHEME_FOR_CURVE.get(key.curve.name)
        return (scheme,) if scheme is not None else ()
    if isinstance(key, rsa.RSAPrivateKey):
        # SHA-512 PSS needs a modulus of at least 2*64+2 bytes; every real key has it.
        return _RSA_PSS_PSS if rsa_pss_pss else _RSA_PSS_RSAE
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return (SignatureScheme.ED25519,)
    if isinstance(key, ed448.Ed448PrivateKey):
        return (SignatureScheme.ED448,)
    return ()


class PrivateKeySigner:
    """A Signer over a `cryptography` private key held in this process."""

    def __init__(self, key: PrivateKey, *, rsa_pss_pss: bool = False) -> None:
        self._key = key
        self._schemes = schemes_for_key(key, rsa_pss_pss=rsa_pss_pss)
        if not self._schemes:
            raise ValueError("unsupported private key type for TLS 1.3 signing")

    @property
    def signature_schemes(self) -> Sequence[int]:
        return self._schemes

    def sign(self, scheme: int, message: bytes) -> bytes:
        if scheme not in self._schemes and not (
            scheme in _RSA_PKCS1 and self._schemes == _RSA_PSS_RSAE
        ):
            raise SignerError(f"key cannot sign with scheme 0x{scheme:04x}")
        key = self._key
        params = SCHEMES[scheme]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert params.ecdsa is not None
            return key.sign(message, params.ecdsa)
        if isinstance(key, rsa.RSAPrivateKey):
            assert params.rsa_padding is not None and params.hash is not None
            return key.sign(message, params.rsa_padding, params.hash)
        return key.sign(message)

    def sign_digest(self, scheme: int, digest: bytes) -> bytes:
        """Sign a digest the caller computed with the scheme's hash (keyless callers).

        ECDSA takes any ECDSA scheme's hash with the key's own curve: a TLS 1.2
        signature pairs any hash with any curve (RFC 5246 section 7.4.1.4.1), and the
        curve a TLS 1.3 scheme names is the caller's stack's to check. EdDSA signs
        messages only.
        """
        params = SCHEMES.get(scheme)
        if params is None or params.hash is None:
            raise SignerError(f"scheme 0x{scheme:04x} does not sign a digest")
        if len(digest) != params.hash.digest_size:
            raise SignerError(
                f"a digest for scheme 0x{scheme:04x} is {params.hash.digest_size} bytes"
            )
        key = self._key
        prehashed = Prehashed(params.hash)
        if isinstance(key, ec.EllipticCurvePrivateKey) and params.family is SchemeFamily.ECDSA:
            return key.sign(digest, ec.ECDSA(prehashed))
        if isinstance(key, rsa.RSAPrivateKey) and (
            scheme in self._schemes or (scheme in _RSA_PKCS1 and self._schemes == _RSA_PSS_RSAE)
        ):
            assert params.rsa_padding is not None
            return key.sign(digest, params.rsa_padding, prehashed)
        raise SignerError(f"key cannot sign with scheme 0x{scheme:04x}")

    def decrypt(self, ciphertext: bytes) -> bytes:
        """RSAES-PKCS1-v1_5 decryption for the TLS 1.2 RSA key exchange; b"" on failure.

        OpenSSL (3.2 and later, which `cryptography` bundles) answers a bad padding with
        a deterministic pseudo-random plaintext ("implicit rejection") rather than an
        error, so the common failure takes no other path; what still fails (a key that
        is not RSA, a ciphertext longer than the modulus) is b"", which the caller treats
        as every other failure (tls12/rsa_kex.py).
        """
        key = self._key
        if not isinstance(key, rsa.RSAPrivateKey):
            return b""
        try:
            return key.decrypt(ciphertext, padding.PKCS1v15())
        except ValueError:
            return b""

    def __repr__(self) -> str:
        # Never print key material.
        return f"PrivateKeySigner(schemes={[hex(s) for s in self._schemes]})"
