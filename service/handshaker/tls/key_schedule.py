"""The TLS 1.3 key schedule (RFC 8446 section 7.1), one stage at a time.

             0
             |
             v
   PSK ->  HKDF-Extract = Early Secret
             |
             +-----> Derive-Secret(., "derived", "")
             |
             v
   (EC)DHE -> HKDF-Extract = Handshake Secret
             |
             +-----> Derive-Secret(., "c hs traffic", ClientHello...ServerHello)
             |                     = client_handshake_traffic_secret
             +-----> Derive-Secret(., "s hs traffic", ClientHello...ServerHello)
             |                     = server_handshake_traffic_secret
             v
             Derive-Secret(., "derived", "")
             |
             v
   0 -> HKDF-Extract = Master Secret
             |
             +-----> Derive-Secret(., "c ap traffic", ClientHello...server Finished)
             +-----> Derive-Secret(., "s ap traffic", ClientHello...server Finished)
             +-----> Derive-Secret(., "exp master", ClientHello...server Finished)
             +-----> Derive-Secret(., "res master", ClientHello...client Finished)

HKDF is built on the standard library's HMAC (OpenSSL underneath): each
HKDF-Expand-Label here produces at most one hash block, so it is a single HMAC
call, without the per-call object set-up of a general HKDF class. No clock, no
RNG, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .codepoints import CipherSuite


@dataclass(frozen=True, slots=True)
class CipherSuiteParams:
    """Hash and AEAD of a TLS 1.3 cipher suite."""

    suite: int
    hash_name: str
    hash_len: int
    key_len: int
    aead: type[AESGCM] | type[ChaCha20Poly1305]
    zeros: bytes  # hash_len zero bytes: the absent PSK and the absent master-secret IKM
    empty_hash: bytes  # Hash("")

    def hash_of(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def new_hash(self) -> Any:
        return hashlib.new(self.hash_name)

    @staticmethod
    def for_suite(suite: int) -> CipherSuiteParams:
        return _SUITES[suite]


def _params(suite: CipherSuite, hash_name: str, key_len: int, aead: Any) -> CipherSuiteParams:
    hash_len = hashlib.new(hash_name).digest_size
    return CipherSuiteParams(
        suite=suite,
        hash_name=hash_name,
        hash_len=hash_len,
        key_len=key_len,
        aead=aead,
        zeros=bytes(hash_len),
        empty_hash=hashlib.new(hash_name).digest(),
    )


_SUITES: dict[int, CipherSuiteParams] = {
    CipherSuite.TLS_AES_128_GCM_SHA256: _params(
        CipherSuite.TLS_AES_128_GCM_SHA256, "sha256", 16, AESGCM
    ),
    CipherSuite.TLS_AES_256_GCM_SHA384: _params(
        CipherSuite.TLS_AES_256_GCM_SHA384, "sha384", 32, AESGCM
    ),
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: _params(
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256, "sha256", 32, ChaCha20Poly1305
    ),
}

IV_LEN = 12


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_HASH_CONSTRUCTORS = {"sha256": (hashlib.sha256, 64), "sha384": (hashlib.sha384, 128)}


def _hmac_digest(key: bytes, message: bytes, hash_name: str) -> bytes:
    """HMAC (RFC 2104) over hashlib's SHA-2, equal to hmac.digest but without the
    per-call EVP set-up that dominates for the short inputs of a key schedule."""
    constructor, block_size = _HASH_CONSTRUCTORS[hash_name]
    if len(key) > block_size:
        key = constructor(key).digest()
    key = key.ljust(block_size, b"\0")
    inner = constructor(key.translate(_IPAD))
    inner.update(message)
    return constructor(key.translate(_OPAD) + inner.digest()).digest()


def hkdf_extract(params: CipherSuiteParams, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 section 2.2)."""
    return _hmac_digest(salt, ikm, params.hash_name)


@lru_cache(maxsize=256)
def _hkdf_label_prefix(length: int, label: bytes) -> bytes:
    full_label = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes((len(full_label),)) + full_label


