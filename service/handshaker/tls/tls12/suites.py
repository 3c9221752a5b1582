"""The TLS 1.2 cipher suites we speak: ECDHE with AES-GCM (RFC 5289) or ChaCha20-Poly1305
(RFC 7905), each with the hash its PRF uses and the AEAD nonce layout; and, opt-in, the
RSA key exchange (RFC 5246, RFC 5288) and DHE_RSA over the RFC 7919 groups.

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


class KeyExchange(enum.Enum):
    """How the premaster secret is agreed (RFC 5246 section 7.4.7)."""

    ECDHE = "ecdhe"  # RFC 8422
    DHE = "dhe"  # RFC 5246 section 8.1.2, over an RFC 7919 group only
    RSA = "rsa"  # the client encrypts it to the server's key: no forward secrecy


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
    key_exchange: KeyExchange = KeyExchange.ECDHE

    def new_hash(self) -> Any:
        return hashlib.new(self.hash_name)

    def hash_of(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    @staticmethod
    def for_suite(suite: int) -> Tls12SuiteParams:
        return TLS12_SUITES[suite]


def _gcm(
    suite: int,
    auth: Authentication,
    hash_name: str,
    key_len: int,
    kex: KeyExchange = KeyExchange.ECDHE,
) -> Tls12SuiteParams:
    size = hashlib.new(hash_name).digest_size
    return Tls12SuiteParams(suite, auth, hash_name, size, key_len, 4, 8, AESGCM, kex)


def _chacha(
    suite: int, auth: Authentication, kex: KeyExchange = KeyExchange.ECDHE
) -> Tls12SuiteParams:
    return Tls12SuiteParams(suite, auth, "sha256", 32, 32, 12, 0, ChaCha20Poly1305, kex)


_RSA, _DHE = KeyExchange.RSA, KeyExchange.DHE


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
        _gcm(_S.TLS_RSA_WITH_AES_128_GCM_SHA256, Authentication.RSA, "sha256", 16, _RSA),
        _gcm(_S.TLS_RSA_WITH_AES_256_GCM_SHA384, Authentication.RSA, "sha384", 32, _RSA),
        _gcm(_S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, Authentication.RSA, "sha256", 16, _DHE),
        _gcm(_S.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, Authentication.RSA, "sha384", 32, _DHE),
        _chacha(_S.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256, Authentication.RSA, _DHE),
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

# Off by default, on when a config lists them in tls12_cipher_suites. The RSA key
# exchange has no forward secrecy and needs the key to decrypt (a Bleichenbacher target
# if done wrong: see rsa_kex.py); DHE costs tens of milliseconds per handshake.
OPT_IN_TLS12_CIPHER_SUITES: tuple[int, ...] = (
    _S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
    _S.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
    _S.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    _S.TLS_RSA_WITH_AES_128_GCM_SHA256,
    _S.TLS_RSA_WITH_AES_256_GCM_SHA384,
)

# RFC 7919: the only groups DHE runs over (never server-chosen primes).
TLS12_DHE_GROUPS: frozenset[int] = frozenset(
    {NamedGroup.FFDHE2048, NamedGroup.FFDHE3072, NamedGroup.FFDHE4096}
)

# RFC 8422 section 5.1.1 (with RFC 7748's curves): the named curves ECDHE runs over.
# ML-KEM is TLS 1.3 only.
TLS12_GROUPS: frozenset[int] = frozenset(
    {
        NamedGroup.X25519,
        NamedGroup.X448,
        NamedGroup.SECP256R1,
        NamedGroup.SECP384R1,
        NamedGroup.SECP521R1,
    }
)
