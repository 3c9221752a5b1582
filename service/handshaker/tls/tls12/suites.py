"""The TLS 1.2 cipher suites we speak: ECDHE with AES-GCM (RFC 5289) or ChaCha20-Poly1305
(RFC 7905), each with the hash its PRF uses and the AEAD nonce layout.

Only numbers and parameters live here; no state, no wire handling.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..codepoints import NamedGroup, Tls12CipherSuite


class Authentication(enum.Enum):
    """Whose signature authenticates the ServerKeyExchange (the suite's "ECDSA" or "RSA")."""

    ECDSA = "ecdsa"  # also EdDSA (RFC 8422 section 3: ECDHE_ECDSA covers Ed25519 and Ed448)
    RSA = "rsa"


@dataclass(frozen=True, slots=True)
class Tls12SuiteParams:
    """PRF hash, AEAD and nonce layout of one TLS 1.2 AEAD suite.

    GCM (RFC 5288 section 3): a 4-byte implicit salt from the key block and an
    8-byte explicit nonce carried in each record. ChaCha20-Poly1305 (RFC 7905
    section 2): a 12-byte IV XORed with the sequence number, nothing explicit.
    """

    suite: int
    authentication: Authentication
    hash_name: str
    hash_len: int
    key_len: int
    fixed_iv_len: int
    explicit_nonce_len: int
    aead: type[AESGCM] | type[ChaCha20Poly1305]

    def new_hash(self) -> Any:
        return hashlib.new(self.hash_name)

    def hash_of(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    @staticmethod
    def for_suite(suite: int) -> Tls12SuiteParams:
        return TLS12_SUITES[suite]


def _gcm(suite: int, auth: Authentication, hash_name: str, key_len: int) -> Tls12SuiteParams:
    size = hashlib.new(hash_name).digest_size
    return Tls12SuiteParams(suite, auth, hash_name, size, key_len, 4, 8, AESGCM)


def _chacha(suite: int, auth: Authentication) -> Tls12SuiteParams:
    return Tls12SuiteParams(suite, auth, "sha256", 32, 32, 12, 0, ChaCha20Poly1305)


_S = Tls12CipherSuite
TLS12_SUITES: dict[int, Tls12SuiteParams] = {
    p.suite: p
    for p in (
        _gcm(_S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, Authentication.ECDSA, "sha256", 16),
        _gcm(_S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, Authentication.ECDSA, "sha384", 32),
        _chacha(_S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, Authentication.ECDSA),
        _gcm(_S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, Authentication.RSA, "sha256", 16),
        _gcm(_S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, Authentication.RSA, "sha384", 32),
        _chacha(_S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, Authentication.RSA),
    )
}

# Most preferred first: ECDSA before RSA, then AES-128-GCM, AES-256-GCM, ChaCha20.
DEFAULT_TLS12_CIPHER_SUITES: tuple[int, ...] = (
    _S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    _S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    _S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    _S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    _S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    _S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
)

# RFC 8422 section 5.1.1 (with RFC 7748's curves): the named curves ECDHE runs over.
# FFDHE and ML-KEM are TLS 1.3 only here (DHE_RSA is not implemented).
TLS12_GROUPS: frozenset[int] = frozenset(
    {
        NamedGroup.X25519,
        NamedGroup.X448,
        NamedGroup.SECP256R1,
        NamedGroup.SECP384R1,
        NamedGroup.SECP521R1,
    }
)
