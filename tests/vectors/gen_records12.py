"""The TLS 1.2 half of tests/vectors/records.json: AEAD records and post-handshake scenarios.

gen_records.py writes these under the keys `tls12_suites` and `tls12_scenarios`;
run that script, not this one. The reference is the engine's TLS 1.2 record
protection (service/handshaker/tls/tls12/record.py); every record is sealed a
second time with `cryptography` directly and the two must agree.

The behaviour the scenarios pin down (RFC 5246 sections 6.2, 7.2, 7.4.1.1;
RFC 5288; RFC 7905; RFC 5746 section 4):

- The content type is in the record header and in the additional data
  (seq_num + type + version + length); there is no inner type and no padding.
  AES-GCM records carry an 8-byte explicit nonce in front of the ciphertext:
  we send the sequence number there; a peer may send any value, and we use
  what it sent. ChaCha20-Poly1305 has no explicit nonce (RFC 7905).
- Records to the peer carry at most min(2^14, peer_record_size_limit) bytes
  (for TLS 1.2 the peer's RFC 8449 limit is the plaintext limit).
- A TLSCiphertext longer than 2^14 + 2048 or a plaintext longer than 2^14 is
  record_overflow; a record that does not authenticate (or is too short for
  its nonce and tag) is bad_record_mac; a record version other than 0x0303 is
  protocol_version; a change_cipher_spec or unknown record type after the
  handshake is unexpected_message, as is a zero-length handshake or alert
  record and a handshake message interleaved with another record type.
- Renegotiation is refused: a HelloRequest (from a server) and a ClientHello
  (from a client) are each answered with a warning no_renegotiation alert and
  otherwise ignored (RFC 5246 section 7.2.2: "Sent by the client in response
  to a hello request or by the server in response to a client hello after
  initial handshaking"); any other handshake message is unexpected_message.
- Warning alerts other than close_notify are ignored ("the connection can
  continue normally"), at most 4 in a row without application data between
  them (a fifth is unexpected_message, as BoringSSL bounds them); a fatal alert
  ends the connection; close_notify ends the peer's stream.
- TLS 1.2 has no KeyUpdate: asking to update the keys is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from handshaker.tls.tls12.record import Tls12RecordProtection
from handshaker.tls.tls12.suites import Tls12SuiteParams
from scenario_steps import CLOSE_EVENT, Steps, data_event, local_error

ECDHE_ECDSA_AES_128_GCM = 0xC02B
ECDHE_ECDSA_AES_256_GCM = 0xC02C
ECDHE_ECDSA_CHACHA20 = 0xCCA9
ECDHE_RSA_AES_128_GCM = 0xC02F
ECDHE_RSA_AES_256_GCM = 0xC030
ECDHE_RSA_CHACHA20 = 0xCCA8
SUITE_NAMES = {
    ECDHE_ECDSA_AES_128_GCM: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ECDHE_ECDSA_AES_256_GCM: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ECDHE_ECDSA_CHACHA20: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ECDHE_RSA_AES_128_GCM: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ECDHE_RSA_AES_256_GCM: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ECDHE_RSA_CHACHA20: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
WARNING, FATAL = 1, 2
CLOSE_NOTIFY, UNEXPECTED_MESSAGE, BAD_RECORD_MAC, RECORD_OVERFLOW = 0, 10, 20, 22
HANDSHAKE_FAILURE, DECODE_ERROR, PROTOCOL_VERSION = 40, 50, 70
USER_CANCELED, NO_RENEGOTIATION = 90, 100
MAX_PLAINTEXT = 2**14
MAX_WARNING_ALERTS = 4
HELLO_REQUEST = bytes(4)  # struct { } HelloRequest; behind its handshake header


def pattern(label: str, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"tls12 {label}/{counter}".encode()).digest()
        counter += 1
    return out[:length]


def _keys(suite: int, label: str) -> tuple[bytes, bytes]:
    params = Tls12SuiteParams.for_suite(suite)
    material = pattern(f"keys {label}", params.key_len + params.fixed_iv_len)
    return material[: params.key_len], material[params.key_len :]


def _header(content_type: int, length: int, version: bytes = b"\x03\x03") -> bytes:
    return bytes((content_type,)) + version + length.to_bytes(2, "big")


def _direct_seal(
    keys: tuple[int, bytes, bytes],
    seq: int,
    content_type: int,
    content: bytes,
    *,
    explicit: bytes | None = None,
) -> bytes:
    """The record sealed with `cryptography` alone; `explicit` overrides GCM's nonce_explicit.

    `keys` is (suite, key, fixed IV).
    """
    suite, key, iv = keys
    params = Tls12SuiteParams.for_suite(suite)
    aad = seq.to_bytes(8, "big") + bytes((content_type, 3, 3)) + len(content).to_bytes(2, "big")
    if params.explicit_nonce_len:
        explicit = seq.to_bytes(8, "big") if explicit is None else explicit
        fragment = explicit + AESGCM(key).encrypt(iv + explicit, content, aad)
    else:
        nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
        fragment = ChaCha20Poly1305(key).encrypt(nonce, content, aad)
    return _header(content_type, len(fragment)) + fragment


def checked_seal(
    suite: int, key: bytes, iv: bytes, seq: int, *, content_type: int, content: bytes
) -> bytes:
    params = Tls12SuiteParams.for_suite(suite)
    record = Tls12RecordProtection(params, key, iv, seq).seal(content_type, content)
    assert record == _direct_seal((suite, key, iv), seq, content_type, content), "disagrees"
    return record


@dataclass
class Direction:
    suite: int
    key: bytes
    iv: bytes
    seq: int
    start: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, suite: int, label: str, seq: int) -> Direction:
        key, iv = _keys(suite, label)
        start = {"secret": "", "key": key.hex(), "iv": iv.hex(), "sequence_number": seq}
        return cls(suite, key, iv, seq, start)

    def seal(self, content_type: int, content: bytes, explicit: bytes | None = None) -> bytes:
        if explicit is None:
            record = checked_seal(
                self.suite, self.key, self.iv, self.seq, content_type=content_type, content=content
            )
        else:
            keys = (self.suite, self.key, self.iv)
            record = _direct_seal(keys, self.seq, content_type, content, explicit=explicit)
        self.seq += 1
        return record

    def application_data(self, data: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
        return b"".join(
            self.seal(APPLICATION_DATA, data[i : i + limit]) for i in range(0, len(data), limit)
        )

    def alert(self, level: int, description: int) -> bytes:
        return self.seal(ALERT, bytes((level, description)))


class Scenario(Steps):
    """One TLS 1.2 scenario: `peer` seals what we receive, `us` what we must send."""

    def __init__(
        self,
        name: str,
        description: str,
        suite: int,
        *,
        peer_record_size_limit: int = MAX_PLAINTEXT,
    ) -> None:
        super().__init__()
        self.name = name
        self.description = description
        self.suite = suite
        self.peer = Direction.new(suite, f"{name} peer", 1)
        self.us = Direction.new(suite, f"{name} us", 1)
        self.limit = peer_record_size_limit

    def update_keys_refused(self, note: str) -> None:
        self._step(
            {"action": "update_keys", "request_peer_update": True},
            {"output": "", "refused": True},
            note,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "version": 0x0303,
            "cipher_suite": self.suite,
            "cipher_suite_name": SUITE_NAMES[self.suite],
            "read": self.peer.start,
            "write": self.us.start,
            "peer_record_size_limit": self.limit,
            "steps": self.steps,
        }





def suite_vectors(suite: int) -> dict[str, Any]:
    """Key, fixed IV and single records at given sequence numbers."""
    key, iv = _keys(suite, "suite vector")
    cases = [
        (0, APPLICATION_DATA, b""),
        (1, APPLICATION_DATA, b"hello, world"),
        (2, APPLICATION_DATA, pattern("record 2", 100)),
        (2**32 + 5, APPLICATION_DATA, pattern("high sequence", 40)),
        (2**64 - 2, APPLICATION_DATA, b"last sequence number"),
        (9, ALERT, bytes((WARNING, CLOSE_NOTIFY))),
        (10, ALERT, bytes((FATAL, BAD_RECORD_MAC))),
        (11, HANDSHAKE, HELLO_REQUEST),
        (12, APPLICATION_DATA, pattern("full record", MAX_PLAINTEXT)),
    ]
    return {
        "cipher_suite": suite,
        "name": SUITE_NAMES[suite],
        "key": key.hex(),
        "iv": iv.hex(),
        "records": [
            {
                "sequence_number": seq,
                "content_type": content_type,
                "content": content.hex(),
                "record": checked_seal(
                    suite, key, iv, seq, content_type=content_type, content=content
                ).hex(),
            }
            for seq, content_type, content in cases
        ],
    }


def _sending() -> list[Scenario]:
    s = Scenario(
        "tls12_fragment_at_2_14",
        "40000 bytes go out as records of 16384, 16384, 7232; the explicit nonce is the "
        "sequence number.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    data = pattern("fragment 2^14", 40_000)
    s.send(data, s.us.application_data(data))
    s.send(b"", b"", "nothing to send, no record")
    out = [s]

    s = Scenario(
        "tls12_fragment_at_peer_record_size_limit",
        "The peer's record_size_limit of 1000 is the most plaintext per record in TLS 1.2.",
        ECDHE_RSA_CHACHA20,
        peer_record_size_limit=1000,
    )
    data = pattern("fragment limit", 2500)
    s.send(data, s.us.application_data(data, 1000))
    s.send(data[:1001], s.us.application_data(data[:1001], 1000), "one byte over")
    out.append(s)

    s = Scenario(
        "tls12_no_key_update",
        "TLS 1.2 has no KeyUpdate: asking for one is refused and nothing is sent.",
        ECDHE_ECDSA_AES_256_GCM,
    )
    s.update_keys_refused("no KeyUpdate in TLS 1.2")
    s.send(b"after", s.us.application_data(b"after"), "the connection goes on")
    out.append(s)
    return out


def _receiving() -> list[Scenario]:
    s = Scenario(
        "tls12_receive_records",
        "Application data, a zero-length application record (allowed in TLS 1.2, no event), "
        "a record split across reads, a GCM explicit nonce that is not the sequence number, "
        "and a full 2^14-byte record.",
        ECDHE_RSA_AES_128_GCM,
    )
    full = pattern("receive full", MAX_PLAINTEXT)
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"first") + s.peer.seal(APPLICATION_DATA, b""),
        events=[data_event(b"first")],
    )
    split = s.peer.seal(APPLICATION_DATA, b"split across two reads")
    s.receive(split[:9], note="a partial record waits for the rest")
    s.receive(split[9:], events=[data_event(b"split across two reads")])
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"random nonce", explicit=pattern("explicit", 8)),
        events=[data_event(b"random nonce")],
        note="RFC 5288: the nonce_explicit is the sender's choice",
    )
    s.receive(s.peer.seal(APPLICATION_DATA, full), events=[data_event(full)])
    s.send(b"still fine", s.us.application_data(b"still fine"))
    out = [s]

    for suite in (ECDHE_ECDSA_AES_128_GCM, ECDHE_ECDSA_AES_256_GCM, ECDHE_ECDSA_CHACHA20):
        s = Scenario(
            f"tls12_bad_tag_{SUITE_NAMES[suite]}",
            "A record whose tag does not verify: bad_record_mac, sent at once.",
            suite,
        )
        record = bytearray(s.peer.seal(APPLICATION_DATA, b"tampered"))
        record[-1] ^= 0x80
        s.receive(
            bytes(record),
            output=s.us.alert(FATAL, BAD_RECORD_MAC),
            error=local_error(BAD_RECORD_MAC),
        )
        out.append(s)

    s = Scenario(
        "tls12_wrong_sequence_number",
        "A record sealed for a later sequence number (one was lost) does not authenticate.",
        ECDHE_RSA_AES_256_GCM,
    )
    s.peer.seq += 1
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"skipped one"),
        output=s.us.alert(FATAL, BAD_RECORD_MAC),
        error=local_error(BAD_RECORD_MAC),
    )
    out.append(s)

    s = Scenario(
        "tls12_record_too_short_for_nonce_and_tag",
        "A GCM record of 20 bytes cannot hold the 8-byte nonce and the 16-byte tag.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        _header(APPLICATION_DATA, 20) + bytes(20),
        output=s.us.alert(FATAL, BAD_RECORD_MAC),
        error=local_error(BAD_RECORD_MAC),
    )
    out.append(s)

    s = Scenario(
        "tls12_plaintext_too_long",
        "A record that authenticates but carries 2^14 + 1 bytes: record_overflow.",
        ECDHE_ECDSA_CHACHA20,
    )
    s.receive(
        _direct_seal(
            (s.suite, s.peer.key, s.peer.iv), s.peer.seq, APPLICATION_DATA, bytes(MAX_PLAINTEXT + 1)
        ),
        output=s.us.alert(FATAL, RECORD_OVERFLOW),
        error=local_error(RECORD_OVERFLOW),
    )
    out.append(s)

    s = Scenario(
        "tls12_ciphertext_too_long",
        "A header announcing 2^14 + 2049 bytes is record_overflow before the body arrives.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        _header(APPLICATION_DATA, MAX_PLAINTEXT + 2049),
        output=s.us.alert(FATAL, RECORD_OVERFLOW),
        error=local_error(RECORD_OVERFLOW),
    )
    out.append(s)

    s = Scenario(
        "tls12_wrong_record_version",
        "After a TLS 1.2 handshake every record says 0x0303; 0x0301 is protocol_version.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    record = s.peer.seal(APPLICATION_DATA, b"old version")
    s.receive(
        record[:1] + b"\x03\x01" + record[3:],
        output=s.us.alert(FATAL, PROTOCOL_VERSION),
        error=local_error(PROTOCOL_VERSION),
    )
    out.append(s)
    return out


def _content_types() -> list[Scenario]:
    out = []
    for name, content_type, content in (
        ("change_cipher_spec", CHANGE_CIPHER_SPEC, b"\x01"),
        ("unknown_type_24", 24, b"heartbeat"),
    ):
        s = Scenario(
            f"tls12_{name}_after_handshake",
            f"A protected record of type {content_type} after the handshake: unexpected_message.",
            ECDHE_ECDSA_AES_128_GCM,
        )
        s.receive(
            s.peer.seal(content_type, content),
            output=s.us.alert(FATAL, UNEXPECTED_MESSAGE),
            error=local_error(UNEXPECTED_MESSAGE),
        )
        out.append(s)

    for name, content_type in (("handshake", HANDSHAKE), ("alert", ALERT)):
        s = Scenario(
            f"tls12_empty_{name}_record",
            f"RFC 5246 section 6.2.1: no zero-length {name} fragments: unexpected_message.",
            ECDHE_RSA_AES_128_GCM,
        )
        s.receive(
            s.peer.seal(content_type, b""),
            output=s.us.alert(FATAL, UNEXPECTED_MESSAGE),
            error=local_error(UNEXPECTED_MESSAGE),
        )
        out.append(s)

    s = Scenario(
        "tls12_three_byte_alert", "An alert is two bytes: decode_error.", ECDHE_ECDSA_CHACHA20
    )
    s.receive(
        s.peer.seal(ALERT, bytes((WARNING, CLOSE_NOTIFY, 0))),
        output=s.us.alert(FATAL, DECODE_ERROR),
        error=local_error(DECODE_ERROR),
    )
    out.append(s)

    s = Scenario(
        "tls12_handshake_interleaved",
        "Part of a handshake message, then application data: unexpected_message.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, bytes((1, 0, 0, 40)) + bytes(10))
        + s.peer.seal(APPLICATION_DATA, b"in between"),
        output=s.us.alert(FATAL, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)
    return out


def _renegotiation() -> list[Scenario]:
    s = Scenario(
        "tls12_hello_request_refused",
        "A HelloRequest gets a warning no_renegotiation and the connection goes on; two in "
        "one record get one each.",
        ECDHE_RSA_AES_128_GCM,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, HELLO_REQUEST) + s.peer.seal(APPLICATION_DATA, b"after"),
        events=[data_event(b"after")],
        output=s.us.alert(WARNING, NO_RENEGOTIATION),
    )
    s.receive(
        s.peer.seal(HANDSHAKE, HELLO_REQUEST + HELLO_REQUEST),
        output=s.us.alert(WARNING, NO_RENEGOTIATION) + s.us.alert(WARNING, NO_RENEGOTIATION),
    )
    s.send(b"still open", s.us.application_data(b"still open"))
    out = [s]

    s = Scenario(
        "tls12_client_hello_refused",
        "A ClientHello after the handshake (a renegotiation attempt), split across two "
        "records, gets one warning no_renegotiation once it is whole, and is dropped.",
        ECDHE_ECDSA_AES_256_GCM,
    )
    body = b"\x03\x03" + pattern("renegotiation random", 32) + b"\x00\x00\x02\xc0\x2b\x01\x00"
    hello = bytes((1,)) + len(body).to_bytes(3, "big") + body
    s.receive(s.peer.seal(HANDSHAKE, hello[:20]), note="the first part waits")
    s.receive(
        s.peer.seal(HANDSHAKE, hello[20:]) + s.peer.seal(APPLICATION_DATA, b"after"),
        events=[data_event(b"after")],
        output=s.us.alert(WARNING, NO_RENEGOTIATION),
    )
    out.append(s)

    s = Scenario(
        "tls12_hello_request_with_body",
        "A HelloRequest is empty: one with a body is decode_error.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, bytes((0, 0, 0, 1, 0))),
        output=s.us.alert(FATAL, DECODE_ERROR),
        error=local_error(DECODE_ERROR),
    )
    out.append(s)

    s = Scenario(
        "tls12_other_post_handshake_message",
        "A Finished (or any message but HelloRequest and ClientHello) after the handshake: "
        "unexpected_message.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, bytes((20, 0, 0, 12)) + bytes(12)),
        output=s.us.alert(FATAL, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)
    return out


def _alerts() -> list[Scenario]:
    s = Scenario(
        "tls12_warning_alerts_ignored",
        f"Warning alerts other than close_notify are ignored, {MAX_WARNING_ALERTS} in a row at "
        "most; application data resets the count; the next one past the bound is "
        "unexpected_message.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    warnings = b"".join(s.peer.alert(WARNING, USER_CANCELED) for _ in range(MAX_WARNING_ALERTS))
    s.receive(warnings + s.peer.seal(APPLICATION_DATA, b"reset"), events=[data_event(b"reset")])
    s.receive(
        b"".join(s.peer.alert(WARNING, NO_RENEGOTIATION) for _ in range(MAX_WARNING_ALERTS)),
        note=f"{MAX_WARNING_ALERTS} more: still fine",
    )
    s.receive(
        s.peer.alert(WARNING, USER_CANCELED),
        output=s.us.alert(FATAL, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out = [s]

    s = Scenario(
        "tls12_close_notify_received",
        "close_notify ends the peer's stream; what follows it is ignored; we may still send.",
        ECDHE_RSA_CHACHA20,
    )
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"last words")
        + s.peer.alert(WARNING, CLOSE_NOTIFY)
        + s.peer.seal(APPLICATION_DATA, b"ignored"),
        events=[data_event(b"last words"), CLOSE_EVENT],
    )
    s.send(b"reply", s.us.application_data(b"reply"))
    s.close(s.us.alert(WARNING, CLOSE_NOTIFY))
    s.send_refused(b"too late", "nothing after our close_notify")
    out.append(s)

    s = Scenario(
        "tls12_peer_fatal_alert",
        "A fatal alert from the peer ends the connection; we send nothing.",
        ECDHE_ECDSA_AES_128_GCM,
    )
    s.receive(
        s.peer.alert(FATAL, HANDSHAKE_FAILURE),
        error={"alert": HANDSHAKE_FAILURE, "sent_by_peer": True},
    )
    out.append(s)
    return out


def scenarios() -> list[Scenario]:
    return _sending() + _receiving() + _content_types() + _renegotiation() + _alerts()


def build() -> dict[str, Any]:
    return {
        "tls12_suites": [suite_vectors(suite) for suite in SUITE_NAMES],
        "tls12_scenarios": [s.to_json() for s in scenarios()],
    }
