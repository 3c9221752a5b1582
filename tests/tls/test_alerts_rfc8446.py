"""Each decode rule of RFC 8446 gives exactly the alert the RFC names, in both roles.

One test per rule, named after the behaviour; each asserts the HandshakeFailed event
and the alert record queued for the peer (plaintext, or protected under the key the
RFC says). Broader bad-input coverage (key shares, HelloRetryRequest cookies, message
order) is in test_bad_input.py, whose helpers are reused here. "(choice)" marks a rule
the RFC leaves open; the code's comment says whose reading (BoringSSL, rustls) it takes.
Sections are RFC 8446's unless named; CH/SH/HRR/EE/CR/Cert/CV are the hellos,
HelloRetryRequest, EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify.

| rule                                                   | alert                 | RFC           |
|--------------------------------------------------------|-----------------------|---------------|
| record: record version's minor byte is ignored         | (accepted)            | 5.1           |
| record: record version major byte not 3 (choice)       | decode_error          | 5.1, 6        |
| record: alert record with no content                   | unexpected_message    | 5.1           |
| record: alert record of 1 or 3+ bytes                  | decode_error          | 5.1, 6        |
| record: alert of any level (0, 1, 3, 255)              | (peer's error)        | 6             |
| record: alert of an unknown description                | (peer's error)        | 6             |
| record: plaintext alert after the key change (choice)  | (peer's alert)        | 5, 6          |
| record: inner plaintext of padding only                | unexpected_message    | 5.4           |
| record: unknown inner content type                     | unexpected_message    | 5             |
| record: zero-length protected handshake fragment       | unexpected_message    | 5.1           |
| record: inner plaintext longer than 2^14               | record_overflow       | 5.2, 5.4      |
| record: change_cipher_spec between handshake fragments | unexpected_message    | 5.1           |
| handshake: message longer than we reassemble (2^17)    | decode_error          | 6             |
| CH: cipher_suites empty or of odd length               | decode_error          | 4.1.2         |
| CH: legacy_compression_methods empty                   | decode_error          | 4.1.2         |
| CH: legacy_session_id longer than 32 bytes             | decode_error          | 4.1.2         |
| CH: extension only allowed elsewhere (oid_filters)     | illegal_parameter     | 4.2           |
| CH: an empty <2..> / <1..> list or vector              | decode_error          | 4.2.x, 6      |
| CH: early_data or post_handshake_auth with content     | decode_error          | 4.2.10, 4.2.6 |
| CH: record_size_limit below 64                         | illegal_parameter     | RFC 8449 4    |
| CH: pre_shared_key malformed                           | decode_error          | 4.2.11        |
| CH: pre_shared_key without psk_key_exchange_modes      | missing_extension     | 4.2.9, 9.2    |
| SH: legacy_version not 0x0303 (choice)                 | illegal_parameter     | 4.1.3         |
| SH: supported_versions/key_share trailing bytes        | decode_error          | 4.2.1, 4.2.8  |
| SH: empty key_exchange                                 | decode_error          | 4.2.8         |
| SH: duplicate extension                                | illegal_parameter     | 4.2           |
| HRR: empty cookie, key_share with trailing bytes       | decode_error          | 4.2.2, 4.2.8  |
| HRR: extension allowed only elsewhere                  | illegal_parameter     | 4.2           |
| HRR: extension not offered (unknown type)              | unsupported_extension | 4.1.4, 4.2    |
| HRR: no change to the ClientHello                      | illegal_parameter     | 4.1.4         |
| SH after HRR: other cipher suite or group              | illegal_parameter     | 4.1.4, 4.2.8  |
| EE: trailing bytes after the block                     | decode_error          | 4.3.1         |
| EE: duplicate extension                                | illegal_parameter     | 4.2           |
| EE: supported_groups malformed                         | decode_error          | 4.2.7         |
| EE: server_name with content                           | decode_error          | RFC 6066 3    |
| EE: ALPN list not exactly one name                     | decode_error          | RFC 7301 3.1  |
| EE: ALPN name not offered                              | illegal_parameter     | RFC 7301 3.2  |
| EE: record_size_limit below 64                         | illegal_parameter     | RFC 8449 4    |
| EE: record_size_limit malformed                        | decode_error          | RFC 8449 4    |
| CR: non-empty context in the handshake                 | decode_error          | 4.3.2         |
| CR: empty extensions block <2..>                       | decode_error          | 4.3.2         |
| CR: malformed sig_algs_cert / CAs / oid_filters        | decode_error          | 4.2.3-4.2.5   |
| CR: no signature_algorithms                            | missing_extension     | 4.3.2         |
| Cert: non-empty context (either role)                  | decode_error          | 4.4.2         |
| Cert: empty cert_data                                  | decode_error          | 4.4.2         |
| Cert: cert_data that is not X.509 DER                  | bad_certificate       | 6.2           |
| Cert: entry extension not offered                      | unsupported_extension | 4.4.2         |
| Cert: none from a client that must send one            | certificate_required  | 4.4.2.4       |
| CV: empty signature <0..>                              | decrypt_error         | 4.4.3         |
| CV: trailing bytes                                     | decode_error          | 4.4.3, 6      |
| CV: scheme not offered                                 | illegal_parameter     | 4.4.3         |
| Finished: not Hash.length bytes (empty, short, long)   | decode_error          | 4.4.4, 6      |
| Finished: right length, wrong verify_data              | decrypt_error         | 4.4.4         |
| KeyUpdate or NewSessionTicket before Finished (client) | unexpected_message    | 4.6.3, 6      |
| KeyUpdate or EndOfEarlyData before Finished (server)   | unexpected_message    | 4.6.3, 6      |
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from engine_kit import (
    EnginePKI,
    Trace,
    alert_record,
    only_failure,
    plaintext_record,
    protection,
    record_trace,
    split_records,
)
from handshaker.tls import AlertDescription, ClientConnection, ConnectionState, ContentType
from handshaker.tls.codepoints import ExtensionType, HandshakeType, NamedGroup
from handshaker.tls.extensions import encode_server_key_share, encode_uint16, encode_uint16_list
from handshaker.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    CertificateRequest,
    CertificateVerify,
    ServerHello,
    encode_certificate,
    encode_certificate_request,
    encode_certificate_verify,
    encode_client_hello,
    encode_encrypted_extensions,
    encode_server_hello,
    handshake_message,
)
from test_bad_input import (
    CHANGE_CIPHER_SPEC_RECORD,
    _client_given,
    _feed_server_hello,
    _server_given,
    _server_hello,
    _set,
    assert_client_fails_with,
    assert_fails_with,
    assert_server_fails_with,
    first_client_hello,
    hello_record,
    server_fed,
    with_extension,
)

DECODE_ERROR = AlertDescription.DECODE_ERROR
ILLEGAL_PARAMETER = AlertDescription.ILLEGAL_PARAMETER
UNEXPECTED_MESSAGE = AlertDescription.UNEXPECTED_MESSAGE


@pytest.fixture(scope="module")
def trace_alpn(engine_pki: EnginePKI) -> Trace:
    """A handshake in which the client offered ALPN h2 and a record_size_limit."""
    return record_trace(
        engine_pki,
        "trace-alpn",
        client_overrides={"alpn_protocols": (b"h2",), "record_size_limit": 1024},
        server_overrides={"alpn_protocols": (b"h2",)},
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


# --- the record layer (section 5) ----------------------------------------------------------


@pytest.mark.parametrize("minor", [0, 1, 2, 4], ids=["0300", "0301", "0302", "0304"])
def test_legacy_record_version_minor_byte_is_ignored(engine_pki: EnginePKI, minor: int) -> None:
    # Section 5.1: legacy_record_version "MUST be ignored for all purposes".
    record = hello_record(first_client_hello(engine_pki))
    server = server_fed(engine_pki, record[:2] + bytes((minor,)) + record[3:])
    assert server.state is ConnectionState.HANDSHAKING
    assert split_records(server.data_to_send())[0][0] == ContentType.HANDSHAKE


def test_record_whose_version_major_byte_is_not_3_is_a_decode_error(
    engine_pki: EnginePKI,
) -> None:
    # (choice) Not a TLS record at all; rustls says decode_error, BoringSSL protocol_version.
    record = hello_record(first_client_hello(engine_pki))
    assert_fails_with(server_fed(engine_pki, record[:1] + b"\x02" + record[2:]), DECODE_ERROR)


def _after_server_hello(trace: Trace, *records: bytes) -> ClientConnection:
    client = trace.new_client()
    client.receive_data(b"".join(trace.server_plaintext_records()) + b"".join(records))
    return client


def _server_handshake_key(trace: Trace) -> bytes:
    return trace.secret("SERVER_HANDSHAKE_TRAFFIC_SECRET")


def test_plaintext_alert_after_the_key_change_is_taken_as_the_peers_alert(trace: Trace) -> None:
    # (choice) A peer that failed before reading our key change can only send it in clear.
    client = _after_server_hello(trace, alert_record(AlertDescription.HANDSHAKE_FAILURE))
    assert client.state is ConnectionState.FAILED
    failure = only_failure(list(client.events()))
    assert failure.sent_by_peer is True
    assert failure.alert == AlertDescription.HANDSHAKE_FAILURE


@pytest.mark.parametrize("level", [0, 1, 3, 255])
def test_alert_of_any_level_ends_the_handshake_as_the_peers_error(
    engine_pki: EnginePKI, level: int
) -> None:
    # Section 6: the level "can safely be ignored"; 6.2's alerts are errors whatever it says.
    server = server_fed(engine_pki, alert_record(AlertDescription.DECODE_ERROR, level=level))
    assert server.state is ConnectionState.FAILED
    failure = only_failure(list(server.events()))
    assert (failure.alert, failure.sent_by_peer) == (DECODE_ERROR, True)
    assert server.data_to_send() == b""


def test_unknown_alert_description_is_taken_as_an_error_alert(engine_pki: EnginePKI) -> None:
    # Section 6: "Unknown Alert types MUST be treated as error alerts."
    server = server_fed(engine_pki, alert_record(200, level=1))
    failure = only_failure(list(server.events()))
    assert (failure.alert, failure.sent_by_peer) == (200, True)
    assert server.state is ConnectionState.FAILED


def test_inner_plaintext_of_padding_only_is_an_unexpected_message(trace: Trace) -> None:
    padding_only = protection(trace.suite, _server_handshake_key(trace)).seal(0, b"", padding=9)
    assert_client_fails_with(trace, _after_server_hello(trace, padding_only), UNEXPECTED_MESSAGE)


def test_unknown_inner_content_type_is_an_unexpected_message(trace: Trace) -> None:
    record = trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [b"x"], 99)
    assert_client_fails_with(trace, _after_server_hello(trace, record), UNEXPECTED_MESSAGE)


def test_zero_length_protected_handshake_fragment_is_an_unexpected_message(trace: Trace) -> None:
    record = trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [b""])
    assert_client_fails_with(trace, _after_server_hello(trace, record), UNEXPECTED_MESSAGE)


def test_inner_plaintext_longer_than_2_14_is_a_record_overflow(trace: Trace) -> None:
    record = trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [b"\x01" * (2**14 + 1)])
    client = _after_server_hello(trace, record)
    assert_client_fails_with(trace, client, AlertDescription.RECORD_OVERFLOW)


def test_change_cipher_spec_between_handshake_fragments_is_an_unexpected_message(
    trace: Trace,
) -> None:
    message = trace.server_plaintext_records()[0][5:]
    client = trace.new_client()
    client.receive_data(
        plaintext_record(ContentType.HANDSHAKE, message[:20])
        + CHANGE_CIPHER_SPEC_RECORD
        + plaintext_record(ContentType.HANDSHAKE, message[20:])
    )
    assert_fails_with(client, UNEXPECTED_MESSAGE)


def test_handshake_message_longer_than_we_reassemble_is_a_decode_error(
    engine_pki: EnginePKI,
) -> None:
    header = bytes((HandshakeType.CLIENT_HELLO,)) + (2**17 + 1).to_bytes(3, "big")
    server = server_fed(engine_pki, plaintext_record(ContentType.HANDSHAKE, header + bytes(64)))
    assert_fails_with(server, DECODE_ERROR)


# --- ClientHello (section 4.1.2 and the extensions of 4.2) ------------------------------------


def _client_hello_body_with_suites(engine_pki: EnginePKI, suites: bytes) -> bytes:
    hello = first_client_hello(engine_pki)
    body = encode_client_hello(hello)[4:]
    start = 2 + 32 + 1 + len(hello.legacy_session_id)
    end = start + 2 + 2 * len(hello.cipher_suites)
    return body[:start] + suites + body[end:]


@pytest.mark.parametrize("suites", [b"\x00\x00", b"\x00\x03\x13\x01\x13"], ids=["empty", "odd"])
def test_cipher_suites_empty_or_of_odd_length_are_a_decode_error(
    engine_pki: EnginePKI, suites: bytes
) -> None:
    body = _client_hello_body_with_suites(engine_pki, suites)
    record = plaintext_record(ContentType.HANDSHAKE, handshake_message(1, body))
    assert_fails_with(server_fed(engine_pki, record), DECODE_ERROR)


def test_empty_legacy_compression_methods_are_a_decode_error(engine_pki: EnginePKI) -> None:
    hello = replace(first_client_hello(engine_pki), legacy_compression_methods=b"")
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), DECODE_ERROR)


def test_legacy_session_id_longer_than_32_bytes_is_a_decode_error(engine_pki: EnginePKI) -> None:
    hello = replace(first_client_hello(engine_pki), legacy_session_id=bytes(33))
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), DECODE_ERROR)


def test_oid_filters_in_a_client_hello_is_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    # Section 4.2: oid_filters belongs in CertificateRequest only.
    hello = with_extension(first_client_hello(engine_pki), ExtensionType.OID_FILTERS, b"\x00\x00")
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), ILLEGAL_PARAMETER)


@pytest.mark.parametrize(
    ("ext_type", "data"),
    [
        (ExtensionType.SUPPORTED_VERSIONS, b"\x00"),
        (ExtensionType.SUPPORTED_GROUPS, b"\x00\x00"),
        (ExtensionType.SIGNATURE_ALGORITHMS, b"\x00\x00"),
        (ExtensionType.SIGNATURE_ALGORITHMS_CERT, b"\x00\x00"),
        (ExtensionType.SERVER_NAME, b"\x00\x00"),
        (ExtensionType.SERVER_NAME, b"\x00\x03\x00\x00\x00"),
        (ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b"\x00\x00"),
        (ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b"\x00\x01\x00"),
        (ExtensionType.KEY_SHARE, b"\x00\x04\x00\x1d\x00\x00"),
        (ExtensionType.COOKIE, b"\x00\x00"),
        (ExtensionType.PSK_KEY_EXCHANGE_MODES, b"\x00"),
        (ExtensionType.RECORD_SIZE_LIMIT, b"\x40"),
        (ExtensionType.CERTIFICATE_AUTHORITIES, b"\x00\x00"),
        (ExtensionType.CERTIFICATE_AUTHORITIES, b"\x00\x03\x00\x00\x00"),
    ],
    ids=[
        "supported_versions",
        "supported_groups",
        "signature_algorithms",
        "signature_algorithms_cert",
        "server_name-list",
        "server_name-host",
        "alpn-list",
        "alpn-name",
        "key_exchange",
        "cookie",
        "psk_key_exchange_modes",
        "record_size_limit",
        "certificate_authorities-list",
        "certificate_authorities-name",
    ],
)
def test_client_hello_empty_list_or_vector_below_its_minimum_is_a_decode_error(
    engine_pki: EnginePKI, ext_type: int, data: bytes
) -> None:
    hello = with_extension(first_client_hello(engine_pki), ext_type, data)
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), DECODE_ERROR)


@pytest.mark.parametrize("ext_type", [ExtensionType.EARLY_DATA, ExtensionType.POST_HANDSHAKE_AUTH])
def test_client_hello_empty_extension_with_content_is_a_decode_error(
    engine_pki: EnginePKI, ext_type: int
) -> None:
    hello = with_extension(first_client_hello(engine_pki), ext_type, b"\x00")
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), DECODE_ERROR)


def test_client_record_size_limit_below_64_is_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    hello = with_extension(
        first_client_hello(engine_pki), ExtensionType.RECORD_SIZE_LIMIT, encode_uint16(63)
    )
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), ILLEGAL_PARAMETER)


# OfferedPsks with one identity ("A", age 0) and one 32-byte binder.
OFFERED_PSKS = b"\x00\x07\x00\x01A" + bytes(4) + b"\x00\x21\x20" + bytes(32)


def _with_psk(engine_pki: EnginePKI, offered: bytes, *, modes: bool) -> bytes:
    hello = first_client_hello(engine_pki)
    if modes:
        hello = with_extension(hello, ExtensionType.PSK_KEY_EXCHANGE_MODES, b"\x01\x01")
    return hello_record(with_extension(hello, ExtensionType.PRE_SHARED_KEY, offered))


@pytest.mark.parametrize(
    "offered",
    [
        b"\x00\x00" + OFFERED_PSKS[9:],  # no identities
        OFFERED_PSKS[:9] + b"\x00\x20\x1f" + bytes(31),  # a 31-byte binder
        OFFERED_PSKS[:9],  # no binders
        OFFERED_PSKS + b"\x00",  # trailing byte
    ],
    ids=["no-identity", "short-binder", "no-binders", "trailing"],
)
def test_malformed_pre_shared_key_is_a_decode_error(engine_pki: EnginePKI, offered: bytes) -> None:
    assert_fails_with(
        server_fed(engine_pki, _with_psk(engine_pki, offered, modes=True)), DECODE_ERROR
    )


def test_pre_shared_key_without_psk_key_exchange_modes_is_a_missing_extension(
    engine_pki: EnginePKI,
) -> None:
    server = server_fed(engine_pki, _with_psk(engine_pki, OFFERED_PSKS, modes=False))
    assert_fails_with(server, AlertDescription.MISSING_EXTENSION)


def test_well_formed_pre_shared_key_is_ignored_for_a_full_handshake(engine_pki: EnginePKI) -> None:
    server = server_fed(engine_pki, _with_psk(engine_pki, OFFERED_PSKS, modes=True))
    assert server.state is ConnectionState.HANDSHAKING
    assert split_records(server.data_to_send())[0][0] == ContentType.HANDSHAKE


# --- ServerHello and HelloRetryRequest (sections 4.1.3, 4.1.4) -------------------------------


def test_server_hello_legacy_version_not_0303_is_an_illegal_parameter(trace: Trace) -> None:
    # (choice) The version was negotiated by supported_versions; BoringSSL says decode_error.
    hello = replace(_server_hello(trace), legacy_version=0x0301)
    assert_fails_with(_feed_server_hello(trace, hello), ILLEGAL_PARAMETER)


def test_server_hello_supported_versions_with_trailing_bytes_is_a_decode_error(
    trace: Trace,
) -> None:
    hello = _set(_server_hello(trace), ExtensionType.SUPPORTED_VERSIONS, b"\x03\x04\x00")
    assert_fails_with(_feed_server_hello(trace, hello), DECODE_ERROR)


def test_server_hello_key_share_with_trailing_bytes_is_a_decode_error(trace: Trace) -> None:
    hello = _server_hello(trace)
    share = dict(hello.extensions)[ExtensionType.KEY_SHARE]
    hello = _set(hello, ExtensionType.KEY_SHARE, share + b"\x00")
    assert_fails_with(_feed_server_hello(trace, hello), DECODE_ERROR)


def test_server_hello_empty_key_exchange_is_a_decode_error(trace: Trace) -> None:
    hello = _set(
        _server_hello(trace),
        ExtensionType.KEY_SHARE,
        encode_server_key_share(NamedGroup.X25519, b""),
    )
    assert_fails_with(_feed_server_hello(trace, hello), DECODE_ERROR)


def test_server_hello_duplicate_extension_is_an_illegal_parameter(trace: Trace) -> None:
    hello = _server_hello(trace)
    hello = replace(hello, extensions=(*hello.extensions, hello.extensions[-1]))
    assert_fails_with(_feed_server_hello(trace, hello), ILLEGAL_PARAMETER)


def _retry(trace: Trace, *extensions: tuple[int, bytes]) -> ServerHello:
    return replace(
        _server_hello(trace),
        random=HELLO_RETRY_REQUEST_RANDOM,
        extensions=((ExtensionType.SUPPORTED_VERSIONS, b"\x03\x04"), *extensions),
    )


@pytest.mark.parametrize(
    ("ext_type", "data"),
    [(ExtensionType.COOKIE, b"\x00\x00"), (ExtensionType.KEY_SHARE, b"\x00\x17\x00")],
    ids=["empty-cookie", "key_share-trailing"],
)
def test_hello_retry_request_malformed_extension_is_a_decode_error(
    trace: Trace, ext_type: int, data: bytes
) -> None:
    assert_fails_with(_feed_server_hello(trace, _retry(trace, (ext_type, data))), DECODE_ERROR)


def test_hello_retry_request_with_an_encrypted_extensions_extension_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    retry = _retry(trace, (ExtensionType.KEY_SHARE, encode_uint16(NamedGroup.SECP256R1)))
    retry = _set(retry, ExtensionType.SERVER_NAME, b"")
    assert_fails_with(_feed_server_hello(trace, retry), ILLEGAL_PARAMETER)


def test_hello_retry_request_with_an_extension_not_offered_is_unsupported_extension(
    trace: Trace,
) -> None:
    retry = _retry(
        trace, (ExtensionType.KEY_SHARE, encode_uint16(NamedGroup.SECP256R1)), (0x7777, b"")
    )
    assert_fails_with(_feed_server_hello(trace, retry), AlertDescription.UNSUPPORTED_EXTENSION)


def test_hello_retry_request_changing_nothing_is_an_illegal_parameter(trace: Trace) -> None:
    assert_fails_with(_feed_server_hello(trace, _retry(trace)), ILLEGAL_PARAMETER)


def _client_after_retry(trace: Trace) -> ClientConnection:
    """A client that answered a HelloRetryRequest asking for secp256r1."""
    retry = _retry(trace, (ExtensionType.KEY_SHARE, encode_uint16(NamedGroup.SECP256R1)))
    client = _feed_server_hello(trace, retry)
    assert client.state is ConnectionState.HANDSHAKING
    client.data_to_send()  # the CCS and the second ClientHello
    return client


def test_server_hello_changing_the_cipher_suite_of_the_retry_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    # Section 4.1.4: the ServerHello's cipher suite must be the HelloRetryRequest's.
    client = _client_after_retry(trace)
    suite = _server_hello(trace).cipher_suite
    other = next(s for s in (0x1301, 0x1302) if s != suite)
    hello = replace(_server_hello(trace), cipher_suite=other)
    client.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_server_hello(hello)))
    assert_fails_with(client, ILLEGAL_PARAMETER)


def test_server_hello_for_another_group_than_the_retry_asked_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    # Section 4.2.8: the group "MUST" be the one the HelloRetryRequest selected.
    client = _client_after_retry(trace)
    hello = _server_hello(trace)  # still answers with its X25519 share
    client.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_server_hello(hello)))
    assert_fails_with(client, ILLEGAL_PARAMETER)


# --- EncryptedExtensions (section 4.3.1) --------------------------------------------------------


def _with_encrypted_extensions(trace: Trace, message: bytes) -> ClientConnection:
    messages = trace.server_messages()
    messages[0] = message
    return _client_given(trace, messages)


def test_encrypted_extensions_with_trailing_bytes_is_a_decode_error(trace: Trace) -> None:
    message = handshake_message(HandshakeType.ENCRYPTED_EXTENSIONS, b"\x00\x00\x00")
    assert_client_fails_with(trace, _with_encrypted_extensions(trace, message), DECODE_ERROR)


def test_encrypted_extensions_duplicate_extension_is_an_illegal_parameter(trace: Trace) -> None:
    message = encode_encrypted_extensions(
        ((ExtensionType.SERVER_NAME, b""), (ExtensionType.SERVER_NAME, b""))
    )
    assert_client_fails_with(trace, _with_encrypted_extensions(trace, message), ILLEGAL_PARAMETER)


def test_encrypted_extensions_server_name_with_content_is_a_decode_error(trace: Trace) -> None:
    message = encode_encrypted_extensions(((ExtensionType.SERVER_NAME, b"\x00"),))
    assert_client_fails_with(trace, _with_encrypted_extensions(trace, message), DECODE_ERROR)


@pytest.mark.parametrize(
    "alpn", [b"\x00\x06\x02h2\x02h2", b"\x00\x00"], ids=["two-names", "no-name"]
)
def test_server_alpn_list_not_holding_exactly_one_name_is_a_decode_error(
    trace_alpn: Trace, alpn: bytes
) -> None:
    # RFC 7301 section 3.1: the server's "ProtocolNameList MUST contain exactly one".
    message = encode_encrypted_extensions(
        ((ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, alpn),)
    )
    client = _with_encrypted_extensions(trace_alpn, message)
    assert_client_fails_with(trace_alpn, client, DECODE_ERROR)


def test_server_alpn_name_not_offered_is_an_illegal_parameter(trace_alpn: Trace) -> None:
    message = encode_encrypted_extensions(
        ((ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b"\x00\x03\x02h3"),)
    )
    client = _with_encrypted_extensions(trace_alpn, message)
    assert_client_fails_with(trace_alpn, client, ILLEGAL_PARAMETER)


def test_encrypted_extensions_malformed_supported_groups_is_a_decode_error(trace: Trace) -> None:
    message = encode_encrypted_extensions(((ExtensionType.SUPPORTED_GROUPS, b"\x00\x01\x00"),))
    assert_client_fails_with(trace, _with_encrypted_extensions(trace, message), DECODE_ERROR)


@pytest.mark.parametrize(
    ("data", "alert"),
    [(encode_uint16(63), ILLEGAL_PARAMETER), (b"\x04\x00\x00", DECODE_ERROR)],
    ids=["below-64", "three-bytes"],
)
def test_server_record_size_limit_below_64_or_malformed_is_refused(
    trace_alpn: Trace, data: bytes, alert: int
) -> None:
    message = encode_encrypted_extensions(((ExtensionType.RECORD_SIZE_LIMIT, data),))
    assert_client_fails_with(trace_alpn, _with_encrypted_extensions(trace_alpn, message), alert)


# --- CertificateRequest (section 4.3.2) -----------------------------------------------------------


def _with_certificate_request(trace: Trace, request: CertificateRequest) -> ClientConnection:
    messages = trace.server_messages()
    assert messages[1][0] == HandshakeType.CERTIFICATE_REQUEST
    messages[1] = encode_certificate_request(request)
    return _client_given(trace, messages)


SIGNATURE_ALGORITHMS = (ExtensionType.SIGNATURE_ALGORITHMS, encode_uint16_list((0x0807,)))


def test_certificate_request_context_in_the_handshake_is_a_decode_error(
    trace_client_auth: Trace,
) -> None:
    # As BoringSSL and rustls: the context "SHALL be zero length" here, so it is out of range.
    client = _with_certificate_request(
        trace_client_auth, CertificateRequest(b"\x01", (SIGNATURE_ALGORITHMS,))
    )
    assert_client_fails_with(trace_client_auth, client, DECODE_ERROR)


def test_certificate_request_with_an_empty_extensions_block_is_a_decode_error(
    trace_client_auth: Trace,
) -> None:
    client = _with_certificate_request(trace_client_auth, CertificateRequest(b"", ()))
    assert_client_fails_with(trace_client_auth, client, DECODE_ERROR)


@pytest.mark.parametrize(
    ("ext_type", "data"),
    [
        (ExtensionType.SIGNATURE_ALGORITHMS_CERT, b"\x00\x00"),
        (ExtensionType.CERTIFICATE_AUTHORITIES, b"\x00\x02\x00\x00"),
        (ExtensionType.OID_FILTERS, b"\x00\x03\x00\x00\x00"),
    ],
    ids=["signature_algorithms_cert", "certificate_authorities", "oid_filters"],
)
def test_certificate_request_malformed_extension_is_a_decode_error(
    trace_client_auth: Trace, ext_type: int, data: bytes
) -> None:
    request = CertificateRequest(b"", (SIGNATURE_ALGORITHMS, (ext_type, data)))
    client = _with_certificate_request(trace_client_auth, request)
    assert_client_fails_with(trace_client_auth, client, DECODE_ERROR)


def test_certificate_request_without_signature_algorithms_is_a_missing_extension(
    trace_client_auth: Trace,
) -> None:
    request = CertificateRequest(
        b"", ((ExtensionType.SIGNATURE_ALGORITHMS_CERT, encode_uint16_list((0x0807,))),)
    )
    client = _with_certificate_request(trace_client_auth, request)
    assert_client_fails_with(trace_client_auth, client, AlertDescription.MISSING_EXTENSION)


# --- Certificate (section 4.4.2) ---------------------------------------------------------------


def _with_server_certificate(trace: Trace, message: bytes) -> ClientConnection:
    messages = trace.server_messages()
    assert messages[1][0] == HandshakeType.CERTIFICATE
    messages[1] = message
    return _client_given(trace, messages)


def test_server_certificate_with_a_context_is_a_decode_error(trace: Trace) -> None:
    message = encode_certificate(b"\x01", trace.client_result.peer_certificates)
    assert_client_fails_with(trace, _with_server_certificate(trace, message), DECODE_ERROR)


def test_client_certificate_with_a_context_is_a_decode_error(trace_client_auth: Trace) -> None:
    trace = trace_client_auth
    _, verify, finished = trace.client_messages()
    certificate = encode_certificate(b"\x01", trace.server_result.peer_certificates)
    server = _server_given(trace, trace.client_flight_with([certificate, verify, finished]))
    assert_server_fails_with(trace, server, DECODE_ERROR)


def test_certificate_entry_with_empty_cert_data_is_a_decode_error(trace: Trace) -> None:
    # context <0>, certificate_list <5>: cert_data <0>, extensions <0>.
    message = handshake_message(HandshakeType.CERTIFICATE, b"\x00\x00\x00\x05" + bytes(5))
    assert_client_fails_with(trace, _with_server_certificate(trace, message), DECODE_ERROR)


def test_certificate_that_is_not_x509_der_is_a_bad_certificate(trace: Trace) -> None:
    message = encode_certificate(b"", (b"\x30\x03\x02\x01\x00",))
    client = _with_server_certificate(trace, message)
    assert_client_fails_with(trace, client, AlertDescription.BAD_CERTIFICATE)


def test_certificate_entry_extension_not_offered_is_unsupported_extension(trace: Trace) -> None:
    (leaf, *rest) = trace.client_result.peer_certificates
    entries = len(leaf).to_bytes(3, "big") + leaf + b"\x00\x04\x00\x12\x00\x00"
    for der in rest:
        entries += len(der).to_bytes(3, "big") + der + b"\x00\x00"
    body = b"\x00" + len(entries).to_bytes(3, "big") + entries
    message = handshake_message(HandshakeType.CERTIFICATE, body)
    client = _with_server_certificate(trace, message)
    assert_client_fails_with(trace, client, AlertDescription.UNSUPPORTED_EXTENSION)


def test_no_client_certificate_when_one_is_required_is_certificate_required(
    trace_client_auth: Trace,
) -> None:
    trace = trace_client_auth
    (*_, finished) = trace.client_messages()
    empty = encode_certificate(b"", ())
    server = _server_given(trace, trace.client_flight_with([empty, finished]))
    assert_server_fails_with(trace, server, AlertDescription.CERTIFICATE_REQUIRED)


# --- CertificateVerify (section 4.4.3) ------------------------------------------------------------


def _with_certificate_verify(trace: Trace, message: bytes) -> ClientConnection:
    messages = trace.server_messages()
    assert messages[2][0] == HandshakeType.CERTIFICATE_VERIFY
    messages[2] = message
    return _client_given(trace, messages)


def _scheme(trace: Trace) -> int:
    return int.from_bytes(trace.server_messages()[2][4:6], "big")


def test_empty_certificate_verify_signature_is_a_decrypt_error(trace: Trace) -> None:
    # "opaque signature<0..2^16-1>": empty parses, and then does not verify.
    message = encode_certificate_verify(CertificateVerify(_scheme(trace), b""))
    client = _with_certificate_verify(trace, message)
    assert_client_fails_with(trace, client, AlertDescription.DECRYPT_ERROR)


def test_empty_client_certificate_verify_signature_is_a_decrypt_error(
    trace_client_auth: Trace,
) -> None:
    trace = trace_client_auth
    certificate, verify, finished = trace.client_messages()
    scheme = int.from_bytes(verify[4:6], "big")
    empty = encode_certificate_verify(CertificateVerify(scheme, b""))
    server = _server_given(trace, trace.client_flight_with([certificate, empty, finished]))
    assert_server_fails_with(trace, server, AlertDescription.DECRYPT_ERROR)


def test_certificate_verify_with_trailing_bytes_is_a_decode_error(trace: Trace) -> None:
    verify = trace.server_messages()[2]
    message = handshake_message(HandshakeType.CERTIFICATE_VERIFY, verify[4:] + b"\x00")
    assert_client_fails_with(trace, _with_certificate_verify(trace, message), DECODE_ERROR)


def test_certificate_verify_with_a_scheme_not_offered_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    verify = trace.server_messages()[2]
    message = handshake_message(HandshakeType.CERTIFICATE_VERIFY, b"\x04\x01" + verify[6:])
    assert_client_fails_with(trace, _with_certificate_verify(trace, message), ILLEGAL_PARAMETER)


# --- post-handshake messages during the handshake (sections 4.6, 6) -----------------------------


@pytest.mark.parametrize(
    "message",
    [
        handshake_message(HandshakeType.KEY_UPDATE, b"\x00"),
        handshake_message(HandshakeType.NEW_SESSION_TICKET, bytes(4) + bytes(4) + b"\x00" * 5),
    ],
    ids=["key_update", "new_session_ticket"],
)
def test_post_handshake_message_before_the_server_finished_is_an_unexpected_message(
    trace: Trace, message: bytes
) -> None:
    # Section 4.6.3: a KeyUpdate "prior to receiving a Finished message" is unexpected_message.
    messages = trace.server_messages()
    messages[-1] = message
    assert_client_fails_with(trace, _client_given(trace, messages), UNEXPECTED_MESSAGE)


@pytest.mark.parametrize(
    "message",
    [
        handshake_message(HandshakeType.KEY_UPDATE, b"\x00"),
        handshake_message(HandshakeType.END_OF_EARLY_DATA, b""),
    ],
    ids=["key_update", "end_of_early_data"],
)
def test_key_update_or_end_of_early_data_before_the_client_finished_is_an_unexpected_message(
    trace: Trace, message: bytes
) -> None:
    server = _server_given(trace, trace.client_flight_with([message]))
    assert_server_fails_with(trace, server, UNEXPECTED_MESSAGE)
