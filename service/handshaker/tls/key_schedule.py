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

HMAC and HKDF-Expand-Label come from handshaker_wire.hkdf (hashlib underneath,
one HMAC call per one-block expansion; shared with the client's record layer).
No clock, no RNG, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from handshaker_wire.hkdf import HASHES, HmacKey, hkdf_label_prefix, hmac_digest
from handshaker_wire.hkdf import hkdf_expand_label as wire_expand_label

from .codepoints import CipherSuite

__all__ = ["CipherSuiteParams", "HmacKey", "hkdf_expand_label", "hkdf_extract"]


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
    # The suite's HkdfLabels that never change, encoded once (see _Infos).
    infos: _Infos = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "infos", _infos(self.hash_len, self.key_len, self.empty_hash))

    def hash_of(self, data: bytes) -> bytes:
        return HASHES[self.hash_name][0](data).digest()

    def new_hash(self) -> Any:
        # The named constructor, not hashlib.new(name): that looks the name up on every call.
        return HASHES[self.hash_name][0]()

    @staticmethod
    def for_suite(suite: int) -> CipherSuiteParams:
        return _SUITES[suite]


class _Infos(NamedTuple):
    """A suite's one-block HKDF-Expand-Label inputs (HkdfLabel || 0x01, RFC 5869 section
    2.3's T(1)) that depend on the suite alone, so the key schedule concatenates nothing
    for them on each handshake.

    The traffic key, IV and finished_key have an empty context; every Derive-Secret of
    the handshake has a transcript hash (Hash.length bytes) as its context, so only the
    hash goes between each label's fixed head and the 0x01; "derived" has Hash("").
    """

    key: bytes
    iv: bytes
    finished: bytes
    derived: bytes
    c_hs_traffic: bytes
    s_hs_traffic: bytes
    c_ap_traffic: bytes
    s_ap_traffic: bytes
    exp_master: bytes
    res_master: bytes


def _infos(hash_len: int, key_len: int, empty_hash: bytes) -> _Infos:
    """A suite's _Infos (a function, not a method: a NamedTuple's class body holds fields)."""

    def hashed(label: bytes) -> bytes:
        # HkdfLabel up to its context: length, label, and the context's length byte.
        return hkdf_label_prefix(hash_len, label) + bytes((hash_len,))

    return _Infos(
        key=hkdf_label_prefix(key_len, b"key") + b"\x00\x01",
        iv=hkdf_label_prefix(IV_LEN, b"iv") + b"\x00\x01",
        finished=hkdf_label_prefix(hash_len, b"finished") + b"\x00\x01",
        derived=hashed(b"derived") + empty_hash + b"\x01",
        c_hs_traffic=hashed(b"c hs traffic"),
        s_hs_traffic=hashed(b"s hs traffic"),
        c_ap_traffic=hashed(b"c ap traffic"),
        s_ap_traffic=hashed(b"s ap traffic"),
        exp_master=hashed(b"exp master"),
        res_master=hashed(b"res master"),
    )


IV_LEN = 12


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


def hkdf_extract(params: CipherSuiteParams, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 section 2.2)."""
    return hmac_digest(salt, ikm, params.hash_name)


def hkdf_expand_label(
    params: CipherSuiteParams, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) under the suite's hash
    (handshaker_wire.hkdf, which the client's record layer uses too)."""
    return wire_expand_label(params.hash_name, secret, label, context, length)


def _check_hash(params: CipherSuiteParams, transcript_hash: bytes) -> None:
    """The precomputed Derive-Secret labels hold the context's length: Hash.length."""
    if len(transcript_hash) != params.hash_len:
        raise ValueError("a transcript hash is Hash.length bytes")


def derive_secret(
    params: CipherSuiteParams, secret: bytes, label: bytes, transcript_hash: bytes
) -> bytes:
    """Derive-Secret(Secret, Label, Messages), with Transcript-Hash(Messages) given."""
    return hkdf_expand_label(params, secret, label, transcript_hash, params.hash_len)


@dataclass(slots=True, eq=False)
class TrafficSecret:
    """A traffic secret and the write key and IV derived from it (section 7.3)."""

    secret: bytes
    key: bytes
    iv: bytes
    # The secret as an HMAC key, for its finished_key (handshake traffic secrets).
    hmac: HmacKey | None = field(default=None, repr=False)

    @staticmethod
    def derive(params: CipherSuiteParams, secret: bytes) -> TrafficSecret:
        key = HmacKey(secret, params.hash_name)
        infos = params.infos
        return TrafficSecret(
            secret,
            key.digest(infos.key)[: params.key_len],
            key.digest(infos.iv)[:IV_LEN],
            key,
        )

    def finished_key(self, params: CipherSuiteParams) -> bytes:
        """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)."""
        key = self.hmac or HmacKey(self.secret, params.hash_name)
        return key.digest(params.infos.finished)

    def next_generation(self, params: CipherSuiteParams) -> TrafficSecret:
        """application_traffic_secret_N+1 (section 7.2), for KeyUpdate."""
        return TrafficSecret.derive(
            params, hkdf_expand_label(params, self.secret, b"traffic upd", b"", params.hash_len)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrafficSecret):
            return NotImplemented
        return (self.secret, self.key, self.iv) == (other.secret, other.key, other.iv)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "TrafficSecret(<redacted>)"


