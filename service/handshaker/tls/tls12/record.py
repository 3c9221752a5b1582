"""TLS 1.2 AEAD record protection (RFC 5246 section 6.2.3.3, RFC 5288, RFC 7905).

The record's own content type is in the clear (no inner type as in TLS 1.3), and
the additional data binds the sequence number, type, version and plaintext length:

    additional_data = seq_num + TLSCompressed.type +
                      TLSCompressed.version + TLSCompressed.length;

AES-GCM nonce (RFC 5288 section 3): salt[4] || nonce_explicit[8], the explicit part
sent in front of the ciphertext; we send the sequence number there, as section 3
suggests. ChaCha20-Poly1305 nonce (RFC 7905 section 2): the 12-byte IV XORed with
the padded sequence number, nothing explicit. The same interface as
record.RecordProtection, so the core and callers use either; the cryptography is
handshaker_wire.record's. No handshake logic here.
"""

from __future__ import annotations

from handshaker_wire.record import HEADER_LEN, MAX_PLAINTEXT, Tls12Protection

from ..errors import RecordOverflow
from ..events import TrafficKeys
from ..record import alert_error
from .suites import Tls12SuiteParams

# "The length (in bytes) of the following TLSCiphertext.fragment. The length MUST NOT
# exceed 2^14 + 2048." (RFC 5246 section 6.2.3)
MAX_TLS12_CIPHERTEXT = 2**14 + 2048


class Tls12RecordProtection(Tls12Protection):
    """One direction's TLS 1.2 AEAD protection: key, fixed IV (or salt), sequence number
    (the cryptography is handshaker_wire.record's, shared with the Python client)."""

    def __init__(
        self, params: Tls12SuiteParams, key: bytes, iv: bytes, sequence_number: int = 0
    ) -> None:
        if len(key) != params.key_len or len(iv) != params.fixed_iv_len:
            raise ValueError("TLS 1.2 record key or IV of the wrong size")
        super().__init__(params.aead(key), iv, bool(params.explicit_nonce_len), sequence_number)
        self.params = params
        self.key = key
        self.iv = iv

    def __repr__(self) -> str:
        return f"Tls12RecordProtection(suite=0x{self.params.suite:04x}, <redacted>)"

    def _error(self, alert: int, reason: str) -> Exception:
        return alert_error(alert, reason)

    @classmethod
    def from_keys(cls, cipher_suite: int, keys: TrafficKeys) -> Tls12RecordProtection:
        return cls(
            Tls12SuiteParams.for_suite(cipher_suite), keys.key, keys.iv, keys.sequence_number
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
        """Decrypt one whole record (header included): (content type, plaintext).

        `limit` is the Protection interface's bound on TLS 1.3's inner plaintext; a TLS 1.2
        record has none, and the core checks its content against our record size limit.
        """
        if len(record) - HEADER_LEN > MAX_TLS12_CIPHERTEXT:
            raise RecordOverflow("record longer than 2^14 + 2048 bytes")
        content_type = record[0]
        return content_type, self.open_fragment(content_type, record[HEADER_LEN:])
