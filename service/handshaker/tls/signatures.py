"""CertificateVerify: the signed content, and checking a peer's signature.

Signing goes through the Signer seam (signer.py); this module only verifies,
with the public key from the peer's leaf certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import PublicKeyAlgorithmOID

from .errors import BadCertificate, DecryptError, IllegalParameter, UnsupportedCertificate
from .sigschemes import SCHEMES, SchemeFamily

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_ECDSA = SchemeFamily.ECDSA
_RSA_PKCS1 = SchemeFamily.RSA_PKCS1
_RSA_PSS_PSS = SchemeFamily.RSA_PSS_PSS
_RSA_PSS_RSAE = SchemeFamily.RSA_PSS_RSAE

SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"
_PREFIX = b" " * 64


def certificate_verify_content(context: bytes, transcript_hash: bytes) -> bytes:
    """64 spaces, the context string, a zero byte, then Transcript-Hash (section 4.4.3)."""
    return _PREFIX + context + b"\x00" + transcript_hash


def leaf_public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise UnsupportedCertificate("peer certificate has an unsupported public key") from None


def scheme_fits_certificate(
    scheme: int,
    certificate: x509.Certificate,
    key: CertificatePublicKeyTypes | None = None,
) -> bool:
    """Whether the leaf's key type can produce `scheme` (section 4.2.3)."""
    if key is None:
        key = leaf_public_key(certificate)
    params = SCHEMES.get(scheme)
    if params is None:
        return False
    family = params.family
    if family is _ECDSA:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == params.curve
    if family is _RSA_PSS_RSAE or family is _RSA_PKCS1:
        return (
            isinstance(key, rsa.RSAPublicKey)
            and certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5
        )
    if family is _RSA_PSS_PSS:
        return (
            isinstance(key, rsa.RSAPublicKey)
            and certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
        )
    if params.curve == "ed25519":
        return isinstance(key, ed25519.Ed25519PublicKey)
    return isinstance(key, ed448.Ed448PublicKey)


def verify_certificate_verify(
    certificate: x509.Certificate, scheme: int, signature: bytes, content: bytes
) -> None:
    """Raise unless `signature` over `content` verifies with the leaf's key under `scheme`."""
    key = leaf_public_key(certificate)
    if not scheme_fits_certificate(scheme, certificate, key):
        raise IllegalParameter("CertificateVerify scheme does not match the certificate's key")
    params = SCHEMES[scheme]
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            assert params.ecdsa is not None
            key.verify(signature, content, params.ecdsa)
        elif isinstance(key, rsa.RSAPublicKey):
            assert params.rsa_padding is not None and params.hash is not None
            key.verify(signature, content, params.rsa_padding, params.hash)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, content)
        else:
            raise BadCertificate("unsupported public key type")
    except InvalidSignature:
        raise DecryptError("CertificateVerify signature does not verify") from None
