"""One table of signature-scheme parameters (RFC 8446 section 4.2.3), for signing and verifying.

Version-neutral: TLS 1.3 allows the schemes marked `tls13`; RSASSA-PKCS1-v1_5
is here for certificate signatures and TLS 1.2. The hash, ECDSA and PSS
objects are built once: they are immutable and every handshake uses them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from .codepoints import SignatureScheme


class SchemeFamily(enum.Enum):
    ECDSA = "ecdsa"
    RSA_PSS_RSAE = "rsa_pss_rsae"  # RSASSA-PSS with a key from an rsaEncryption certificate
    RSA_PSS_PSS = "rsa_pss_pss"  # RSASSA-PSS with a key from an RSASSA-PSS certificate
    RSA_PKCS1 = "rsa_pkcs1"
    EDDSA = "eddsa"


@dataclass(frozen=True, slots=True)
class SchemeParams:
    scheme: int
    family: SchemeFamily
    # None for EdDSA, which hashes inside the algorithm.
    hash: hashes.HashAlgorithm | None
    # ECDSA: the curve the scheme fixes ("secp256r1"); EdDSA: "ed25519" or "ed448".
    curve: str | None
    ecdsa: ec.ECDSA | None
    rsa_padding: padding.AsymmetricPadding | None
    # Allowed in a TLS 1.3 CertificateVerify ("RSASSA-PKCS1-v1_5 ... MUST NOT be used").
    tls13: bool


def _ecdsa(scheme: int, curve: str, algorithm: hashes.HashAlgorithm) -> SchemeParams:
    return SchemeParams(
        scheme, SchemeFamily.ECDSA, algorithm, curve, ec.ECDSA(algorithm), None, tls13=True
    )


def _pss(scheme: int, family: SchemeFamily, algorithm: hashes.HashAlgorithm) -> SchemeParams:
    # "RSASSA-PSS ... The length of the Salt MUST be equal to the length of the digest."
    pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
    return SchemeParams(scheme, family, algorithm, None, None, pss, tls13=True)


def _pkcs1(scheme: int, algorithm: hashes.HashAlgorithm) -> SchemeParams:
    return SchemeParams(
        scheme, SchemeFamily.RSA_PKCS1, algorithm, None, None, padding.PKCS1v15(), tls13=False
    )


def _eddsa(scheme: int, curve: str) -> SchemeParams:
    return SchemeParams(scheme, SchemeFamily.EDDSA, None, curve, None, None, tls13=True)


SCHEMES: dict[int, SchemeParams] = {
    p.scheme: p
    for p in (
        _ecdsa(SignatureScheme.ECDSA_SECP256R1_SHA256, "secp256r1", hashes.SHA256()),
        _ecdsa(SignatureScheme.ECDSA_SECP384R1_SHA384, "secp384r1", hashes.SHA384()),
        _ecdsa(SignatureScheme.ECDSA_SECP521R1_SHA512, "secp521r1", hashes.SHA512()),
        _pss(SignatureScheme.RSA_PSS_RSAE_SHA256, SchemeFamily.RSA_PSS_RSAE, hashes.SHA256()),
        _pss(SignatureScheme.RSA_PSS_RSAE_SHA384, SchemeFamily.RSA_PSS_RSAE, hashes.SHA384()),
        _pss(SignatureScheme.RSA_PSS_RSAE_SHA512, SchemeFamily.RSA_PSS_RSAE, hashes.SHA512()),
        _pss(SignatureScheme.RSA_PSS_PSS_SHA256, SchemeFamily.RSA_PSS_PSS, hashes.SHA256()),
        _pss(SignatureScheme.RSA_PSS_PSS_SHA384, SchemeFamily.RSA_PSS_PSS, hashes.SHA384()),
        _pss(SignatureScheme.RSA_PSS_PSS_SHA512, SchemeFamily.RSA_PSS_PSS, hashes.SHA512()),
        _pkcs1(SignatureScheme.RSA_PKCS1_SHA256, hashes.SHA256()),
        _pkcs1(SignatureScheme.RSA_PKCS1_SHA384, hashes.SHA384()),
        _pkcs1(SignatureScheme.RSA_PKCS1_SHA512, hashes.SHA512()),
        _eddsa(SignatureScheme.ED25519, "ed25519"),
        _eddsa(SignatureScheme.ED448, "ed448"),
    )
}

# The ECDSA scheme each curve signs with in TLS 1.3.
ECDSA_SCHEME_FOR_CURVE: dict[str, int] = {
    p.curve: p.scheme for p in SCHEMES.values() if p.family is SchemeFamily.ECDSA and p.curve
}


def schemes_of(family: SchemeFamily, *, tls13_only: bool = True) -> tuple[int, ...]:
    """The schemes of a family, strongest hash last."""
    return tuple(
        p.scheme for p in SCHEMES.values() if p.family is family and (p.tls13 or not tls13_only)
    )
