"""Bad input of every kind: the exact alert, queued for the peer, and nothing raised."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from engine_kit import (
    EnginePKI,
    Trace,
    alert_record,
    client_config,
    only_complete,
    only_failure,
    plaintext_record,
    protection,
    pump,
    server_config,
    split_messages,
    split_records,
)
from handshaker.tls import (
    AlertDescription,
    CipherSuite,
    ClientConnection,
    ConnectionState,
    ContentType,
    NamedGroup,
    ServerConnection,
)
from handshaker.tls.codepoints import ExtensionType, HandshakeType, ProtocolVersion
from handshaker.tls.connection import Connection
from handshaker.tls.extensions import (
    encode_client_key_shares,
    encode_server_key_share,
    encode_uint16,
    encode_uint16_list,
)
from handshaker.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    ClientHello,
    ServerHello,
    encode_client_hello,
    encode_encrypted_extensions,
    encode_server_hello,
    handshake_message,
    parse_client_hello,
    parse_server_hello,
)

# --- helpers -----------------------------------------------------------------------------


def assert_fails_with(
    conn: Connection, alert: int, *, protected_by: bytes | None = None, suite: int | None = None
) -> None:
    """`conn` failed with `alert`, reported once, and queued exactly that alert record.

    protected_by: the traffic secret the alert must be protected with (None: plaintext).
    """
    assert conn.state is ConnectionState.FAILED
    failure = only_failure(list(conn.events()))
    assert failure.sent_by_peer is False
    assert failure.alert == alert, failure
    out = conn.data_to_send()
    if protected_by is None:
        assert out == alert_record(alert)
        return
    assert suite is not None
    records = split_records(out)
    if records and records[0] == CHANGE_CIPHER_SPEC_RECORD:
        # Middlebox compatibility: the dummy CCS precedes the first protected record.
        records = records[1:]
    assert len(records) == 1
    assert protection(suite, protected_by).open(records[0]) == (
        ContentType.ALERT,
        bytes((2, alert)),
    )


CHANGE_CIPHER_SPEC_RECORD = b"\x14\x03\x03\x00\x01\x01"


def assert_client_fails_with(trace: Trace, client: Connection, alert: int) -> None:
    """The client failed reading the server's protected flight: its alert is protected
    with client_handshake_traffic_secret (RFC 8446 section 6), after the dummy CCS."""
    assert_fails_with(
        client,
        alert,
        protected_by=trace.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
        suite=trace.suite,
    )


def first_client_hello(pki: EnginePKI, **overrides: object) -> ClientHello:
    client = ClientConnection(client_config(pki, **overrides))
    (record,) = split_records(client.data_to_send())
    return parse_client_hello(record[5 + 4 :])


def with_extension(hello: ClientHello, ext_type: int, data: bytes) -> ClientHello:
    """`hello` with extension `ext_type` replaced (or appended) by `data`."""
    items = list(hello.extensions)
    for index, (existing, _) in enumerate(items):
        if existing == ext_type:
            items[index] = (ext_type, data)
            break
    else:
        items.append((ext_type, data))
    return replace(hello, extensions=tuple(items))


def without_extension(hello: ClientHello, ext_type: int) -> ClientHello:
    return replace(hello, extensions=tuple(e for e in hello.extensions if e[0] != ext_type))


def hello_record(hello: ClientHello) -> bytes:
    return plaintext_record(ContentType.HANDSHAKE, encode_client_hello(hello))


def server_fed(pki: EnginePKI, data: bytes, **overrides: object) -> ServerConnection:
    server = ServerConnection(server_config(pki, "ecdsa-p256", **overrides))
    server.receive_data(data)
    return server


def x25519_share_hello(pki: EnginePKI, share: bytes) -> ClientHello:
    hello = first_client_hello(pki, key_share_groups=(NamedGroup.X25519,))
    return with_extension(
        hello, ExtensionType.KEY_SHARE, encode_client_key_shares(((NamedGroup.X25519, share),))
    )


# --- ClientHello framing --------------------------------------------------------------------


def test_truncated_client_hello_is_a_decode_error(engine_pki: EnginePKI) -> None:
    message = encode_client_hello(first_client_hello(engine_pki))
    body = message[4:-10]
    server = server_fed(
        engine_pki, plaintext_record(ContentType.HANDSHAKE, handshake_message(1, body))
    )
    assert_fails_with(server, AlertDescription.DECODE_ERROR)


def test_client_hello_cut_inside_its_random_is_a_decode_error(engine_pki: EnginePKI) -> None:
    body = encode_client_hello(first_client_hello(engine_pki))[4:20]
    server = server_fed(
        engine_pki, plaintext_record(ContentType.HANDSHAKE, handshake_message(1, body))
    )
    assert_fails_with(server, AlertDescription.DECODE_ERROR)


def test_trailing_bytes_after_client_hello_are_a_decode_error(engine_pki: EnginePKI) -> None:
    body = encode_client_hello(first_client_hello(engine_pki))[4:] + b"\x00"
    server = server_fed(
        engine_pki, plaintext_record(ContentType.HANDSHAKE, handshake_message(1, body))
    )
    assert_fails_with(server, AlertDescription.DECODE_ERROR)


def test_trailing_bytes_inside_an_extension_are_a_decode_error(engine_pki: EnginePKI) -> None:
    hello = first_client_hello(engine_pki)
    groups = dict(hello.extensions)[ExtensionType.SUPPORTED_GROUPS]
    hello = with_extension(hello, ExtensionType.SUPPORTED_GROUPS, groups + b"\x00")
    assert_fails_with(server_fed(engine_pki, hello_record(hello)), AlertDescription.DECODE_ERROR)


def test_duplicate_extension_is_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    hello = first_client_hello(engine_pki, alpn_protocols=(b"h2",))
    alpn = dict(hello.extensions)[ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION]
    hello = replace(
        hello,
        extensions=(
            *hello.extensions,
            (ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, alpn),
        ),
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


def test_pre_shared_key_not_last_is_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    hello = first_client_hello(engine_pki)
    hello = replace(
        hello,
        extensions=((ExtensionType.PRE_SHARED_KEY, b"\x00\x00\x00\x00"), *hello.extensions),
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


# --- records ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [0, 19, 24, 99, 255])
def test_unknown_record_content_type_is_an_unexpected_message(
    engine_pki: EnginePKI, content_type: int
) -> None:
    server = server_fed(engine_pki, bytes((content_type, 3, 3, 0, 1, 0)))
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


def test_record_longer_than_2_14_plus_256_is_a_record_overflow(engine_pki: EnginePKI) -> None:
    length = 2**14 + 257
    server = server_fed(engine_pki, bytes((22, 3, 3)) + length.to_bytes(2, "big") + bytes(100))
    assert_fails_with(server, AlertDescription.RECORD_OVERFLOW)


def test_plaintext_record_longer_than_2_14_is_a_record_overflow(engine_pki: EnginePKI) -> None:
    server = server_fed(engine_pki, plaintext_record(ContentType.HANDSHAKE, bytes(2**14 + 1)))
    assert_fails_with(server, AlertDescription.RECORD_OVERFLOW)


def test_zero_length_handshake_fragment_is_an_unexpected_message(engine_pki: EnginePKI) -> None:
    server = server_fed(engine_pki, plaintext_record(ContentType.HANDSHAKE, b""))
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


def test_application_data_before_the_handshake_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    server = server_fed(engine_pki, plaintext_record(ContentType.APPLICATION_DATA, b"hello"))
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


def test_client_hello_split_over_records_is_accepted(engine_pki: EnginePKI) -> None:
    message = encode_client_hello(first_client_hello(engine_pki))
    records = b"".join(
        plaintext_record(ContentType.HANDSHAKE, message[i : i + 50])
        for i in range(0, len(message), 50)
    )
    server = server_fed(engine_pki, records)
    assert server.state is ConnectionState.HANDSHAKING
    assert split_records(server.data_to_send())[0][0] == ContentType.HANDSHAKE


# --- change_cipher_spec --------------------------------------------------------------------


def test_change_cipher_spec_before_client_hello_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    server = server_fed(engine_pki, b"\x14\x03\x03\x00\x01\x01")
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize("body", [b"\x02", b"\x00", b"\x01\x01"], ids=["two", "zero", "long"])
def test_change_cipher_spec_with_a_wrong_body_is_an_unexpected_message(
    trace: Trace, body: bytes
) -> None:
    server = trace.server_after_hello()
    server.receive_data(plaintext_record(ContentType.CHANGE_CIPHER_SPEC, body))
    # The server already wrote its Finished: its alert goes under its application key.
    assert_fails_with(
        server,
        AlertDescription.UNEXPECTED_MESSAGE,
        protected_by=trace.client_result.read.secret,
        suite=trace.suite,
    )


def test_change_cipher_spec_with_a_wrong_body_on_the_client_is_an_unexpected_message(
    trace: Trace,
) -> None:
    client = trace.new_client()
    client.receive_data(plaintext_record(ContentType.CHANGE_CIPHER_SPEC, b"\x02"))
    assert_fails_with(client, AlertDescription.UNEXPECTED_MESSAGE)


# --- ClientHello content ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "methods", [b"\x01", b"\x00\x01", b"\x01\x00"], ids=["one", "extra", "first"]
)
def test_wrong_legacy_compression_methods_are_an_illegal_parameter(
    engine_pki: EnginePKI, methods: bytes
) -> None:
    hello = replace(first_client_hello(engine_pki), legacy_compression_methods=methods)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


# With TLS 1.2 enabled (the default since issue 10) such hellos are TLS 1.2 ones
# (tests/tls/test_tls12_*.py); a TLS 1.3-only server still refuses them.
def test_client_hello_without_supported_versions_is_a_protocol_version(
    engine_pki: EnginePKI,
) -> None:
    hello = without_extension(first_client_hello(engine_pki), ExtensionType.SUPPORTED_VERSIONS)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello), min_version=ProtocolVersion.TLS1_3),
        AlertDescription.PROTOCOL_VERSION,
    )


def test_tls_1_2_only_client_hello_is_a_protocol_version(engine_pki: EnginePKI) -> None:
    hello = with_extension(
        first_client_hello(engine_pki), ExtensionType.SUPPORTED_VERSIONS, b"\x04\x03\x03\x03\x02"
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello), min_version=ProtocolVersion.TLS1_3),
        AlertDescription.PROTOCOL_VERSION,
    )


def test_tls_1_1_only_client_hello_is_a_protocol_version(engine_pki: EnginePKI) -> None:
    hello = with_extension(
        first_client_hello(engine_pki), ExtensionType.SUPPORTED_VERSIONS, b"\x04\x03\x02\x03\x01"
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.PROTOCOL_VERSION
    )


def test_client_hello_without_key_share_is_a_missing_extension(engine_pki: EnginePKI) -> None:
    hello = without_extension(first_client_hello(engine_pki), ExtensionType.KEY_SHARE)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.MISSING_EXTENSION
    )


def test_client_hello_without_supported_groups_is_a_missing_extension(
    engine_pki: EnginePKI,
) -> None:
    hello = without_extension(first_client_hello(engine_pki), ExtensionType.SUPPORTED_GROUPS)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.MISSING_EXTENSION
    )


def test_client_hello_without_signature_algorithms_is_a_missing_extension(
    engine_pki: EnginePKI,
) -> None:
    hello = without_extension(first_client_hello(engine_pki), ExtensionType.SIGNATURE_ALGORITHMS)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.MISSING_EXTENSION
    )


def test_no_common_cipher_suite_is_a_handshake_failure(engine_pki: EnginePKI) -> None:
    hello = replace(first_client_hello(engine_pki), cipher_suites=(0x009C, 0xC02F))
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.HANDSHAKE_FAILURE
    )


def test_key_share_for_a_group_not_in_supported_groups_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    hello = first_client_hello(
        engine_pki, key_share_groups=(NamedGroup.X25519, NamedGroup.SECP256R1)
    )
    hello = with_extension(
        hello, ExtensionType.SUPPORTED_GROUPS, encode_uint16_list((NamedGroup.X25519,))
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


def test_two_key_shares_for_one_group_are_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    hello = first_client_hello(engine_pki, key_share_groups=(NamedGroup.X25519,))
    ((group, share),) = hello.key_shares or ()
    hello = with_extension(
        hello, ExtensionType.KEY_SHARE, encode_client_key_shares(((group, share), (group, share)))
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


@pytest.mark.parametrize(
    "share",
    [bytes(32), b"\x01" + bytes(31), b"\x09" * 31, b"\x09" * 33],
    ids=["all-zero", "small-order", "short", "long"],
)
def test_invalid_x25519_share_is_an_illegal_parameter(engine_pki: EnginePKI, share: bytes) -> None:
    hello = x25519_share_hello(engine_pki, share)
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


@pytest.mark.parametrize(
    "share",
    [
        b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big"),
        b"\x02" + (1).to_bytes(32, "big"),
        b"\x04" + bytes(64),
        b"\x05" + bytes(64),
    ],
    ids=["off-curve", "compressed", "infinity-like", "bad-prefix"],
)
def test_invalid_p256_share_is_an_illegal_parameter(engine_pki: EnginePKI, share: bytes) -> None:
    hello = first_client_hello(engine_pki, key_share_groups=(NamedGroup.SECP256R1,))
    hello = with_extension(
        hello, ExtensionType.KEY_SHARE, encode_client_key_shares(((NamedGroup.SECP256R1, share),))
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


def test_wrong_length_x448_share_is_an_illegal_parameter(engine_pki: EnginePKI) -> None:
    hello = first_client_hello(engine_pki, key_share_groups=(NamedGroup.X448,))
    hello = with_extension(
        hello, ExtensionType.KEY_SHARE, encode_client_key_shares(((NamedGroup.X448, b"\x05" * 55),))
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


@pytest.mark.parametrize("delta", [-1, 1], ids=["short", "long"])
def test_wrong_length_mlkem_share_is_an_illegal_parameter(
    engine_pki: EnginePKI, delta: int
) -> None:
    hello = first_client_hello(engine_pki, key_share_groups=(NamedGroup.X25519MLKEM768,))
    ((group, share),) = hello.key_shares or ()
    share = share[:-1] if delta < 0 else share + b"\x00"
    hello = with_extension(
        hello, ExtensionType.KEY_SHARE, encode_client_key_shares(((group, share),))
    )
    assert_fails_with(
        server_fed(engine_pki, hello_record(hello)), AlertDescription.ILLEGAL_PARAMETER
    )


# --- out of order and duplicated, server side ------------------------------------------------


@pytest.mark.parametrize(
    "msg_type",
    [HandshakeType.FINISHED, HandshakeType.SERVER_HELLO, HandshakeType.CERTIFICATE, 77],
    ids=["finished", "server-hello", "certificate", "unknown"],
)
def test_anything_but_client_hello_first_is_an_unexpected_message(
    engine_pki: EnginePKI, msg_type: int
) -> None:
    server = server_fed(
        engine_pki, plaintext_record(ContentType.HANDSHAKE, handshake_message(msg_type, bytes(32)))
    )
    assert_fails_with(server, AlertDescription.UNEXPECTED_MESSAGE)


def test_two_client_hellos_in_one_record_span_a_key_change(engine_pki: EnginePKI) -> None:
    message = encode_client_hello(first_client_hello(engine_pki))
    server = server_fed(engine_pki, plaintext_record(ContentType.HANDSHAKE, message + message))
    # The server answered the first one; the second is handshake data across its key change.
    out = split_records(server.data_to_send())
    assert server.state is ConnectionState.FAILED
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.UNEXPECTED_MESSAGE
    assert out[-1] == alert_record(AlertDescription.UNEXPECTED_MESSAGE) or (
        out[-1][0] == ContentType.APPLICATION_DATA and len(out[-1]) == 5 + 3 + 16
    )


def test_second_client_hello_in_plaintext_after_the_key_change_is_an_unexpected_message(
    trace: Trace,
) -> None:
    server = trace.server_after_hello()
    (record,) = [r for r in split_records(trace.client_hello_flight)]
    server.receive_data(record)
    assert_fails_with(
        server,
        AlertDescription.UNEXPECTED_MESSAGE,
        protected_by=trace.client_result.read.secret,
        suite=trace.suite,
    )


# --- HelloRetryRequest, server side -----------------------------------------------------------


def _server_after_retry(pki: EnginePKI) -> tuple[ClientConnection, ServerConnection, bytes]:
    client = ClientConnection(client_config(pki, key_share_groups=(NamedGroup.X25519,)))
    server = ServerConnection(
        server_config(pki, supported_groups=(NamedGroup.SECP256R1,), hello_retry_cookie=True)
    )
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server, client.data_to_send()


def _client_hellos(data: bytes) -> list[ClientHello]:
    return [
        parse_client_hello(record[9:])
        for record in split_records(data)
        if record[0] == ContentType.HANDSHAKE
    ]


def test_second_client_hello_without_the_cookie_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    _, server, flight = _server_after_retry(engine_pki)
    (hello2,) = _client_hellos(flight)
    assert hello2.cookie is not None
    server.receive_data(hello_record(without_extension(hello2, ExtensionType.COOKIE)))
    assert_fails_with(server, AlertDescription.ILLEGAL_PARAMETER)


def test_second_client_hello_with_a_wrong_cookie_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    _, server, flight = _server_after_retry(engine_pki)
    (hello2,) = _client_hellos(flight)
    cookie = bytes(32)
    hello = with_extension(hello2, ExtensionType.COOKIE, len(cookie).to_bytes(2, "big") + cookie)
    server.receive_data(hello_record(hello))
    assert_fails_with(server, AlertDescription.ILLEGAL_PARAMETER)


def test_second_client_hello_changing_the_cipher_suite_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    _, server, flight = _server_after_retry(engine_pki)
    (hello2,) = _client_hellos(flight)
    hello = replace(hello2, cipher_suites=(CipherSuite.TLS_CHACHA20_POLY1305_SHA256,))
    server.receive_data(hello_record(hello))
    assert_fails_with(server, AlertDescription.ILLEGAL_PARAMETER)


def test_second_client_hello_without_the_requested_share_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    _, server, flight = _server_after_retry(engine_pki)
    (hello2,) = _client_hellos(flight)
    x25519_share = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    hello = with_extension(
        hello2,
        ExtensionType.KEY_SHARE,
        encode_client_key_shares(((NamedGroup.X25519, x25519_share),)),
    )
    server.receive_data(hello_record(hello))
    assert_fails_with(server, AlertDescription.ILLEGAL_PARAMETER)


# --- ServerHello, client side ----------------------------------------------------------------


def _server_hello(trace: Trace) -> ServerHello:
    record = trace.server_plaintext_records()[0]
    return parse_server_hello(record[9:])


def _feed_server_hello(trace: Trace, hello: ServerHello) -> ClientConnection:
    client = trace.new_client()
    client.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_server_hello(hello)))
    return client


def _set(hello: ServerHello, ext_type: int, data: bytes | None) -> ServerHello:
    items = [(t, d) for t, d in hello.extensions if t != ext_type]
    if data is not None:
        items.append((ext_type, data))
    return replace(hello, extensions=tuple(items))


def test_server_selecting_a_cipher_suite_not_offered_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    from engine_kit import record_trace

    trace = record_trace(
        engine_pki,
        "one-suite",
        client_overrides={"cipher_suites": (CipherSuite.TLS_AES_128_GCM_SHA256,)},
    )
    hello = replace(_server_hello(trace), cipher_suite=CipherSuite.TLS_AES_256_GCM_SHA384)
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_selecting_a_group_without_a_client_share_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    hello = _set(
        _server_hello(trace),
        ExtensionType.KEY_SHARE,
        encode_server_key_share(NamedGroup.SECP256R1, point),
    )
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_below_tls_1_2_is_a_protocol_version(trace: Trace) -> None:
    # Without supported_versions a ServerHello is TLS 1.2 or older (RFC 8446 section
    # 4.1.3); TLS 1.1 is refused.
    hello = replace(
        _set(_server_hello(trace), ExtensionType.SUPPORTED_VERSIONS, None),
        legacy_version=ProtocolVersion.TLS1_1,
    )
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.PROTOCOL_VERSION)


def test_server_hello_selecting_tls_1_2_in_supported_versions_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    hello = _set(_server_hello(trace), ExtensionType.SUPPORTED_VERSIONS, b"\x03\x03")
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_without_key_share_is_a_missing_extension(trace: Trace) -> None:
    hello = _set(_server_hello(trace), ExtensionType.KEY_SHARE, None)
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.MISSING_EXTENSION)


def test_server_hello_with_a_wrong_session_id_echo_is_an_illegal_parameter(trace: Trace) -> None:
    hello = replace(_server_hello(trace), legacy_session_id_echo=bytes(32))
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_with_a_compression_method_is_an_illegal_parameter(trace: Trace) -> None:
    hello = replace(_server_hello(trace), legacy_compression_method=1)
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_with_an_encrypted_extensions_extension_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    hello = _set(_server_hello(trace), ExtensionType.SERVER_NAME, b"")
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_with_an_all_zero_x25519_share_is_an_illegal_parameter(trace: Trace) -> None:
    hello = _set(
        _server_hello(trace),
        ExtensionType.KEY_SHARE,
        encode_server_key_share(NamedGroup.X25519, bytes(32)),
    )
    assert_fails_with(_feed_server_hello(trace, hello), AlertDescription.ILLEGAL_PARAMETER)


def test_truncated_server_hello_is_a_decode_error(trace: Trace) -> None:
    message = encode_server_hello(_server_hello(trace))
    client = trace.new_client()
    client.receive_data(
        plaintext_record(ContentType.HANDSHAKE, handshake_message(2, message[4:-3]))
    )
    assert_fails_with(client, AlertDescription.DECODE_ERROR)


def _hello_retry_request(trace: Trace, group: int) -> bytes:
    hello = _server_hello(trace)
    return encode_server_hello(
        ServerHello(
            legacy_version=0x0303,
            random=HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=hello.legacy_session_id_echo,
            cipher_suite=hello.cipher_suite,
            legacy_compression_method=0,
            extensions=(
                (ExtensionType.KEY_SHARE, encode_uint16(group)),
                (ExtensionType.SUPPORTED_VERSIONS, b"\x03\x04"),
            ),
        )
    )


def test_second_hello_retry_request_is_an_unexpected_message(trace: Trace) -> None:
    retry = plaintext_record(
        ContentType.HANDSHAKE, _hello_retry_request(trace, NamedGroup.SECP256R1)
    )
    client = trace.new_client()
    client.receive_data(retry)
    assert client.state is ConnectionState.HANDSHAKING
    assert _client_hellos(client.data_to_send())[0].key_shares is not None
    client.receive_data(retry)
    assert_fails_with(client, AlertDescription.UNEXPECTED_MESSAGE)


def test_hello_retry_for_a_group_already_shared_is_an_illegal_parameter(trace: Trace) -> None:
    client = trace.new_client()
    client.receive_data(
        plaintext_record(ContentType.HANDSHAKE, _hello_retry_request(trace, NamedGroup.X25519))
    )
    assert_fails_with(client, AlertDescription.ILLEGAL_PARAMETER)


def test_server_hello_and_encrypted_extensions_in_one_record_span_a_key_change(
    trace: Trace,
) -> None:
    server_hello = encode_server_hello(_server_hello(trace))
    extensions = encode_encrypted_extensions(())
    client = trace.new_client()
    client.receive_data(plaintext_record(ContentType.HANDSHAKE, server_hello + extensions))
    assert_client_fails_with(trace, client, AlertDescription.UNEXPECTED_MESSAGE)


# --- the protected server flight, client side ---------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


def _client_given(trace: Trace, messages: list[bytes]) -> ClientConnection:
    client = trace.new_client()
    client.receive_data(trace.server_flight_with(messages))
    return client


def test_server_flight_replayed_unchanged_completes(trace: Trace) -> None:
    client = _client_given(trace, trace.server_messages())
    assert only_complete(list(client.events())).read == trace.client_result.read


def test_server_finished_with_a_flipped_byte_is_a_decrypt_error(trace: Trace) -> None:
    messages = trace.server_messages()
    messages[-1] = _flip(messages[-1], 10)
    assert_client_fails_with(trace, _client_given(trace, messages), AlertDescription.DECRYPT_ERROR)


def test_server_finished_of_the_wrong_length_is_a_decode_error(trace: Trace) -> None:
    messages = trace.server_messages()
    messages[-1] = handshake_message(HandshakeType.FINISHED, messages[-1][4:-1])
    assert_client_fails_with(trace, _client_given(trace, messages), AlertDescription.DECODE_ERROR)


def test_certificate_verify_with_a_flipped_signature_byte_is_a_decrypt_error(trace: Trace) -> None:
    messages = trace.server_messages()
    verify = messages[2]
    assert verify[0] == HandshakeType.CERTIFICATE_VERIFY
    messages[2] = _flip(verify, len(verify) - 20)
    assert_client_fails_with(trace, _client_given(trace, messages), AlertDescription.DECRYPT_ERROR)


def test_tampered_encrypted_record_is_a_bad_record_mac(trace: Trace) -> None:
    records = split_records(trace.server_flight)
    records[-1] = _flip(records[-1], len(records[-1]) - 5)
    client = trace.new_client()
    client.receive_data(b"".join(records))
    assert_client_fails_with(trace, client, AlertDescription.BAD_RECORD_MAC)


def test_finished_before_certificate_is_an_unexpected_message(trace: Trace) -> None:
    extensions, _, _, finished = trace.server_messages()
    assert_client_fails_with(
        trace, _client_given(trace, [extensions, finished]), AlertDescription.UNEXPECTED_MESSAGE
    )


def test_certificate_before_encrypted_extensions_is_an_unexpected_message(trace: Trace) -> None:
    extensions, certificate, verify, finished = trace.server_messages()
    client = _client_given(trace, [certificate, extensions, verify, finished])
    assert_client_fails_with(trace, client, AlertDescription.UNEXPECTED_MESSAGE)


def test_duplicated_encrypted_extensions_is_an_unexpected_message(trace: Trace) -> None:
    messages = trace.server_messages()
    assert_client_fails_with(
        trace, _client_given(trace, [messages[0], *messages]), AlertDescription.UNEXPECTED_MESSAGE
    )


def test_duplicated_server_finished_spans_the_key_change(trace: Trace) -> None:
    messages = trace.server_messages()
    client = _client_given(trace, [*messages, messages[-1]])
    assert client.state is ConnectionState.FAILED
    failure = only_failure(list(client.events()))
    assert failure.alert == AlertDescription.UNEXPECTED_MESSAGE
    last = split_records(client.data_to_send())[-1]
    if last[0] == ContentType.ALERT:
        assert last == alert_record(AlertDescription.UNEXPECTED_MESSAGE)
    else:
        keys = [trace.secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), trace.client_result.write.secret]
        opened = set()
        for secret in keys:
            try:
                opened.add(protection(trace.suite, secret).open(last))
            except Exception:
                continue
        assert (ContentType.ALERT, bytes((2, AlertDescription.UNEXPECTED_MESSAGE))) in opened


def test_empty_server_certificate_is_a_decode_error(trace: Trace) -> None:
    messages = trace.server_messages()
    messages[1] = handshake_message(HandshakeType.CERTIFICATE, b"\x00\x00\x00\x00")
    assert_client_fails_with(trace, _client_given(trace, messages), AlertDescription.DECODE_ERROR)


def test_encrypted_extensions_with_a_server_hello_extension_is_an_illegal_parameter(
    trace: Trace,
) -> None:
    messages = trace.server_messages()
    messages[0] = encode_encrypted_extensions(((ExtensionType.KEY_SHARE, b"\x00\x1d\x00\x01\x01"),))
    assert_client_fails_with(
        trace, _client_given(trace, messages), AlertDescription.ILLEGAL_PARAMETER
    )


def test_encrypted_extensions_answering_an_unoffered_extension_is_unsupported_extension(
    trace: Trace,
) -> None:
    messages = trace.server_messages()
    messages[0] = encode_encrypted_extensions(
        ((ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b"\x00\x03\x02h2"),)
    )
    assert_client_fails_with(
        trace, _client_given(trace, messages), AlertDescription.UNSUPPORTED_EXTENSION
    )


def test_protected_change_cipher_spec_is_an_unexpected_message(trace: Trace) -> None:
    client = trace.new_client()
    plain = b"".join(trace.server_plaintext_records())
    client.receive_data(
        plain
        + trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [b"\x01"], ContentType.CHANGE_CIPHER_SPEC)
    )
    assert_client_fails_with(trace, client, AlertDescription.UNEXPECTED_MESSAGE)


def test_protected_application_data_before_finished_is_an_unexpected_message(trace: Trace) -> None:
    client = trace.new_client()
    plain = b"".join(trace.server_plaintext_records())
    client.receive_data(
        plain + trace.seal("SERVER_HANDSHAKE_TRAFFIC_SECRET", [b"hi"], ContentType.APPLICATION_DATA)
    )
    assert_client_fails_with(trace, client, AlertDescription.UNEXPECTED_MESSAGE)


# --- the client's second flight, server side ------------------------------------------------------


def _server_given(trace: Trace, data: bytes) -> ServerConnection:
    server = trace.server_after_hello()
    server.receive_data(data)
    return server


def assert_server_fails_with(trace: Trace, server: ServerConnection, alert: int) -> None:
    # After its Finished the server writes with its application traffic secret.
    assert_fails_with(
        server, alert, protected_by=trace.client_result.read.secret, suite=trace.suite
    )


def test_client_finished_with_a_flipped_byte_is_a_decrypt_error(trace: Trace) -> None:
    (finished,) = trace.client_messages()
    server = _server_given(trace, trace.client_flight_with([_flip(finished, 8)]))
    assert_server_fails_with(trace, server, AlertDescription.DECRYPT_ERROR)


def test_tampered_client_record_is_a_bad_record_mac(trace: Trace) -> None:
    flight = trace.client_final_flight
    server = _server_given(trace, _flip(flight, len(flight) - 1))
    assert_server_fails_with(trace, server, AlertDescription.BAD_RECORD_MAC)


def test_client_finished_with_trailing_handshake_data_spans_the_key_change(trace: Trace) -> None:
    (finished,) = trace.client_messages()
    extra = handshake_message(HandshakeType.KEY_UPDATE, b"\x00")
    server = _server_given(trace, trace.client_flight_with([finished + extra]))
    assert_server_fails_with(trace, server, AlertDescription.UNEXPECTED_MESSAGE)


def test_client_certificate_without_being_asked_is_an_unexpected_message(trace: Trace) -> None:
    certificate = handshake_message(HandshakeType.CERTIFICATE, b"\x00\x00\x00\x00")
    (finished,) = trace.client_messages()
    server = _server_given(trace, trace.client_flight_with([certificate, finished]))
    assert_server_fails_with(trace, server, AlertDescription.UNEXPECTED_MESSAGE)


def test_client_certificate_verify_with_a_flipped_signature_byte_is_a_decrypt_error(
    trace_client_auth: Trace,
) -> None:
    trace = trace_client_auth
    certificate, verify, finished = trace.client_messages()
    assert verify[0] == HandshakeType.CERTIFICATE_VERIFY
    server = _server_given(
        trace, trace.client_flight_with([certificate, _flip(verify, len(verify) - 20), finished])
    )
    assert_server_fails_with(trace, server, AlertDescription.DECRYPT_ERROR)


def test_client_finished_before_certificate_verify_is_an_unexpected_message(
    trace_client_auth: Trace,
) -> None:
    trace = trace_client_auth
    certificate, _, finished = trace.client_messages()
    server = _server_given(trace, trace.client_flight_with([certificate, finished]))
    assert_server_fails_with(trace, server, AlertDescription.UNEXPECTED_MESSAGE)


def test_client_auth_flight_replayed_unchanged_completes(trace_client_auth: Trace) -> None:
    server = _server_given(trace_client_auth, trace_client_auth.client_final_flight)
    result = only_complete(list(server.events()))
    assert result.peer_certificates == trace_client_auth.server_result.peer_certificates


# --- GREASE (RFC 8701) -------------------------------------------------------------------------


GREASE = (0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A, 0xFAFA)


def _grease_hello(pki: EnginePKI, private: bytes, *, grease_share: bool) -> bytes:
    hello = first_client_hello(pki, key_share_groups=(NamedGroup.X25519,), alpn_protocols=(b"h2",))
    public = x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    shares: tuple[tuple[int, bytes], ...] = ((NamedGroup.X25519, public),)
    if grease_share:
        shares = ((GREASE[1], b"\x00"), *shares)
    hello = replace(hello, cipher_suites=(GREASE[0], *hello.cipher_suites, GREASE[6]))
    hello = with_extension(
        hello,
        ExtensionType.SUPPORTED_GROUPS,
        encode_uint16_list((GREASE[1], *(hello.supported_groups or ()))),
    )
    hello = with_extension(hello, ExtensionType.KEY_SHARE, encode_client_key_shares(shares))
    hello = with_extension(
        hello, ExtensionType.SUPPORTED_VERSIONS, b"\x04" + bytes.fromhex("2a2a0304")
    )
    hello = with_extension(
        hello,
        ExtensionType.SIGNATURE_ALGORITHMS,
        encode_uint16_list((GREASE[3], *(hello.signature_algorithms or ()))),
    )
    hello = with_extension(
        hello, ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, b"\x00\x06\x02\x4a\x4a\x02h2"
    )
    hello = replace(
        hello,
        extensions=((GREASE[4], b""), *hello.extensions, (GREASE[5], b"\x00")),
    )
    return encode_client_hello(hello)


def test_grease_values_everywhere_are_ignored_and_the_handshake_completes(
    engine_pki: EnginePKI,
) -> None:
    private = bytes(range(1, 33))
    message = _grease_hello(engine_pki, private, grease_share=False)
    config = client_config(
        engine_pki, key_share_groups=(NamedGroup.X25519,), alpn_protocols=(b"h2",)
    )
    client = ClientConnection.replay(config, message, {NamedGroup.X25519: private})
    server = ServerConnection(server_config(engine_pki, alpn_protocols=(b"h2",)))
    outcome = pump(client, server)
    result = outcome.server_result
    assert result.group == NamedGroup.X25519
    assert result.cipher_suite in tuple(CipherSuite)
    assert result.alpn_protocol == b"h2"
    assert outcome.client_result.write == result.read


def test_grease_key_share_is_skipped_for_a_real_one(engine_pki: EnginePKI) -> None:
    message = _grease_hello(engine_pki, bytes(range(1, 33)), grease_share=True)
    server = server_fed(engine_pki, plaintext_record(ContentType.HANDSHAKE, message))
    assert server.state is ConnectionState.HANDSHAKING
    assert list(server.events()) == []
    first = split_records(server.data_to_send())[0]
    (server_hello,) = split_messages(first[5:])
    hello = parse_server_hello(server_hello[4:])
    assert not hello.is_hello_retry_request
    assert dict(hello.extensions)[ExtensionType.KEY_SHARE][:2] == encode_uint16(NamedGroup.X25519)
