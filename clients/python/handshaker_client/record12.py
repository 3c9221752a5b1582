"""The TLS 1.2 record layer for application traffic, sans-IO, on the keys the service returned.

RFC 5246 sections 6.2 (records) and 7.2 (alerts), RFC 5288 (AES-GCM), RFC 7905
(ChaCha20-Poly1305), RFC 5746 (renegotiation refused). The same interface as the
TLS 1.3 RecordLayer, whose version-neutral parts (queues, fragmenting, events,
close) it inherits; what differs is here: the content type travels in the record
header and in the additional data, GCM records carry an explicit nonce, there is
no KeyUpdate, warning alerts are ignored (a bounded number in a row), and a
HelloRequest or ClientHello after the handshake gets a warning no_renegotiation.
tests/vectors/records.json (`tls12_scenarios`) pins every rule down.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from handshaker_wire.record import Tls12Protection

from .constants import AlertDescription, AlertLevel, ContentType, HandshakeType, cipher_suite_name
from .errors import LocalProtocolError, PeerAlertError, TLSProtocolError
from .keys import TrafficKeys
from .record import (
    HANDSHAKE_HEADER_LEN,
    HEADER_LEN,
    MAX_PLAINTEXT,
    TLS1_2,
    ApplicationData,
    BaseRecordLayer,
)

_VERSION = b"\x03\x03"
# "The length MUST NOT exceed 2^14 + 2048" (TLSCiphertext.length, section 6.2.3).
MAX_CIPHERTEXT = 2**14 + 2048
# A renegotiation ClientHello is buffered whole before it is refused; no real one is
# near this (RFC 5246 bounds a handshake message at 2^24 - 1, which we do not hold).
MAX_POST_HANDSHAKE_MESSAGE = 2**17
# Warning alerts in a row before the peer is cut off (BoringSSL's kMaxWarningAlerts).
MAX_WARNING_ALERTS = 4
HELLO_REQUEST = 0


@dataclass(frozen=True, slots=True)
class _Suite:
    key_len: int
    # The fixed IV: GCM's 4-byte salt, ChaCha20-Poly1305's 12-byte IV.
    iv_len: int
    explicit_nonce_len: int
    aead: type[AESGCM] | type[ChaCha20Poly1305]


_GCM128 = _Suite(16, 4, 8, AESGCM)
_GCM256 = _Suite(32, 4, 8, AESGCM)
_CHACHA = _Suite(32, 12, 0, ChaCha20Poly1305)
_SUITES: dict[int, _Suite] = {
    0xC02B: _GCM128,  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xC02C: _GCM256,  # TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    0xCCA9: _CHACHA,  # TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    0xC02F: _GCM128,  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0xC030: _GCM256,  # TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    0xCCA8: _CHACHA,  # TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    0x009C: _GCM128,  # TLS_RSA_WITH_AES_128_GCM_SHA256
    0x009D: _GCM256,  # TLS_RSA_WITH_AES_256_GCM_SHA384
    0x009E: _GCM128,  # TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
    0x009F: _GCM256,  # TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
    0xCCAA: _CHACHA,  # TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
}


def _suite(cipher_suite: int) -> _Suite:
    try:
        return _SUITES[cipher_suite]
    except KeyError:
        raise ValueError(f"not a TLS 1.2 AEAD suite: {cipher_suite_name(cipher_suite)}") from None


class Tls12RecordProtection(Tls12Protection):
    """One direction's TLS 1.2 AEAD: key, fixed IV and the next sequence number (the
    cryptography is handshaker_wire.record's, which the service's engine uses too)."""

    __slots__ = ("cipher_suite", "keys", "suite")

    def __init__(self, cipher_suite: int, keys: TrafficKeys) -> None:
        suite = _suite(cipher_suite)
        if len(keys.key) != suite.key_len or len(keys.iv) != suite.iv_len:
            raise ValueError("key or IV length does not match the cipher suite")
        super().__init__(
            suite.aead(keys.key), keys.iv, bool(suite.explicit_nonce_len), keys.sequence_number
        )
        self.cipher_suite = cipher_suite
        self.suite = suite
        self.keys = keys

    def _error(self, alert: int, reason: str) -> Exception:
        return LocalProtocolError(alert, reason)

    def current_keys(self) -> TrafficKeys:
        return TrafficKeys(b"", self.keys.key, self.keys.iv, self.sequence_number)

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes:
        """One TLSCiphertext record; the explicit GCM nonce is the sequence number."""
        if len(data) > MAX_PLAINTEXT:
            raise ValueError("a record carries at most 2^14 bytes")
        return super().seal(content_type, data)

    def open(self, content_type: int, fragment: bytes) -> bytes:
        """The plaintext of one record of `content_type`."""
        return self.open_fragment(content_type, fragment)


class Tls12RecordLayer(BaseRecordLayer):
    """Both directions of a TLS 1.2 connection after its handshake."""

    def __init__(
        self,
        cipher_suite: int,
        read: TrafficKeys,
        write: TrafficKeys,
        *,
        peer_record_size_limit: int = MAX_PLAINTEXT,
    ) -> None:
        super().__init__(cipher_suite, peer_record_size_limit=peer_record_size_limit)
        self._read = Tls12RecordProtection(cipher_suite, read)
        self._write = Tls12RecordProtection(cipher_suite, write)
        self.version = TLS1_2
        self.warning_alerts_in_a_row = 0
        self.renegotiations_refused = 0

    @property
    def read_keys(self) -> TrafficKeys:
        """The current read keys, with the sequence number of the next record."""
        return self._read.current_keys()

    @property
    def write_keys(self) -> TrafficKeys:
        return self._write.current_keys()

    def _seal(self, content_type: int, content: bytes) -> None:
        self._out += self._write.seal(content_type, content)

    def update_keys(self, request_peer_update: bool = True) -> None:
        """TLS 1.2 has no KeyUpdate: refused, nothing is sent."""
        raise TLSProtocolError(
            AlertDescription.UNEXPECTED_MESSAGE, "TLS 1.2 has no KeyUpdate (RFC 8446 only)"
        )

    def _process_record_or_raise(self) -> bool:
        buffer = self._in
        if len(buffer) < HEADER_LEN:
            return False
        content_type = buffer[0]
        length = int.from_bytes(buffer[3:5], "big")
        if buffer[1:3] != _VERSION:
            raise LocalProtocolError(
                AlertDescription.PROTOCOL_VERSION, "a record that is not TLS 1.2"
            )
        if length > MAX_CIPHERTEXT:
            raise LocalProtocolError(
                AlertDescription.RECORD_OVERFLOW, "record longer than 2^14 + 2048 bytes"
            )
        if len(buffer) < HEADER_LEN + length:
            return False
        fragment = bytes(buffer[HEADER_LEN : HEADER_LEN + length])
        del buffer[: HEADER_LEN + length]
        if content_type not in (
            ContentType.APPLICATION_DATA,
            ContentType.ALERT,
            ContentType.HANDSHAKE,
        ):
            # change_cipher_spec belongs to the handshake; nothing else is negotiated.
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE,
                f"a record of type {content_type} after the handshake",
            )
        content = self._read.open(content_type, fragment)
        if self._handshake and content_type != ContentType.HANDSHAKE:
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE,
                "handshake message interleaved with another record type",
            )
        if content_type == ContentType.APPLICATION_DATA:
            self.warning_alerts_in_a_row = 0
            if content:
                self._events.append(ApplicationData(content))
        elif not content:
            # "Implementations MUST NOT send zero-length fragments of Handshake, Alert,
            #  or ChangeCipherSpec content types." (section 6.2.1)
            raise LocalProtocolError(
                AlertDescription.UNEXPECTED_MESSAGE, "a zero-length handshake or alert record"
            )
        elif content_type == ContentType.ALERT:
            self._receive_alert(content)
        else:
            self._receive_handshake(content)
        return True

    def _receive_alert(self, content: bytes) -> None:
        if len(content) != 2:
            raise LocalProtocolError(AlertDescription.DECODE_ERROR, "an alert is two bytes")
        level, description = content[0], content[1]
        if description == AlertDescription.CLOSE_NOTIFY:
            self._receive_close_notify()
        elif level == AlertLevel.WARNING:
            # "If an alert with a level of warning is sent and received, generally the
            #  connection can continue normally." Bounded, so a peer cannot spin us.
            self.warning_alerts_in_a_row += 1
            if self.warning_alerts_in_a_row > MAX_WARNING_ALERTS:
                raise LocalProtocolError(
                    AlertDescription.UNEXPECTED_MESSAGE, "too many warning alerts in a row"
                )
        else:
            raise PeerAlertError(description)

    def _receive_handshake(self, content: bytes) -> None:
        buffer = self._handshake
        buffer += content
        while len(buffer) >= HANDSHAKE_HEADER_LEN:
            msg_type = buffer[0]
            length = int.from_bytes(buffer[1:4], "big")
            if msg_type not in (HELLO_REQUEST, HandshakeType.CLIENT_HELLO):
                raise LocalProtocolError(
                    AlertDescription.UNEXPECTED_MESSAGE,
                    f"handshake message of type {msg_type} after the handshake",
                )
            if msg_type == HELLO_REQUEST and length:
                raise LocalProtocolError(
                    AlertDescription.DECODE_ERROR, "a HelloRequest with a body"
                )
            if length > MAX_POST_HANDSHAKE_MESSAGE:
                raise LocalProtocolError(
                    AlertDescription.UNEXPECTED_MESSAGE, "post-handshake message too large"
                )
            if len(buffer) < HANDSHAKE_HEADER_LEN + length:
                return
            del buffer[: HANDSHAKE_HEADER_LEN + length]
            self._refuse_renegotiation()

    def _refuse_renegotiation(self) -> None:
        """RFC 5746 section 4 / RFC 5246 section 7.2.2: no_renegotiation, a warning."""
        self.renegotiations_refused += 1
        if not self.write_closed:
            alert = bytes((AlertLevel.WARNING, AlertDescription.NO_RENEGOTIATION))
            self._seal(ContentType.ALERT, alert)
