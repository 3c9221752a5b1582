"""The TLS 1.3 record layer: framing (RFC 8446 section 5.1) and AEAD protection (5.2).

RecordReader splits a byte stream into whole records without copying more than
it must; RecordProtection seals and opens TLSCiphertext with one direction's
key and IV. Both are usable by callers after the handshake, with the keys the
engine returned. No handshake logic lives here.
"""

from __future__ import annotations

from typing import Any, Protocol

from handshaker_wire.record import HEADER_LEN, MAX_PLAINTEXT, TAG_LEN, Tls13Protection

from .codepoints import ContentType
from .errors import (
    AlertError,
    BadRecordMac,
    InternalError,
    RecordOverflow,
    UnexpectedMessage,
)
from .events import TrafficKeys
from .framing import MAX_CIPHERTEXT, RecordReader
from .key_schedule import CipherSuiteParams

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_APPLICATION_DATA = ContentType.APPLICATION_DATA

__all__ = ["HEADER_LEN", "MAX_PLAINTEXT", "TAG_LEN", "RecordProtection", "RecordReader"]


class Protection(Protocol):
    """One direction's record protection, whatever the version (this module's
    RecordProtection for TLS 1.3, tls12/record.py's for TLS 1.2)."""

    key: bytes
    iv: bytes
    sequence_number: int

    @property
    def params(self) -> Any: ...

    @property
    def hides_content_type(self) -> bool:
        """True when the real content type is inside the protected record (TLS 1.3)."""
        ...

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes: ...

    def seal_fragments(
        self, content_type: int, data: bytes, limit: int = MAX_PLAINTEXT
    ) -> bytes: ...

    def open(self, record: bytes, limit: int = MAX_PLAINTEXT + 1) -> tuple[int, bytes]: ...


class RecordProtection(Tls13Protection):
    """One direction's TLS 1.3 AEAD record protection: key, IV and sequence number
    (the cryptography is handshaker_wire.record's, shared with the Python client)."""

    def __init__(
        self, params: CipherSuiteParams, key: bytes, iv: bytes, sequence_number: int = 0
    ) -> None:
        super().__init__(params.aead(key), iv, sequence_number)
        self.params = params
        # Kept for snapshots of a connection in the middle of its handshake.
        self.key = key
        self.iv = iv

    def __repr__(self) -> str:
        return f"RecordProtection(suite=0x{self.params.suite:04x}, <redacted>)"

    def _error(self, alert: int, reason: str) -> Exception:
        return alert_error(alert, reason)

    @classmethod
    def from_keys(cls, cipher_suite: int, keys: TrafficKeys) -> RecordProtection:
        return cls(
            CipherSuiteParams.for_suite(cipher_suite), keys.key, keys.iv, keys.sequence_number
        )

    def seal_fragments(self, content_type: int, data: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
        """As many records as `data` needs, each carrying at most `limit` bytes."""
        if len(data) <= limit:
            return self.seal(content_type, data)
        return b"".join(
            self.seal(content_type, data[start : start + limit])
            for start in range(0, len(data), limit)
        )

    def open(self, record: bytes, limit: int = MAX_PLAINTEXT + 1) -> tuple[int, bytes]:
        """Decrypt one whole record (header included): (inner content type, content)."""
        if record[0] != _APPLICATION_DATA:
            raise UnexpectedMessage("unprotected record where a protected one was due")
        if len(record) - HEADER_LEN > MAX_CIPHERTEXT:
            raise RecordOverflow("record longer than 2^14 + 256 bytes")
        return self.open_fragment(record[:HEADER_LEN], record[HEADER_LEN:], limit)


_ALERT_ERRORS: dict[int, type[AlertError]] = {
    UnexpectedMessage.description: UnexpectedMessage,
    BadRecordMac.description: BadRecordMac,
    RecordOverflow.description: RecordOverflow,
}


def alert_error(alert: int, reason: str) -> AlertError:
    """The engine's error for a record protection's failure (handshaker_wire.record)."""
    return _ALERT_ERRORS.get(alert, InternalError)(reason)