def hkdf_expand_label(
    params: CipherSuiteParams, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length).

    struct {
        uint16 length = Length;
        opaque label<7..255> = "tls13 " + Label;
        opaque context<0..255> = Context;
    } HkdfLabel;
    """
    info = _hkdf_label_prefix(length, label) + bytes((len(context),)) + context
    if length <= params.hash_len:
        # One block: T(1) = HMAC(PRK, info | 0x01).
        return _hmac_digest(secret, info + b"\x01", params.hash_name)[:length]
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = _hmac_digest(secret, block + info + bytes((counter,)), params.hash_name)
        output += block
        counter += 1
    return output[:length]


def derive_secret(
    params: CipherSuiteParams, secret: bytes, label: bytes, transcript_hash: bytes
) -> bytes:
    """Derive-Secret(Secret, Label, Messages), with Transcript-Hash(Messages) given."""
    return hkdf_expand_label(params, secret, label, transcript_hash, params.hash_len)


@dataclass(frozen=True, slots=True)
class TrafficSecret:
    """A traffic secret and the write key and IV derived from it (section 7.3)."""

    secret: bytes
    key: bytes
    iv: bytes

    @staticmethod
    def derive(params: CipherSuiteParams, secret: bytes) -> TrafficSecret:
        return TrafficSecret(
            secret=secret,
            key=hkdf_expand_label(params, secret, b"key", b"", params.key_len),
            iv=hkdf_expand_label(params, secret, b"iv", b"", IV_LEN),
        )

    def next_generation(self, params: CipherSuiteParams) -> TrafficSecret:
        """application_traffic_secret_N+1 (section 7.2), for KeyUpdate."""
        return TrafficSecret.derive(
            params, hkdf_expand_label(params, self.secret, b"traffic upd", b"", params.hash_len)
        )

    def __repr__(self) -> str:
        return "TrafficSecret(<redacted>)"


def finished_verify_data(
    params: CipherSuiteParams, base_key: bytes, transcript_hash: bytes
) -> bytes:
    """verify_data = HMAC(finished_key, Transcript-Hash(...)) (section 4.4.4)."""
    finished_key = hkdf_expand_label(params, base_key, b"finished", b"", params.hash_len)
    return _hmac_digest(finished_key, transcript_hash, params.hash_name)


@lru_cache(maxsize=8)
def _derived_from_empty_early_secret(suite: int) -> bytes:
    """Derive-Secret(HKDF-Extract(0, 0), "derived", "") for a suite without a PSK."""
    params = _SUITES[suite]
    early_secret = hkdf_extract(params, params.zeros, params.zeros)
    return derive_secret(params, early_secret, b"derived", params.empty_hash)


@dataclass(frozen=True, slots=True)
class HandshakeSecrets:
    """The handshake stage: after (EC)DHE, before the server's Finished."""

    params: CipherSuiteParams
    handshake_secret: bytes
    client: TrafficSecret
    server: TrafficSecret

    @staticmethod
    def derive(
        params: CipherSuiteParams, shared_secret: bytes, hello_hash: bytes
    ) -> HandshakeSecrets:
        # No PSK yet: the early secret, and the salt derived from it, are constants.
        salt = _derived_from_empty_early_secret(params.suite)
        handshake_secret = hkdf_extract(params, salt, shared_secret)
        return HandshakeSecrets(
            params=params,
            handshake_secret=handshake_secret,
            client=TrafficSecret.derive(
                params, derive_secret(params, handshake_secret, b"c hs traffic", hello_hash)
            ),
            server=TrafficSecret.derive(
                params, derive_secret(params, handshake_secret, b"s hs traffic", hello_hash)
            ),
        )

    def master_secret(self) -> bytes:
        params = self.params
        salt = derive_secret(params, self.handshake_secret, b"derived", params.empty_hash)
        return hkdf_extract(params, salt, params.zeros)

    def __repr__(self) -> str:
        return "HandshakeSecrets(<redacted>)"


@dataclass(frozen=True, slots=True)
class ApplicationSecrets:
    """The traffic stage: derived from the transcript through the server's Finished."""

    params: CipherSuiteParams
    master_secret: bytes
    client: TrafficSecret
    server: TrafficSecret
    exporter_master_secret: bytes

    @staticmethod
    def derive(
        params: CipherSuiteParams, master_secret: bytes, server_finished_hash: bytes
    ) -> ApplicationSecrets:
        return ApplicationSecrets(
            params=params,
            master_secret=master_secret,
            client=TrafficSecret.derive(
                params, derive_secret(params, master_secret, b"c ap traffic", server_finished_hash)
            ),
            server=TrafficSecret.derive(
                params, derive_secret(params, master_secret, b"s ap traffic", server_finished_hash)
            ),
            exporter_master_secret=derive_secret(
                params, master_secret, b"exp master", server_finished_hash
            ),
        )

    def resumption_master_secret(self, client_finished_hash: bytes) -> bytes:
        return derive_secret(self.params, self.master_secret, b"res master", client_finished_hash)

    def __repr__(self) -> str:
        return "ApplicationSecrets(<redacted>)"


HashFactory = Callable[[], Any]
