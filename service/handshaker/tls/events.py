"""Events the engine reports, and the handshake result it hands back.

Events are small frozen dataclasses (h11 style). The result carries secrets:
its repr never shows them, so a stray log line cannot leak them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .codepoints import ProtocolVersion
from .fastinit import fast_frozen_init
from .key_schedule import CipherSuiteParams, hkdf_expand_label
from .tls12.prf import export_keying_material as tls12_export
from .tls12.suites import Tls12SuiteParams


class NeedData(enum.Enum):
    """Returned by next_event() when the engine needs more bytes from the peer."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class TrafficKeys:
    """One direction's record protection state after the handshake.

    TLS 1.3: the traffic secret, and the key and 12-byte IV from it. TLS 1.2 has no
    traffic secret (`secret` is empty); `iv` is the fixed IV from the key block: the
    4-byte salt of AES-GCM (RFC 5288) or the 12-byte IV of ChaCha20-Poly1305 (RFC 7905).
    """

    secret: bytes = field(repr=False)
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    sequence_number: int = 0


fast_frozen_init(TrafficKeys)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake negotiated, and the keys to protect its records."""

    version: int
    cipher_suite: int
    group: int
    # The scheme of the peer's CertificateVerify (None when the peer sent no certificate).
    peer_signature_scheme: int | None
    # The scheme we signed our CertificateVerify with (None when we sent none).
    signature_scheme: int | None
    alpn_protocol: bytes | None
    server_name: str | None
    # The peer's certificate chain as sent, leaf first, DER.
    peer_certificates: tuple[bytes, ...] = field(repr=False)
    read: TrafficKeys
    write: TrafficKeys
    exporter_master_secret: bytes = field(repr=False)
    resumption_master_secret: bytes = field(repr=False)
    client_random: bytes = field(repr=False)
    # True when a HelloRetryRequest was part of this handshake.
    hello_retry: bool = False
    resumed: bool = False
    # The peer's record_size_limit (RFC 8449): the largest plaintext we may send it.
    peer_record_size_limit: int = 2**14
    # NSS key-log lines, when the config asked for them.
    keylog: tuple[str, ...] = field(default=(), repr=False)
    # TLS 1.2 only (empty for TLS 1.3): the master secret (RFC 7627's when
    # extended_master_secret), the server's random, for the RFC 5705 exporter.
    master_secret: bytes = field(default=b"", repr=False)
    server_random: bytes = field(default=b"", repr=False)
    extended_master_secret: bool = False

    def export_keying_material(self, label: bytes, context: bytes | None, length: int) -> bytes:
        """The RFC 8446 section 7.5 exporter, or for TLS 1.2 the RFC 5705 one.

        TLS-Exporter(label, context_value, key_length) =
            HKDF-Expand-Label(Derive-Secret(Secret, label, ""),
                              "exporter", Hash(context_value), key_length)

        TLS 1.3 treats no context (None) as an empty one; RFC 5705 does not.
        """
        if self.version == ProtocolVersion.TLS1_2:
            return tls12_export(
                Tls12SuiteParams.for_suite(self.cipher_suite),
                self.master_secret,
                client_random=self.client_random,
                server_random=self.server_random,
                label=label,
                context=context,
                length=length,
            )
        if context is None:
            context = b""
        params = CipherSuiteParams.for_suite(self.cipher_suite)
        derived = hkdf_expand_label(
            params, self.exporter_master_secret, label, params.hash_of(b""), params.hash_len
        )
        return hkdf_expand_label(params, derived, b"exporter", params.hash_of(context), length)


fast_frozen_init(HandshakeResult)


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake finished; `result` holds the keys."""

    result: HandshakeResult


fast_frozen_init(HandshakeComplete)


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """The handshake ended with an alert: sent by us (queued in data_to_send) or by the peer."""

    alert: int
    reason: str
    sent_by_peer: bool


Event = HandshakeComplete | HandshakeFailed
