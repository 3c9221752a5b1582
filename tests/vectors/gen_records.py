"""Writes tests/vectors/records.json: the record-layer vectors every client checks.

TLS 1.3 here (`suites`, `scenarios`); TLS 1.2 in gen_records12.py (`tls12_suites`,
`tls12_scenarios`, whose docstring says what they pin down).

Run from the repository root:

    PYTHONPATH=service python tests/vectors/gen_records.py          # rewrite the JSON
    PYTHONPATH=service python tests/vectors/gen_records.py --check  # fail if it is stale

The reference is the engine's key schedule and record protection
(service/handshaker/tls/key_schedule.py, record.py); every key, IV and record
is computed a second time with `cryptography` directly and the two must agree.
Nothing here comes from a client library: the expected outputs of the
scenarios are written out step by step from RFC 8446.

The behaviour the scenarios pin down (RFC 8446 sections 4.6.3, 5, 6.1):

- Records to the peer carry at most min(2^14, peer_record_size_limit) content
  bytes (peer_record_size_limit is SessionKeys' field: the peer's RFC 8449
  record_size_limit less the content-type byte).
- A received TLSInnerPlaintext (content, type, padding) longer than 2^14 + 1,
  or a TLSCiphertext longer than 2^14 + 256, is record_overflow; a record
  that does not authenticate is bad_record_mac; one without a non-zero byte
  (padding only) is unexpected_message. Our fatal alert goes out first.
- KeyUpdate must end its record ("Handshake messages MUST NOT span key
  changes", section 5.1): two KeyUpdates in one record are unexpected_message.
- KeyUpdate(update_requested) obliges us to send KeyUpdate(update_not_requested)
  "prior to sending its next Application Data record". The answer is owed,
  not sent, when the request arrives; it goes out immediately before the next
  record we send of any kind (application data, our own KeyUpdate, an alert),
  as rustls does. Requests that arrive while an answer is owed share it: a
  burst gets one answer ("an implementation which receives multiple KeyUpdates
  while it is silent [responds] with a single update"). A request that
  arrives after our last KeyUpdate, even one we sent on our own, is owed an
  answer of its own. Our write keys move one generation per KeyUpdate we send.
- close_notify ends the peer's stream: whatever follows it is ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gen_records12  # the TLS 1.2 half (this script's folder is on sys.path)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from handshaker.tls.key_schedule import CipherSuiteParams, TrafficSecret
from handshaker.tls.record import RecordProtection
from scenario_steps import CLOSE_EVENT, Steps, data_event, local_error

OUT = Path(__file__).with_name("records.json")

AES_128_GCM = 0x1301
AES_256_GCM = 0x1302
CHACHA20 = 0x1303
SUITE_NAMES = {
    AES_128_GCM: "TLS_AES_128_GCM_SHA256",
    AES_256_GCM: "TLS_AES_256_GCM_SHA384",
    CHACHA20: "TLS_CHACHA20_POLY1305_SHA256",
}
_CRYPTOGRAPHY: dict[int, tuple[hashes.HashAlgorithm, int, Any]] = {
    AES_128_GCM: (hashes.SHA256(), 16, AESGCM),
    AES_256_GCM: (hashes.SHA384(), 32, AESGCM),
    CHACHA20: (hashes.SHA256(), 32, ChaCha20Poly1305),
}

ALERT, HANDSHAKE, APPLICATION_DATA = 21, 22, 23
CLOSE_NOTIFY, UNEXPECTED_MESSAGE, BAD_RECORD_MAC, RECORD_OVERFLOW = 0, 10, 20, 22
DECODE_ERROR, ILLEGAL_PARAMETER = 50, 47
MAX_PLAINTEXT = 2**14


def key_update(requested: bool) -> bytes:
    """struct { KeyUpdateRequest request_update; } KeyUpdate; behind its handshake header."""
    return bytes((24, 0, 0, 1, int(requested)))


def pattern(label: str, length: int) -> bytes:
    """Deterministic filler bytes."""
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:length]


def base_secret(suite: int, label: str) -> bytes:
    params = CipherSuiteParams.for_suite(suite)
    return hashlib.new(params.hash_name, f"handshaker records {label}".encode()).digest()


# Cross-checks with `cryptography` alone.


def _expand_label(suite: int, secret: bytes, label: bytes, length: int) -> bytes:
    algorithm = _CRYPTOGRAPHY[suite][0]
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)


def _checked_keys(suite: int, secret: bytes) -> TrafficSecret:
    params = CipherSuiteParams.for_suite(suite)
    keys = TrafficSecret.derive(params, secret)
    _, key_len, _ = _CRYPTOGRAPHY[suite]
    assert keys.key == _expand_label(suite, secret, b"key", key_len), "key disagrees"
    assert keys.iv == _expand_label(suite, secret, b"iv", 12), "iv disagrees"
    return keys


def _checked_next(suite: int, keys: TrafficSecret) -> TrafficSecret:
    params = CipherSuiteParams.for_suite(suite)
    following = keys.next_generation(params)
    size = params.hash_len
    assert following.secret == _expand_label(suite, keys.secret, b"traffic upd", size)
    return _checked_keys(suite, following.secret)


def _checked_seal(
    suite: int, keys: TrafficSecret, seq: int, content_type: int, content: bytes, *, padding: int
) -> bytes:
    params = CipherSuiteParams.for_suite(suite)
    record = RecordProtection(params, keys.key, keys.iv, seq).seal(content_type, content, padding)
    inner = content + bytes((content_type,)) + bytes(padding)
    header = bytes((23, 3, 3)) + (len(inner) + 16).to_bytes(2, "big")
    nonce = (int.from_bytes(keys.iv, "big") ^ seq).to_bytes(12, "big")
    aead = _CRYPTOGRAPHY[suite][2](keys.key)
    assert record == header + aead.encrypt(nonce, inner, header), "record disagrees"
    return record


# One direction of a scenario: the keys' generations and sequence numbers.


@dataclass
class Direction:
    suite: int
    keys: TrafficSecret
    seq: int
    generation: int = 0
    start: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, suite: int, label: str, seq: int) -> Direction:
        keys = _checked_keys(suite, base_secret(suite, label))
        start = {
            "secret": keys.secret.hex(),
            "key": keys.key.hex(),
            "iv": keys.iv.hex(),
            "sequence_number": seq,
        }
        return cls(suite, keys, seq, 0, start)

    def seal(self, content_type: int, content: bytes, padding: int = 0) -> bytes:
        record = _checked_seal(
            self.suite, self.keys, self.seq, content_type, content, padding=padding
        )
        self.seq += 1
        return record

    def seal_inner(self, inner: bytes) -> bytes:
        """A record whose TLSInnerPlaintext is `inner` as given (padding only, say)."""
        params = CipherSuiteParams.for_suite(self.suite)
        header = bytes((23, 3, 3)) + (len(inner) + 16).to_bytes(2, "big")
        nonce = (int.from_bytes(self.keys.iv, "big") ^ self.seq).to_bytes(12, "big")
        self.seq += 1
        return header + params.aead(self.keys.key).encrypt(nonce, inner, header)

    def update(self) -> None:
        self.keys = _checked_next(self.suite, self.keys)
        self.seq = 0
        self.generation += 1

    def key_update(self, requested: bool) -> bytes:
        """A KeyUpdate record, then the move to the next generation."""
        record = self.seal(HANDSHAKE, key_update(requested))
        self.update()
        return record

    def application_data(self, data: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
        return b"".join(
            self.seal(APPLICATION_DATA, data[i : i + limit]) for i in range(0, len(data), limit)
        )

    def alert(self, level: int, description: int) -> bytes:
        return self.seal(ALERT, bytes((level, description)))


class Scenario(Steps):
    """Builds one scenario: `peer` seals what we receive, `us` what we must send."""

    def __init__(
        self,
        name: str,
        description: str,
        suite: int,
        *,
        read_seq: int = 3,
        write_seq: int = 5,
        peer_record_size_limit: int = MAX_PLAINTEXT,
    ) -> None:
        super().__init__()
        self.name = name
        self.description = description
        self.suite = suite
        self.peer = Direction.new(suite, f"{name} peer", read_seq)
        self.us = Direction.new(suite, f"{name} us", write_seq)
        self.limit = peer_record_size_limit

    def update_keys(self, request_peer_update: bool, output: bytes, note: str = "") -> None:
        self._step(
            {"action": "update_keys", "request_peer_update": request_peer_update},
            {"output": output.hex()},
            note,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "cipher_suite": self.suite,
            "cipher_suite_name": SUITE_NAMES[self.suite],
            "read": self.peer.start,
            "write": self.us.start,
            "peer_record_size_limit": self.limit,
            "steps": self.steps,
        }



def ku_event(requested: bool) -> dict[str, Any]:
    return {"type": "key_update", "update_requested": requested}




# The vectors


def suite_vectors(suite: int) -> dict[str, Any]:
    """Keys, the key update chain and single records at given sequence numbers."""
    keys = _checked_keys(suite, base_secret(suite, "suite vector"))
    chain = []
    current = keys
    for generation in range(1, 4):
        current = _checked_next(suite, current)
        chain.append(
            {
                "generation": generation,
                "secret": current.secret.hex(),
                "key": current.key.hex(),
                "iv": current.iv.hex(),
            }
        )
    cases = [
        (0, APPLICATION_DATA, b"", 0),
        (0, APPLICATION_DATA, b"hello, world", 0),
        (1, APPLICATION_DATA, pattern("record 1", 100), 0),
        (7, APPLICATION_DATA, b"padded", 32),
        (2**32 + 5, APPLICATION_DATA, pattern("high sequence", 40), 0),
        (2**64 - 2, APPLICATION_DATA, b"last sequence number before the wrap", 0),
        (3, HANDSHAKE, key_update(True), 0),
        (4, HANDSHAKE, key_update(False), 0),
        (9, ALERT, bytes((1, CLOSE_NOTIFY)), 0),
        (10, ALERT, bytes((2, BAD_RECORD_MAC)), 5),
        (11, APPLICATION_DATA, pattern("full record", MAX_PLAINTEXT), 0),
        (12, APPLICATION_DATA, pattern("full inner plaintext", MAX_PLAINTEXT - 8), 8),
    ]
    records = []
    for seq, content_type, content, padding in cases:
        records.append(
            {
                "sequence_number": seq,
                "content_type": content_type,
                "content": content.hex(),
                "padding": padding,
                "record": _checked_seal(
                    suite, keys, seq, content_type, content, padding=padding
                ).hex(),
            }
        )
    return {
        "cipher_suite": suite,
        "name": SUITE_NAMES[suite],
        "traffic_secret": keys.secret.hex(),
        "key": keys.key.hex(),
        "iv": keys.iv.hex(),
        "key_updates": chain,
        "records": records,
    }


def scenarios() -> list[Scenario]:
    out: list[Scenario] = []

    s = Scenario(
        "fragment_at_2_14", "40000 bytes go out as records of 16384, 16384, 7232.", AES_128_GCM
    )
    data = pattern("fragment 2^14", 40_000)
    s.send(data, s.us.application_data(data))
    s.send(b"x" * MAX_PLAINTEXT, s.us.application_data(b"x" * MAX_PLAINTEXT), "exactly 2^14")
    out.append(s)

    s = Scenario(
        "fragment_at_peer_record_size_limit",
        "The peer's record_size_limit of 1001 leaves 1000 content bytes per record.",
        CHACHA20,
        peer_record_size_limit=1000,
    )
    data = pattern("fragment limit", 2500)
    s.send(data, s.us.application_data(data, 1000))
    s.send(data[:1000], s.us.application_data(data[:1000], 1000), "exactly the limit")
    s.send(data[:1001], s.us.application_data(data[:1001], 1000), "one byte over")
    out.append(s)

    s = Scenario(
        "receive_records",
        "Application data, padding, a zero-length record, a record split across reads, "
        "a NewSessionTicket (dropped), a full 2^14-byte record and a full inner plaintext.",
        AES_256_GCM,
    )
    full = pattern("receive full", MAX_PLAINTEXT)
    ticket_body = bytes(4) + bytes(4) + b"\x01\x00" + b"\x00\x03abc" + b"\x00\x00"
    ticket = bytes((4,)) + len(ticket_body).to_bytes(3, "big") + ticket_body
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"first")
        + s.peer.seal(APPLICATION_DATA, b"padded", 100)
        + s.peer.seal(APPLICATION_DATA, b"")
        + s.peer.seal(HANDSHAKE, ticket),
        events=[data_event(b"first"), data_event(b"padded")],
    )
    split = s.peer.seal(APPLICATION_DATA, b"split across two reads")
    s.receive(split[:9], note="a partial record waits for the rest")
    s.receive(split[9:], events=[data_event(b"split across two reads")])
    s.receive(s.peer.seal(APPLICATION_DATA, full), events=[data_event(full)])
    s.receive(
        s.peer.seal(APPLICATION_DATA, full[:-10], 10),
        events=[data_event(full[:-10])],
        note="TLSInnerPlaintext of exactly 2^14 + 1 bytes",
    )
    s.send(b"still fine", s.us.application_data(b"still fine"))
    out.append(s)

    s = Scenario(
        "padding_only_record",
        "A record with no non-zero byte has no content type: unexpected_message.",
        AES_128_GCM,
    )
    s.receive(s.peer.seal(APPLICATION_DATA, b"before"), events=[data_event(b"before")])
    s.receive(
        s.peer.seal_inner(bytes(20)),
        output=s.us.alert(2, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)

    s = Scenario(
        "inner_plaintext_too_long",
        "Content 2^14 bytes with one byte of padding: TLSInnerPlaintext of 2^14 + 2 bytes "
        "(section 5.4: it MUST NOT exceed 2^14 + 1) is record_overflow.",
        CHACHA20,
    )
    s.receive(
        s.peer.seal(APPLICATION_DATA, pattern("too long", MAX_PLAINTEXT), 1),
        output=s.us.alert(2, RECORD_OVERFLOW),
        error=local_error(RECORD_OVERFLOW),
    )
    out.append(s)

    s = Scenario(
        "content_too_long",
        "2^14 + 1 content bytes: record_overflow.",
        AES_256_GCM,
    )
    s.receive(
        s.peer.seal(APPLICATION_DATA, pattern("too long", MAX_PLAINTEXT + 1)),
        output=s.us.alert(2, RECORD_OVERFLOW),
        error=local_error(RECORD_OVERFLOW),
    )
    out.append(s)

    s = Scenario(
        "ciphertext_too_long",
        "A TLSCiphertext length of 2^14 + 257: record_overflow, before any decryption.",
        AES_128_GCM,
    )
    length = MAX_PLAINTEXT + 257
    s.receive(
        bytes((23, 3, 3)) + length.to_bytes(2, "big") + pattern("junk", length),
        output=s.us.alert(2, RECORD_OVERFLOW),
        error=local_error(RECORD_OVERFLOW),
    )
    out.append(s)

    for suite in (AES_128_GCM, AES_256_GCM, CHACHA20):
        s = Scenario(
            f"bad_tag_{SUITE_NAMES[suite]}",
            "A record whose last tag byte is flipped: bad_record_mac.",
            suite,
        )
        record = bytearray(s.peer.seal(APPLICATION_DATA, b"genuine"))
        record[-1] ^= 1
        s.receive(
            bytes(record), output=s.us.alert(2, BAD_RECORD_MAC), error=local_error(BAD_RECORD_MAC)
        )
        out.append(s)

    s = Scenario(
        "wrong_sequence_number",
        "A record sealed for the sequence number after ours does not authenticate.",
        CHACHA20,
    )
    s.peer.seq += 1
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"skipped one"),
        output=s.us.alert(2, BAD_RECORD_MAC),
        error=local_error(BAD_RECORD_MAC),
    )
    out.append(s)

    s = Scenario(
        "unprotected_record",
        "A plaintext change_cipher_spec after the handshake: unexpected_message.",
        AES_128_GCM,
    )
    s.receive(
        bytes((20, 3, 3, 0, 1, 1)),
        output=s.us.alert(2, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)

    s = Scenario(
        "handshake_interleaved",
        "Application data inside a NewSessionTicket split across records: unexpected_message.",
        AES_256_GCM,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, bytes((4, 0, 0, 10, 1)))
        + s.peer.seal(APPLICATION_DATA, b"interleaved"),
        output=s.us.alert(2, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)

    s = Scenario(
        "handshake_interleaved_with_alert",
        "close_notify inside a NewSessionTicket split across records: unexpected_message "
        "(section 5.1: handshake messages MUST NOT be interleaved with other record types).",
        CHACHA20,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, bytes((4, 0, 0, 10, 1))) + s.peer.alert(1, CLOSE_NOTIFY),
        output=s.us.alert(2, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)

    for label, record_of, alert in [
        ("empty_handshake_record", lambda d: d.seal(HANDSHAKE, b""), UNEXPECTED_MESSAGE),
        ("three_byte_alert", lambda d: d.seal(ALERT, bytes((2, 80, 0))), DECODE_ERROR),
        (
            "protected_change_cipher_spec",
            lambda d: d.seal(20, b"\x01"),
            UNEXPECTED_MESSAGE,
        ),
        (
            "post_handshake_certificate_request",
            lambda d: d.seal(HANDSHAKE, bytes((13, 0, 0, 4, 0, 0, 0, 0))),
            UNEXPECTED_MESSAGE,
        ),
    ]:
        s = Scenario(label, f"A protected record that is not allowed here ({label}).", AES_128_GCM)
        s.receive(record_of(s.peer), output=s.us.alert(2, alert), error=local_error(alert))
        out.append(s)

    s = Scenario(
        "warning_alert_is_fatal",
        "Any alert but close_notify and user_canceled is an error, whatever its level.",
        AES_128_GCM,
    )
    s.receive(s.peer.alert(1, 46), error={"alert": 46, "sent_by_peer": True})
    out.append(s)

    s = Scenario(
        "close_notify_received",
        "Data, user_canceled (ignored), close_notify; what follows close_notify is ignored.",
        AES_128_GCM,
    )
    s.receive(
        s.peer.seal(APPLICATION_DATA, b"last words")
        + s.peer.alert(1, 90)
        + s.peer.alert(1, CLOSE_NOTIFY)
        + s.peer.seal(APPLICATION_DATA, b"after the end")
        + bytes((23, 3, 3, 0, 32))
        + bytes(32),
        events=[data_event(b"last words"), CLOSE_EVENT],
    )
    s.send(b"we may still send", s.us.application_data(b"we may still send"))
    s.close(s.us.alert(1, CLOSE_NOTIFY))
    out.append(s)

    s = Scenario(
        "close_notify_sent",
        "close sends close_notify once; nothing may be sent after it.",
        CHACHA20,
    )
    s.send(b"bye", s.us.application_data(b"bye"))
    s.close(s.us.alert(1, CLOSE_NOTIFY))
    s.send_refused(b"too late")
    out.append(s)

    s = Scenario(
        "peer_fatal_alert",
        "A fatal alert from the peer ends the connection; nothing is sent back.",
        AES_256_GCM,
    )
    s.receive(
        s.peer.alert(2, 80),
        error={"alert": 80, "sent_by_peer": True},
    )
    out.append(s)

    for suite in (AES_128_GCM, AES_256_GCM, CHACHA20):
        name = SUITE_NAMES[suite]
        s = Scenario(
            f"key_update_not_requested_{name}",
            "KeyUpdate(update_not_requested): our read keys move, our write keys do not, "
            "and nothing is sent.",
            suite,
        )
        s.receive(
            s.peer.key_update(False) + s.peer.seal(APPLICATION_DATA, b"next generation"),
            events=[ku_event(False), data_event(b"next generation")],
        )
        s.send(b"reply", s.us.application_data(b"reply"))
        out.append(s)

        s = Scenario(
            f"key_update_requested_{name}",
            "KeyUpdate(update_requested): our KeyUpdate(update_not_requested) goes out just "
            "before our next record, then our records use the next write keys.",
            suite,
        )
        s.receive(
            s.peer.key_update(True) + s.peer.seal(APPLICATION_DATA, b"next generation"),
            events=[ku_event(True), data_event(b"next generation")],
            note="the answer is owed, not yet sent",
        )
        s.send(b"reply", s.us.key_update(False) + s.us.application_data(b"reply"))
        s.send(b"again", s.us.application_data(b"again"), "answered once only")
        out.append(s)

        s = Scenario(
            f"key_update_burst_consecutive_records_{name}",
            "Three KeyUpdate(update_requested) in consecutive records while we are silent: "
            "one KeyUpdate(update_not_requested) answers them all; our write keys move once.",
            suite,
        )
        s.receive(
            s.peer.key_update(True)
            + s.peer.key_update(True)
            + s.peer.key_update(True)
            + s.peer.seal(APPLICATION_DATA, b"three generations on"),
            events=[ku_event(True)] * 3 + [data_event(b"three generations on")],
        )
        s.send(b"reply", s.us.key_update(False) + s.us.application_data(b"reply"))
        s.send(b"again", s.us.application_data(b"again"))
        out.append(s)

    s = Scenario(
        "key_update_burst_across_reads",
        "KeyUpdate(update_requested) records arriving in separate reads, with nothing sent "
        "in between, still share one answer.",
        AES_128_GCM,
    )
    s.receive(s.peer.key_update(True), events=[ku_event(True)])
    s.receive(s.peer.key_update(True), events=[ku_event(True)])
    s.receive(
        s.peer.key_update(True) + s.peer.seal(APPLICATION_DATA, b"ping"),
        events=[ku_event(True), data_event(b"ping")],
    )
    s.send(b"pong", s.us.key_update(False) + s.us.application_data(b"pong"))
    out.append(s)

    s = Scenario(
        "key_update_burst_in_one_record",
        "Two KeyUpdates in one record: a KeyUpdate must end its record (section 5.1, "
        "handshake messages MUST NOT span key changes): unexpected_message, nothing answered.",
        CHACHA20,
    )
    s.receive(
        s.peer.seal(HANDSHAKE, key_update(True) + key_update(True)),
        output=s.us.alert(2, UNEXPECTED_MESSAGE),
        error=local_error(UNEXPECTED_MESSAGE),
    )
    out.append(s)

    s = Scenario(
        "key_update_requested_again_after_our_answer",
        "A request that arrives after our answer went out is owed an answer of its own.",
        AES_256_GCM,
    )
    s.receive(s.peer.key_update(True), events=[ku_event(True)])
    s.send(b"one", s.us.key_update(False) + s.us.application_data(b"one"))
    s.receive(s.peer.key_update(True), events=[ku_event(True)])
    s.send(b"two", s.us.key_update(False) + s.us.application_data(b"two"))
    out.append(s)

    s = Scenario(
        "key_update_requested_after_our_own_key_update",
        "We sent KeyUpdate(update_requested) and are silent since; the peer's own request, "
        "received after ours went out, is still owed an answer before our next data.",
        AES_128_GCM,
    )
    s.update_keys(True, s.us.key_update(True))
    s.receive(
        s.peer.key_update(True) + s.peer.seal(APPLICATION_DATA, b"crossed"),
        events=[ku_event(True), data_event(b"crossed")],
    )
    s.send(b"reply", s.us.key_update(False) + s.us.application_data(b"reply"))
    out.append(s)

    s = Scenario(
        "key_update_owed_then_our_update_request",
        "With an answer owed, our own KeyUpdate(update_requested) follows the owed "
        "KeyUpdate(update_not_requested): two KeyUpdates, two generations.",
        CHACHA20,
    )
    s.receive(s.peer.key_update(True), events=[ku_event(True)])
    s.update_keys(True, s.us.key_update(False) + s.us.key_update(True))
    s.send(b"data", s.us.application_data(b"data"))
    out.append(s)

    s = Scenario(
        "key_update_owed_then_close",
        "With an answer owed, close sends it before close_notify.",
        AES_256_GCM,
    )
    s.receive(
        s.peer.key_update(True) + s.peer.alert(1, CLOSE_NOTIFY),
        events=[ku_event(True), CLOSE_EVENT],
    )
    s.close(s.us.key_update(False) + s.us.alert(1, CLOSE_NOTIFY))
    out.append(s)

    s = Scenario(
        "key_update_owed_then_fatal_alert",
        "With an answer owed, a record that fails gets our alert behind the owed KeyUpdate.",
        AES_128_GCM,
    )
    record = bytearray(s.peer.key_update(True) + s.peer.seal(APPLICATION_DATA, b"forged"))
    record[-1] ^= 1
    s.receive(
        bytes(record),
        events=[ku_event(True)],
        output=s.us.key_update(False) + s.us.alert(2, BAD_RECORD_MAC),
        error=local_error(BAD_RECORD_MAC),
    )
    out.append(s)

    s = Scenario(
        "key_update_requested_after_we_closed",
        "After our close_notify nothing more is sent, a KeyUpdate answer included; "
        "the peer's data under its next keys is still read.",
        AES_256_GCM,
    )
    s.close(s.us.alert(1, CLOSE_NOTIFY))
    s.receive(
        s.peer.key_update(True) + s.peer.seal(APPLICATION_DATA, b"still talking"),
        events=[ku_event(True), data_event(b"still talking")],
    )
    out.append(s)

    for message, alert, label in [
        (bytes((24, 0, 0, 1, 2)), ILLEGAL_PARAMETER, "request_update_2"),
        (bytes((24, 0, 0, 2, 0, 0)), DECODE_ERROR, "two_byte_body"),
        (bytes((24, 0, 0, 1, 0, 4, 0, 0, 1)), UNEXPECTED_MESSAGE, "not_at_record_end"),
    ]:
        s = Scenario(f"key_update_malformed_{label}", f"A malformed KeyUpdate ({label}).", CHACHA20)
        s.receive(
            s.peer.seal(HANDSHAKE, message), output=s.us.alert(2, alert), error=local_error(alert)
        )
        out.append(s)

    return out


def build() -> dict[str, Any]:
    return {
        "description": (
            "TLS 1.3 record-layer vectors (RFC 8446 sections 4.6.3, 5.1-5.4, 6.1) for every "
            "record layer in this repository. Generated by tests/vectors/gen_records.py; do "
            "not edit by hand. Hex strings are bytes. A scenario's read keys open what the "
            "peer sends; its write keys seal what we send; peer_record_size_limit is the most "
            "content bytes per record we send. Steps: receive (bytes from the peer; expect the "
            "events, the bytes we write in response, and any error), send (application data), "
            "update_keys, close. expect.output is exactly what we write during the step; an "
            "error ends the scenario. tls12_suites and tls12_scenarios are the same for TLS 1.2 "
            "(RFC 5246 section 6.2.3.3, RFC 5288, RFC 7905): keys without a secret, iv the "
            "fixed IV (4-byte GCM salt or 12-byte ChaCha20 IV), records with their content "
            "type in the header; update_keys is refused."
        ),
        "suites": [suite_vectors(suite) for suite in (AES_128_GCM, AES_256_GCM, CHACHA20)],
        "scenarios": [s.to_json() for s in scenarios()],
        **gen_records12.build(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run {__file__}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
