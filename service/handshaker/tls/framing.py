"""TLS record framing (RFC 8446 section 5.1), version-neutral: whole records out of a
byte stream, and TLSPlaintext records around handshake bytes.

Apart from record.py (whose protection subclasses handshaker_wire's, and so stays
Python when the engine is compiled) so that the per-record loop is compiled.
"""

from __future__ import annotations

from collections.abc import Iterator

from handshaker_wire.record import HEADER_LEN, MAX_PLAINTEXT

from .codepoints import ContentType
from .errors import DecodeError, RecordOverflow, UnexpectedMessage

# "The length MUST NOT exceed 2^14 + 256 bytes" (TLSCiphertext.length).
MAX_CIPHERTEXT = 2**14 + 256

_KNOWN_CONTENT_TYPES = frozenset(
    (
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.ALERT,
        ContentType.HANDSHAKE,
        ContentType.APPLICATION_DATA,
    )
)


class RecordReader:
    """Buffers bytes from the wire and yields complete records."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        elif self._buf:
            self._buf += data
        else:
            self._buf = bytes(data)

    def next_record(self) -> tuple[int, bytes] | None:
        """The next whole record (content type, header + fragment), or None if incomplete."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_LEN:
            return None
        content_type = buf[pos]
        if content_type not in _KNOWN_CONTENT_TYPES:
            raise UnexpectedMessage(f"unknown record content type {content_type}")
        if buf[pos + 1] != 3:
            raise DecodeError("record version is not TLS")
        length = (buf[pos + 3] << 8) | buf[pos + 4]
        if length > MAX_CIPHERTEXT:
            raise RecordOverflow("record longer than 2^14 + 256 bytes")
        end = pos + HEADER_LEN + length
        if end > len(buf):
            return None
        self._pos = end
        return content_type, buf[pos:end]

    def records(self) -> Iterator[tuple[int, bytes]]:
        while (record := self.next_record()) is not None:
            yield record

    def pending(self) -> bytes:
        """Bytes fed but not yet returned as records."""
        return self._buf[self._pos :]

    def pending_length(self) -> int:
        """How many bytes pending() would return, without copying them."""
        return len(self._buf) - self._pos

    def take_pending(self) -> bytes:
        rest = self._buf[self._pos :]
        self._buf = b""
        self._pos = 0
        return rest


def plaintext_records(content_type: int, data: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
    """TLSPlaintext records carrying `data`, fragmented at `limit` bytes."""
    out = bytearray()
    header = bytes((content_type, 3, 3))
    for start in range(0, len(data), limit):
        fragment = data[start : start + limit]
        out += header
        out += len(fragment).to_bytes(2, "big")
        out += fragment
    return bytes(out)
