"""Each decode rule of RFC 8446 gives exactly the alert the RFC names, in both roles.

One test per rule, named after the behaviour; each asserts the HandshakeFailed event
and the alert record queued for the peer. Broader bad-input coverage (key shares,
HelloRetryRequest, ordering) is in test_bad_input.py; its helpers are reused here.

| rule                                                  | alert                 | RFC 8446     |
|-------------------------------------------------------|-----------------------|--------------|
| Finished not Hash.length bytes (empty, short, long)   | decode_error          | 4.4.4, 6     |
| Finished of the right length that does not verify     | decrypt_error         | 4.4.4        |
| alert record with no content                          | unexpected_message    | 5.1          |
| alert record of 1 or 3+ bytes                         | decode_error          | 5.1, 6       |
"""

from __future__ import annotations

import pytest
from engine_kit import Trace, plaintext_record
from handshaker.tls import AlertDescription, ContentType
from handshaker.tls.codepoints import HandshakeType
from handshaker.tls.messages import handshake_message
from test_bad_input import (
    _client_given,
    _server_given,
    assert_client_fails_with,
    assert_fails_with,
    assert_server_fails_with,
)

# --- Finished (section 4.4.4: "opaque verify_data[Hash.length]") ---------------------------


@pytest.mark.parametrize("cut", [0, 1, 31], ids=["empty", "one-byte", "one-short"])
def test_client_finished_not_hash_length_is_a_decode_error(trace: Trace, cut: int) -> None:
    (finished,) = trace.client_messages()
    short = handshake_message(HandshakeType.FINISHED, finished[4 : 4 + cut])
    server = _server_given(trace, trace.client_flight_with([short]))
    assert_server_fails_with(trace, server, AlertDescription.DECODE_ERROR)


def test_client_finished_longer_than_hash_length_is_a_decode_error(trace: Trace) -> None:
    (finished,) = trace.client_messages()
    long = handshake_message(HandshakeType.FINISHED, finished[4:] + b"\x00")
    server = _server_given(trace, trace.client_flight_with([long]))
    assert_server_fails_with(trace, server, AlertDescription.DECODE_ERROR)


def test_empty_server_finished_is_a_decode_error(trace: Trace) -> None:
    messages = trace.server_messages()
    messages[-1] = handshake_message(HandshakeType.FINISHED, b"")
    assert_client_fails_with(trace, _client_given(trace, messages), AlertDescription.DECODE_ERROR)


def test_client_finished_of_the_right_length_that_does_not_verify_is_a_decrypt_error(
    trace: Trace,
) -> None:
    (finished,) = trace.client_messages()
    wrong = handshake_message(HandshakeType.FINISHED, bytes(len(finished) - 4))
    server = _server_given(trace, trace.client_flight_with([wrong]))
    assert_server_fails_with(trace, server, AlertDescription.DECRYPT_ERROR)


# --- alert records (section 5.1: "a record with an Alert type MUST contain exactly one
# message") -------------------------------------------------------------------------------


def test_empty_plaintext_alert_record_is_an_unexpected_message(trace: Trace) -> None:
    server = trace.new_server()
    server.receive_data(plaintext_record(ContentType.ALERT, b""))
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


def test_empty_protected_alert_is_an_unexpected_message(trace: Trace) -> None:
    empty_alert = trace.seal("CLIENT_HANDSHAKE_TRAFFIC_SECRET", [b""], ContentType.ALERT)
    server = _server_given(trace, empty_alert)
    assert_server_fails_with(trace, server, AlertDescription.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize("body", [b"\x02", b"\x02\x28\x00", b"\x02\x28\x02\x28"])
def test_alert_record_of_the_wrong_length_is_a_decode_error(trace: Trace, body: bytes) -> None:
    server = trace.new_server()
    server.receive_data(plaintext_record(ContentType.ALERT, body))
    assert_fails_with(server, AlertDescription.DECODE_ERROR)


@pytest.mark.parametrize("body", [b"\x02", b"\x02\x28\x00"], ids=["one", "three"])
def test_protected_alert_of_the_wrong_length_is_a_decode_error(trace: Trace, body: bytes) -> None:
    client = trace.new_client()
    client.receive_data(
        b"".join(trace.server_plaintext_records())
        + trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [body], ContentType.ALERT)
    )
    assert_client_fails_with(trace, client, AlertDescription.DECODE_ERROR)
