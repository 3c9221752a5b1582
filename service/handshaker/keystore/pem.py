"""Turning PEM certificate chains and private keys into Credentials, and back.

Every error raised here is an InvalidCredential whose message names the input
and the problem in our own words: the parser's exception is dropped (`from
None`) so neither a message nor a traceback can quote key bytes.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import PublicKeyAlgorithmOID

from handshaker.tls.config import Credential
from handshaker.tls.signer import PrivateKey, PrivateKeySigner

from .base import InvalidCredential

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_certificates(pem: bytes, *, source: str = "certificate") -> tuple[x509.Certificate, ...]:
    """One or more PEM certificates, in file order."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidCredential(f"{source}: no PEM certificate found")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
        raise InvalidCredential(f"{source}: malformed or truncated PEM certificate") from None
    return tuple(certificates)


def load_private_key(pem: bytes, *, source: str = "private key") -> PrivateKey:
    """An unencrypted PEM private key: EC, RSA, Ed25519 or Ed448; PKCS#8 or traditional."""
    if b"ENCRYPTED" in pem.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in pem:
        raise InvalidCredential(f"{source}: encrypted private keys are not supported")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidCredential(
            f"{source}: not a readable unencrypted PEM private key (EC, RSA, Ed25519, Ed448)"
        ) from None
    if not isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise InvalidCredential(f"{source}: unsupported private key type")
    return key


def key_matches_certificate(key: PrivateKey, certificate: x509.Certificate) -> bool:
    """True when `key` is the private half of the certificate's public key."""
    return public_key_matches(key.public_key(), certificate)


def public_key_matches(
    public_key: ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey,
    certificate: x509.Certificate,
) -> bool:
    """True when `public_key` is the certificate's public key."""
    return bool(public_key.public_bytes(*_SPKI) == certificate.public_key().public_bytes(*_SPKI))


def credential_from_key(
    chain: tuple[x509.Certificate, ...], key: PrivateKey, *, source: str = "credential"
) -> Credential:
    """A Credential from a chain (leaf first) and the leaf's private key, checked to match."""
    if not chain:
        raise InvalidCredential(f"{source}: the certificate chain is empty")
    leaf = chain[0]
    if not key_matches_certificate(key, leaf):
        raise InvalidCredential(
            f"{source}: the private key does not match the leaf certificate "
            f"({leaf.subject.rfc4514_string() or 'empty subject'})"
        )
    # An RSA key in an RSASSA-PSS certificate signs rsa_pss_pss_* (RFC 8446 section 4.2.3).
    rsa_pss_pss = leaf.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
    try:
        signer = PrivateKeySigner(key, rsa_pss_pss=rsa_pss_pss)
        return Credential(certificate_chain=chain, signer=signer)
    except ValueError as exc:
        # Raised by our own constructors with fixed messages, never key bytes.
        raise InvalidCredential(f"{source}: {exc}") from None


def load_credential(chain_pem: bytes, key_pem: bytes, *, source: str = "credential") -> Credential:
    """A Credential from a PEM chain (leaf first) and a PEM private key for the leaf."""
    chain = load_certificates(chain_pem, source=f"{source} certificate chain")
    key = load_private_key(key_pem, source=f"{source} private key")
    return credential_from_key(chain, key, source=source)


def private_key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, for writing to a 0600 file."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificates_pem(certificates: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