def finished_verify_data(
    params: CipherSuiteParams, base_key: bytes | TrafficSecret, transcript_hash: bytes
) -> bytes:
    """verify_data = HMAC(finished_key, Transcript-Hash(...)) (section 4.4.4)."""
    if isinstance(base_key, TrafficSecret):
        finished_key = base_key.finished_key(params)
    else:
        finished_key = hkdf_expand_label(params, base_key, b"finished", b"", params.hash_len)
    return hmac_digest(finished_key, transcript_hash, params.hash_name)


@lru_cache(maxsize=8)
def _derived_from_empty_early_secret(suite: int) -> bytes:
    """Derive-Secret(HKDF-Extract(0, 0), "derived", "") for a suite without a PSK."""
    params = _SUITES[suite]
    early_secret = hkdf_extract(params, params.zeros, params.zeros)
    return derive_secret(params, early_secret, b"derived", params.empty_hash)


@lru_cache(maxsize=8)
def _empty_psk_salt_key(suite: int) -> HmacKey:
    """_derived_from_empty_early_secret as a prepared HMAC key (copied on every use)."""
    return HmacKey(_derived_from_empty_early_secret(suite), _SUITES[suite].hash_name)


@dataclass(slots=True, eq=False)
class HandshakeSecrets:
    """The handshake stage: after (EC)DHE, before the server's Finished."""

    params: CipherSuiteParams
    handshake_secret: bytes
    client: TrafficSecret
    server: TrafficSecret
    hmac: HmacKey | None = field(default=None, repr=False)

    @staticmethod
    def derive(
        params: CipherSuiteParams, shared_secret: bytes, hello_hash: bytes
    ) -> HandshakeSecrets:
        # No PSK yet: the early secret, and the salt derived from it, are constants, so
        # HKDF-Extract's HMAC is keyed once per suite.
        handshake_secret = _empty_psk_salt_key(params.suite).digest(shared_secret)
        key = HmacKey(handshake_secret, params.hash_name)
        infos = params.infos
        _check_hash(params, hello_hash)
        return HandshakeSecrets(
            params,
            handshake_secret,
            TrafficSecret.derive(params, key.digest(infos.c_hs_traffic + hello_hash + b"\x01")),
            TrafficSecret.derive(params, key.digest(infos.s_hs_traffic + hello_hash + b"\x01")),
            key,
        )

    def master_secret(self) -> bytes:
        params = self.params
        key = self.hmac or HmacKey(self.handshake_secret, params.hash_name)
        # Derive-Secret(Handshake Secret, "derived", ""): a one-block label of the suite alone.
        salt = key.digest(params.infos.derived)
        return hkdf_extract(params, salt, params.zeros)

    def __repr__(self) -> str:
        return "HandshakeSecrets(<redacted>)"


@dataclass(slots=True, eq=False)
class ApplicationSecrets:
    """The traffic stage: derived from the transcript through the server's Finished."""

    params: CipherSuiteParams
    master_secret: bytes
    client: TrafficSecret
    server: TrafficSecret
    exporter_master_secret: bytes
    hmac: HmacKey | None = field(default=None, repr=False)

    @staticmethod
    def derive(
        params: CipherSuiteParams, master_secret: bytes, server_finished_hash: bytes
    ) -> ApplicationSecrets:
        key = HmacKey(master_secret, params.hash_name)
        infos = params.infos
        _check_hash(params, server_finished_hash)
        context = server_finished_hash + b"\x01"
        return ApplicationSecrets(
            params,
            master_secret,
            TrafficSecret.derive(params, key.digest(infos.c_ap_traffic + context)),
            TrafficSecret.derive(params, key.digest(infos.s_ap_traffic + context)),
            key.digest(infos.exp_master + context),
            key,
        )

    def resumption_master_secret(self, client_finished_hash: bytes) -> bytes:
        params = self.params
        key = self.hmac or HmacKey(self.master_secret, params.hash_name)
        _check_hash(params, client_finished_hash)
        return key.digest(params.infos.res_master + client_finished_hash + b"\x01")

    def __repr__(self) -> str:
        return "ApplicationSecrets(<redacted>)"


HashFactory = Callable[[], Any]
