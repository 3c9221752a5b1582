"""CertificateVerify: the signed content, and checking a peer's signature.

Signing goes through the Signer seam (signer.py); this module only verifies,
with the public key from the peer's leaf certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import PublicKeyAlgorithmOID

from .codepoints import SignatureScheme
from .errors import BadCertificate, DecryptError, IllegalParameter, UnsupportedCertificate

SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"
_PREFIX = b" " * 64


def certificate_verify_content(context: bytes, transcript_hash: bytes) -> bytes:
    """64 spaces, the context string, a zero byte, then Transcript-Hash (section 4.4.3)."""
    return _PREFIX + context + b"\x00" + transcript_hash


_ECDSA: dict[int, tuple[str, hashes.HashAlgorithm]] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: ("secp256r1", hashes.SHA256()),
    SignatureScheme.ECDSA_SECP384R1_SHA384: ("secp384r1", hashes.SHA384()),
    SignatureScheme.ECDSA_SECP521R1_SHA512: ("secp521r1", hashes.SHA512()),
}
_RSA_PSS_RSAE: dict[int, hashes.HashAlgorithm] = {
    SignatureScheme.RSA_PSS_RSAE_SHA256: hashes.SHA256(),
    SignatureScheme.RSA_PSS_RSAE_SHA384: hashes.SHA384(),
    SignatureScheme.RSA_PSS_RSAE_SHA512: hashes.SHA512(),
}
_RSA_PSS_PSS: dict[int, hashes.HashAlgorithm] = {
    SignatureScheme.RSA_PSS_PSS_SHA256: hashes.SHA256(),
    SignatureScheme.RSA_PSS_PSS_SHA384: hashes.SHA384(),
    SignatureScheme.RSA_PSS_PSS_SHA512: hashes.SHA512(),
}


# Built once: immutable, and used on every handshake.
_ECDSA_ALGORITHMS = {scheme: ec.ECDSA(algorithm) for scheme, (_, algorithm) in _ECDSA.items()}
_PSS_PADDINGS = {
    scheme: (padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size), algorithm)
    for scheme, algorithm in (*_RSA_PSS_RSAE.items(), *_RSA_PSS_PSS.items())
}


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
    if scheme in _ECDSA:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _ECDSA[scheme][0]
    if scheme in _RSA_PSS_RSAE:
        return (
            isinstance(key, rsa.RSAPublicKey)
            and certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5
        )
    if scheme in _RSA_PSS_PSS:
        return (
            isinstance(key, rsa.RSAPublicKey)
            and certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
        )
    if scheme == SignatureScheme.ED25519:
        return isinstance(key, ed25519.Ed25519PublicKey)
    if scheme == SignatureScheme.ED448:
        return isinstance(key, ed448.Ed448PublicKey)
    return False


def verify_certificate_verify(
    certificate: x509.Certificate, scheme: int, signature: bytes, content: bytes
) -> None:
    """Raise unless `signature` over `content` verifies with the leaf's key under `scheme`."""
    key = leaf_public_key(certificate)
    if not scheme_fits_certificate(scheme, certificate, key):
        raise IllegalParameter("CertificateVerify scheme does not match the certificate's key")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, content, _ECDSA_ALGORITHMS[scheme])
        elif isinstance(key, rsa.RSAPublicKey):
            pss, algorithm = _PSS_PADDINGS[scheme]
            key.verify(signature, content, pss, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, content)
        else:
            raise BadCertificate("unsupported public key type")
    except InvalidSignature:
        raise DecryptError("CertificateVerify signature does not verify") from None
