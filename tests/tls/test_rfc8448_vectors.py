"""The RFC 8448 trace data is self-consistent: headers, keys, certificate and signatures parse."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from vectors import rfc8448, transcript
from vectors.rfc8448 import TRACES, Trace

HANDSHAKE_TYPES = {
    "client_hello": 1,
    "client_hello_2": 1,
    "server_hello": 2,
    "hello_retry_request": 2,
    "encrypted_extensions": 8,
    "certificate": 11,
    "certificate_verify": 15,
    "server_finished": 20,
    "client_finished": 20,
}

PLAINTEXT_RECORDS = {
    "client_hello_record": "client_hello",
    "server_hello_record": "server_hello",
    "hello_retry_request_record": "hello_retry_request",
    "client_hello_2_record": "client_hello_2",
}

# RFC 8446 4.1.3: the Random of a HelloRetryRequest is SHA-256("HelloRetryRequest").
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


def _ids(trace: Trace) -> str:
    return f"section{trace.section}"


def _present(names: Iterable[str]) -> list[object]:
    return [
        pytest.param(trace, name, id=f"section{trace.section}-{name}")
        for trace in TRACES
        for name in sorted(names)
        if getattr(trace, name) is not None
    ]


@pytest.mark.parametrize(("trace", "name"), _present(HANDSHAKE_TYPES))
def test_handshake_header_matches_message_length(trace: Trace, name: str) -> None:
    message = getattr(trace, name)
    assert message[0] == HANDSHAKE_TYPES[name]
    assert int.from_bytes(message[1:4], "big") == len(message) - 4


@pytest.mark.parametrize(("trace", "name"), _present(PLAINTEXT_RECORDS))
def test_plaintext_record_carries_its_message(trace: Trace, name: str) -> None:
    record = getattr(trace, name)
    assert record[0] == 22
    assert int.from_bytes(record[3:5], "big") == len(record) - 5
    assert record[5:] == getattr(trace, PLAINTEXT_RECORDS[name])


@pytest.mark.parametrize("trace", TRACES, ids=_ids)
def test_protected_record_headers_match_lengths(trace: Trace) -> None:
    records = [
        trace.server_flight_record,
        trace.client_finished_record,
        trace.client_close_notify_record,
        trace.server_close_notify_record,
    ]
    for record in records:
        assert record[:3] == b"\x17\x03\x03"
        assert int.from_bytes(record[3:5], "big") == len(record) - 5


@pytest.mark.parametrize("trace", TRACES, ids=_ids)
def test_hellos_carry_randoms_and_session_id(trace: Trace) -> None:
    assert trace.client_hello[6:38] == trace.client_random
    assert trace.server_hello[6:38] == trace.server_random
    session_id_length = len(trace.legacy_session_id)
    assert trace.client_hello[38] == session_id_length
    assert trace.client_hello[39 : 39 + session_id_length] == trace.legacy_session_id
    # The server echoes legacy_session_id (RFC 8446 4.1.3).
    assert trace.server_hello[38] == session_id_length
    assert trace.server_hello[39 : 39 + session_id_length] == trace.legacy_session_id
    suite_offset = 39 + session_id_length
    assert int.from_bytes(trace.server_hello[suite_offset : suite_offset + 2], "big") == (
        trace.cipher_suite
    )


def test_hello_retry_request_has_the_special_random() -> None:
    hrr = rfc8448.HELLO_RETRY_REQUEST.hello_retry_request
    assert hrr is not None
    assert hrr[6:38] == HELLO_RETRY_REQUEST_RANDOM


def _public(group: int, private: bytes) -> bytes:
    if group == rfc8448.X25519:
        return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    key = ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1())
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.mark.parametrize("trace", TRACES, ids=_ids)
def test_key_shares_are_the_private_keys_public_halves(trace: Trace) -> None:
    for group, private in trace.client_private_keys.items():
        assert _public(group, private) == trace.client_public_keys[group]
    assert _public(trace.group, trace.server_private_key) == trace.server_public_key
    assert trace.server_public_key in trace.server_hello
    last_client_hello = trace.client_hello_2 or trace.client_hello
    assert trace.client_public_keys[trace.group] in last_client_hello


def test_rsa_key_belongs_to_the_certificate() -> None:
    key = rfc8448.SERVER_RSA_KEY.private_key()
    certificate_key = rfc8448.SIMPLE_1RTT.server_certificate().public_key()
    assert isinstance(certificate_key, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == certificate_key.public_numbers()


@pytest.mark.parametrize("trace", TRACES, ids=_ids)
def test_certificate_verify_signature_verifies(trace: Trace) -> None:
    public_key = trace.server_certificate().public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    content = transcript.server_certificate_verify_content(transcript.through_certificate(trace))
    assert trace.certificate_verify[4:6] == trace.signature_scheme.to_bytes(2, "big")
    algorithm = hashes.SHA256()
    public_key.verify(
        trace.certificate_verify_signature,
        content,
        padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size),
        algorithm,
    )


@pytest.mark.parametrize("trace", TRACES, ids=_ids)
def test_every_trace_uses_the_same_certificate(trace: Trace) -> None:
    assert trace.certificate == rfc8448.SIMPLE_1RTT.certificate
