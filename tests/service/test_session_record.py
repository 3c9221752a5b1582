"""A session's record for a shared store: every field of a handshake's result survives the
trip through bytes, and bytes that are not a record are refused with RecordError."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from handshaker.sessions import Role
from handshaker.sessions.record import FORMAT, Record, RecordError
from handshaker.tls import ConnectionState, HandshakeResult, TrafficKeys


def _result(**changes: object) -> HandshakeResult:
    """A result whose every field differs from its default and from the others."""
    fields = {
        "version": 0x0303,
        "cipher_suite": 0xC02B,
        "group": 0x001D,
        "peer_signature_scheme": 0x0403,
        "signature_scheme": 0x0804,
        "alpn_protocol": b"h2",
        "server_name": "b\u00fccher.example",
        "peer_certificates": (b"leaf der", b"", b"intermediate der"),
        "read": TrafficKeys(b"r-secret", b"r-key", b"r-iv", 7),
        "write": TrafficKeys(b"w-secret" * 6, b"w-key", b"w-iv", 2**64 - 1),
        "exporter_master_secret": b"exporter",
        "resumption_master_secret": b"resumption",
        "client_random": b"c" * 32,
        "hello_retry": True,
        "resumed": True,
        "peer_record_size_limit": 512,
        "keylog": ("CLIENT_RANDOM aa bb", "SERVER_TRAFFIC_SECRET_0 cc dd"),
        "master_secret": b"m" * 48,
        "server_random": b"s" * 32,
        "extended_master_secret": True,
    }
    fields.update(changes)
    return HandshakeResult(**fields)  # type: ignore[arg-type]


def _record(result: HandshakeResult | None, snapshot: bytes = b"") -> Record:
    return Record(
        role=Role.SERVER,
        keys_in_response=True,
        state=ConnectionState.COMPLETE if result else ConnectionState.HANDSHAKING,
        started_wall=1_780_000_000.25,
        options=b"\x0a\x02h2",
        snapshot=snapshot,
        result=result,
    )


def test_every_field_of_the_result_survives_the_record() -> None:
    result = _result()
    # The sample covers every field: a field added to the result must be added here and to
    # the record, or this fails.
    defaults = HandshakeResult(
        0, 0, 0, None, None, None, None, (), TrafficKeys(b"", b"", b""),
        TrafficKeys(b"", b"", b""), b"", b"", b"",
    )  # fmt: skip
    for field in dataclasses.fields(HandshakeResult):
        assert getattr(result, field.name) != getattr(defaults, field.name), field.name
    assert Record.decode(_record(result).encode()) == _record(result)


@pytest.mark.parametrize(
    "changes",
    [
        {"peer_signature_scheme": None, "signature_scheme": None},
        {"alpn_protocol": None, "server_name": None},
        {"alpn_protocol": b"", "server_name": ""},
        {"peer_certificates": (), "keylog": ()},
        {"hello_retry": False, "resumed": False, "extended_master_secret": False},
        {"version": 0x0304, "master_secret": b"", "server_random": b""},
    ],
    ids=["no-schemes", "no-alpn-no-name", "empty-alpn-and-name", "no-chain", "no-flags", "tls13"],
)
def test_absent_and_empty_values_stay_what_they_were(changes: dict[str, object]) -> None:
    record = _record(_result(**changes))
    assert Record.decode(record.encode()) == record


def test_a_record_without_a_result_keeps_its_snapshot() -> None:
    record = _record(None, snapshot=b"\x01snapshot bytes")
    assert Record.decode(record.encode()) == record


def test_bytes_that_are_not_a_record_are_refused() -> None:
    encoded = _record(_result()).encode()
    for bad in (
        b"",
        encoded[:10],
        encoded[:-1],
        encoded + b"\x00",
        bytes([FORMAT - 1]) + encoded[1:],
    ):
        with pytest.raises(RecordError):
            Record.decode(bad)


def test_a_result_whose_lengths_lie_is_refused() -> None:
    encoded = bytearray(_record(_result()).encode())
    head = struct.calcsize(">BBBBdIII")
    options = len(b"\x0a\x02h2")
    # The first byte string's length (after the result's fixed fields), made too long.
    at = head + options + struct.calcsize(">HHHiiBIQQHH")
    encoded[at : at + 4] = (2**31).to_bytes(4, "big")
    with pytest.raises(RecordError):
        Record.decode(bytes(encoded))
    # A certificate count past what the bytes hold.
    count = head + options + struct.calcsize(">HHHiiBIQQ")
    encoded = bytearray(_record(_result()).encode())
    encoded[count : count + 2] = (500).to_bytes(2, "big")
    with pytest.raises(RecordError):
        Record.decode(bytes(encoded))
