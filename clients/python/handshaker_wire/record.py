"""AEAD record protection of TLS 1.3 (RFC 8446 section 5.2) and TLS 1.2 (RFC 5246
section 6.2.3.3 with RFC 5288 and RFC 7905), one direction each: nonces, additional
data, sealing and opening. The service's engine and the Python client's record layer
both subclass these, so there is one implementation of the record cryptography.

What each user does with a failure differs (the engine raises its alert classes, the
client its LocalProtocolError), so every failure goes through `_error(alert, reason)`,
which a subclass overrides. Framing, fragmenting and events are the users' own.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

Aead = AESGCM | ChaCha20Poly1305

HEADER_LEN = 5
MAX_PLAINTEXT = 2**14
TAG_LEN = 16
# RFC 8446 section 6: the alerts record protection can end a connection with.
UNEXPECTED_MESSAGE = 10
BAD_RECORD_MAC = 20
RECORD_OVERFLOW = 22
INTERNAL_ERROR = 80

_APPLICATION_DATA = 23
_OPAQUE_HEADER = bytes((_APPLICATION_DATA, 3, 3))
_VERSION = b"\x03\x03"
# "Sequence numbers are of type uint64 and may not exceed 2^64-1" (RFC 5246 section 6.1);
# RFC 8446 section 5.3: "it MUST either rekey ... or terminate the connection".
_LAST_SEQUENCE = 2**64 - 1


class RecordProtectionError(Exception):
    """A record that cannot be protected or opened, with the alert it calls for."""

    def __init__(self, alert: int, reason: str) -> None:
        super().__init__(reason)
        self.alert = alert


class AeadProtection:
    """What both versions' protections hold: the AEAD, the fixed IV as an integer and
    the sequence number of the next record. Version-neutral."""

    __slots__ = ("_aead", "_iv_int", "sequence_number")

    def __init__(self, aead: Aead, iv: bytes, sequence_number: int) -> None:
        self._aead = aead
        self._iv_int = int.from_bytes(iv, "big")
        self.sequence_number = sequence_number

    def _error(self, alert: int, reason: str) -> Exception:
        """The exception for a failure; subclasses raise their own kinds."""
        return RecordProtectionError(alert, reason)

    def _next_sequence(self) -> int:
        seq = self.sequence_number
        if seq >= _LAST_SEQUENCE:
            raise self._error(INTERNAL_ERROR, "sequence number exhausted")
        self.sequence_number = seq + 1
        return seq


class Tls13Protection(AeadProtection):
    """One direction's TLS 1.3 protection: the real content type is inside the record."""

    __slots__ = ()

    # TLS 1.3: the outer type is always application_data (RFC 8446 section 5.2).
    hides_content_type = True

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes:
        """One TLSCiphertext record carrying `data` (at most 2^14 bytes) of `content_type`.

        struct {
            opaque content[TLSPlaintext.length];
            ContentType type;
            uint8 zeros[length_of_padding];
        } TLSInnerPlaintext;
        """
        inner = data + bytes((content_type,)) + bytes(padding)
        header = _OPAQUE_HEADER + (len(inner) + TAG_LEN).to_bytes(2, "big")
        # "The per-record nonce ... is formed by XORing the padded sequence number with the IV."
        nonce = (self._iv_int ^ self._next_sequence()).to_bytes(12, "big")
        return header + self._aead.encrypt(nonce, inner, header)

    def open_fragment(
        self, header: bytes, fragment: bytes, limit: int = MAX_PLAINTEXT + 1
    ) -> tuple[int, bytes]:
        """Decrypt one record's fragment under its header: (inner content type, content).

        `limit` bounds the whole TLSInnerPlaintext (content, type and padding): "the full
        encoded TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets" (RFC 8446 section
        5.4), or our record_size_limit when the peer agreed to one (RFC 8449 section 4).
        """
        nonce = (self._iv_int ^ self._next_sequence()).to_bytes(12, "big")
        try:
            inner = self._aead.decrypt(nonce, fragment, header)
        except InvalidTag:
            raise self._error(BAD_RECORD_MAC, "record failed authentication") from None
        if len(inner) > limit:
            raise self._error(
                RECORD_OVERFLOW, "inner plaintext (with its padding) longer than allowed"
            )
        # "the receiving implementation scans the field from the end toward the
        #  beginning until it finds a non-zero octet. This non-zero octet is the
        #  content type of the message."
        end = len(inner)
        while end and inner[end - 1] == 0:
            end -= 1
        if not end:
            raise self._error(UNEXPECTED_MESSAGE, "protected record without a content type")
        if end - 1 > MAX_PLAINTEXT:
            raise self._error(RECORD_OVERFLOW, "inner plaintext longer than 2^14 bytes")
        return inner[end - 1], inner[: end - 1]


class Tls12Protection(AeadProtection):
    """One direction's TLS 1.2 AEAD protection; the content type is in the clear.

        additional_data = seq_num + TLSCompressed.type +
                          TLSCompressed.version + TLSCompressed.length;

    AES-GCM nonce (RFC 5288 section 3): salt[4] || nonce_explicit[8], the explicit
    part sent in front of the ciphertext; we send the sequence number there, as
    section 3 suggests. ChaCha20-Poly1305 (RFC 7905 section 2): the 12-byte IV XORed
    with the padded sequence number, nothing explicit.
    """

    __slots__ = ("_explicit_nonce", "_salt")

    hides_content_type = False

    def __init__(
        self, aead: Aead, iv: bytes, explicit_nonce: bool, sequence_number: int
    ) -> None:
        super().__init__(aead, iv, sequence_number)
        self._salt = iv
        self._explicit_nonce = explicit_nonce

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes:
        """One TLSCiphertext record carrying `data` (at most 2^14 bytes); no padding in 1.2."""
        seq_bytes = self._next_sequence().to_bytes(8, "big")
        type_and_version = bytes((content_type,)) + _VERSION
        aad = seq_bytes + type_and_version + len(data).to_bytes(2, "big")
        if self._explicit_nonce:
            fragment = seq_bytes + self._aead.encrypt(self._salt + seq_bytes, data, aad)
        else:
            nonce = (self._iv_int ^ int.from_bytes(seq_bytes, "big")).to_bytes(12, "big")
            fragment = self._aead.encrypt(nonce, data, aad)
        return type_and_version + len(fragment).to_bytes(2, "big") + fragment

    def open_fragment(self, content_type: int, fragment: bytes) -> bytes:
        """The plaintext of one record of `content_type` (at most 2^14 bytes)."""
        explicit_len = 8 if self._explicit_nonce else 0
        length = len(fragment) - explicit_len - TAG_LEN
        if length < 0:
            # Too short to hold the nonce and tag: it cannot authenticate.
            raise self._error(BAD_RECORD_MAC, "record too short for its nonce and tag")
        seq = self._next_sequence()
        aad = seq.to_bytes(8, "big") + bytes((content_type,)) + _VERSION
        aad += length.to_bytes(2, "big")
        if explicit_len:
            nonce = self._salt + fragment[:8]
        else:
            nonce = (self._iv_int ^ seq).to_bytes(12, "big")
        try:
            plaintext = self._aead.decrypt(nonce, fragment[explicit_len:], aad)
        except InvalidTag:
            raise self._error(BAD_RECORD_MAC, "record failed authentication") from None
        if len(plaintext) > MAX_PLAINTEXT:
            raise self._error(RECORD_OVERFLOW, "plaintext longer than 2^14 bytes")
        return plaintext
