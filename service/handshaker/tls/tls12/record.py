"""TLS 1.2 AEAD record protection (RFC 5246 section 6.2.3.3, RFC 5288, RFC 7905).

The record's own content type is in the clear (no inner type as in TLS 1.3), and
the additional data binds the sequence number, type, version and plaintext length:

    additional_data = seq_num + TLSCompressed.type +
                      TLSCompressed.version + TLSCompressed.length;

AES-GCM nonce (RFC 5288 section 3): salt[4] || nonce_explicit[8], the explicit part
sent in front of the ciphertext; we send the sequence number there, as section 3
suggests. ChaCha20-Poly1305 nonce (RFC 7905 section 2): the 12-byte IV XORed with
the padded sequence number, nothing explicit. The same interface as
record.RecordProtection, so the core and callers use either. No handshake logic here.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag

from ..errors import BadRecordMac, RecordOverflow
from ..events import TrafficKeys
from ..record import HEADER_LEN, MAX_PLAINTEXT, TAG_LEN
from .suites import Tls12SuiteParams

_VERSION = b"\x03\x03"
# "The length (in bytes) of the following TLSCiphertext.fragment. The length MUST NOT
# exceed 2^14 + 2048." (RFC 5246 section 6.2.3)
MAX_TLS12_CIPHERTEXT = 2**14 + 2048


class Tls12RecordProtection:
    """One direction's TLS 1.2 AEAD protection: key, fixed IV (or salt), sequence number."""

    __slots__ = ("_aead", "_iv_int", "iv", "key", "params", "sequence_number")

    # The content type travels in the record header (core.py reads it from there).
    hides_content_type = False

    def __init__(
        self, params: Tls12SuiteParams, key: bytes, iv: bytes, sequence_number: int = 0
    ) -> None:
        if len(key) != params.key_len or len(iv) != params.fixed_iv_len:
            raise ValueError("TLS 1.2 record key or IV of the wrong size")
        self.params = params
        self.key = key
        self.iv = iv
        self._aead = params.aead(key)
        self._iv_int = int.from_bytes(iv, "big")
        self.sequence_number = sequence_number

    def __repr__(self) -> str:
        return f"Tls12RecordProtection(suite=0x{self.params.suite:04x}, <redacted>)"

    @classmethod
    def from_keys(cls, cipher_suite: int, keys: TrafficKeys) -> Tls12RecordProtection:
        return cls(
            Tls12SuiteParams.for_suite(cipher_suite), keys.key, keys.iv, keys.sequence_number
        )

    def _next_sequence(self) -> int:
        seq = self.sequence_number
        # RFC 5246 section 6.1: "Sequence numbers are of type uint64 and may not exceed
        # 2^64-1"; there is no renegotiation to rekey, so the connection must end.
        if seq >= 2**64 - 1:
            raise RecordOverflow("sequence number exhausted")
        self.sequence_number = seq + 1
        return seq

    def _nonce(self, seq: int, explicit: bytes) -> bytes:
        if self.params.explicit_nonce_len:
            return self.iv + explicit
        return (self._iv_int ^ seq).to_bytes(12, "big")

    def seal(self, content_type: int, data: bytes, padding: int = 0) -> bytes:
        """One TLSCiphertext record carrying `data` (at most 2^14 bytes); no padding in 1.2."""
        seq = self._next_sequence()
        explicit = seq.to_bytes(8, "big") if self.params.explicit_nonce_len else b""
        aad = seq.to_bytes(8, "big") + bytes((content_type,)) + _VERSION
        aad += len(data).to_bytes(2, "big")
        fragment = explicit + self._aead.encrypt(self._nonce(seq, explicit), data, aad)
        return bytes((content_type,)) + _VERSION + len(fragment).to_bytes(2, "big") + fragment

    def seal_fragments(self, content_type: int, data: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
        """As many records as `data` needs, each carrying at most `limit` bytes."""
        if len(data) <= limit:
            return self.seal(content_type, data)
        return b"".join(
            self.seal(content_type, data[start : start + limit])
            for start in range(0, len(data), limit)
        )

    def open(self, record: bytes, limit: int = MAX_PLAINTEXT + 1) -> tuple[int, bytes]:
        """Decrypt one whole record (header included): (content type, plaintext).

        `limit` is the Protection interface's bound on TLS 1.3's inner plaintext; a TLS 1.2
        record has none, and the core checks its content against our record size limit.
        """
        content_type = record[0]
        fragment = record[HEADER_LEN:]
        if len(fragment) > MAX_TLS12_CIPHERTEXT:
            raise RecordOverflow("record longer than 2^14 + 2048 bytes")
        explicit_len = self.params.explicit_nonce_len
        plaintext_len = len(fragment) - explicit_len - TAG_LEN
        if plaintext_len < 0:
            # Too short to hold the nonce and tag: it cannot authenticate.
            raise BadRecordMac("record too short for its AEAD")
        seq = self._next_sequence()
        explicit = fragment[:explicit_len]
        aad = seq.to_bytes(8, "big") + bytes((content_type,)) + _VERSION
        aad += plaintext_len.to_bytes(2, "big")
        try:
            plaintext = self._aead.decrypt(self._nonce(seq, explicit), fragment[explicit_len:], aad)
        except InvalidTag:
            raise BadRecordMac("record failed authentication") from None
        if len(plaintext) > MAX_PLAINTEXT:
            raise RecordOverflow("plaintext longer than 2^14 bytes")
        return content_type, plaintext
