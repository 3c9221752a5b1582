"""Bad input in every TLS 1.2 state gets the alert RFC 5246 (and RFC 8422, 7627, 5746) asks
for, the connection fails cleanly with that alert record queued, and nothing is raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from engine_kit import EnginePKI, only_failure, plaintext_record, seeded_random, split_records
from handshaker.tls import (
    AlertDescription,
    ClientAuth,
    ClientConnection,
    ConnectionState,
    ContentType,
    NamedGroup,
    ServerConnection,
)
from handshaker.tls.codepoints import HandshakeType, Tls12ExtensionType
from handshaker.tls.connection import Connection
from handshaker.tls.messages import (
    encode_client_hello,
    encode_server_hello,
    handshake_message,
    parse_client_hello,
    parse_server_hello,
)
from handshaker.tls.tls12.messages import (
    ecdh_client_key_exchange_body,
    encode_client_key_exchange,
    encode_finished,
    encode_server_key_exchange,
    parse_server_key_exchange,
)
from handshaker.tls.tls12.record import Tls12RecordProtection
from tls12_kit import tls12_client, tls12_server

CCS = bytes((ContentType.CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1))


def messages_of(flight: bytes) -> list[bytes]:
    """The plaintext handshake messages of a flight, in order."""
    data = b""
    for record in split_records(flight):
        if record[0] == ContentType.CHANGE_CIPHER_SPEC:
            break
        if record[0] == ContentType.HANDSHAKE:
            data += record[5:]
    out = []
    pos = 0
    while pos + 4 <= len(data):
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        out.append(data[pos:end])
        pos = end
    return out


def handshake_records(*messages: bytes) -> bytes:
    return plaintext_record(ContentType.HANDSHAKE, b"".join(messages))


def assert_fails_with(conn: Connection, alert: int) -> None:
    assert conn.state is ConnectionState.FAILED
    failure = only_failure(list(conn.events()))
    assert failure.alert == alert, failure
    assert not failure.sent_by_peer
    records = split_records(conn.data_to_send())
    assert records and records[-1][0] == ContentType.ALERT


class Exchange:
    """A client and a TLS 1.2 server with seeded RNGs, stopped after the server's first flight."""

    def __init__(self, pki: EnginePKI, *, client_auth: bool = False, key_type: str = "ecdsa-p256"):
        client_overrides: dict[str, object] = {}
        server_overrides: dict[str, object] = {}
        if client_auth:
            client_overrides["credential"] = pki.clients["ecdsa-p256"].credential()
            server_overrides.update(
                client_auth=ClientAuth.REQUIRED, client_trust_anchors=(pki.root,)
            )
        self.client = ClientConnection(
            tls12_client(pki, **client_overrides), random=seeded_random("bad12/c")
        )
        self.server = ServerConnection(
            tls12_server(pki, key_type, **server_overrides), random=seeded_random("bad12/s")
        )
        self.client_hello = self.client.data_to_send()
        self.server.receive_data(self.client_hello)
        self.server_flight = self.server.data_to_send()
        self.server_messages = messages_of(self.server_flight)

    def client_fed(self, *messages: bytes) -> ClientConnection:
        self.client.receive_data(handshake_records(*messages))
        return self.client

    def client_flight(self) -> bytes:
        self.client.receive_data(self.server_flight)
        return self.client.data_to_send()


# --- the client's states ------------------------------------------------------------------


def _server_hello_with(ex: Exchange, change: Callable[[object], object]) -> ClientConnection:
    hello = parse_server_hello(ex.server_messages[0][4:])
    return ex.client_fed(encode_server_hello(change(hello)))  # type: ignore[arg-type]


def _extensions(hello: object, ext_type: int, data: bytes | None) -> object:
    items = [(t, d) for t, d in hello.extensions if t != ext_type]  # type: ignore[attr-defined]
    if data is not None:
        items.append((ext_type, data))
    return dataclasses.replace(hello, extensions=tuple(items))  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        (lambda h: dataclasses.replace(h, cipher_suite=0xC023), AlertDescription.ILLEGAL_PARAMETER),
        (lambda h: dataclasses.replace(h, cipher_suite=0x1301), AlertDescription.ILLEGAL_PARAMETER),
        (
            lambda h: dataclasses.replace(h, legacy_compression_method=1),
            AlertDescription.ILLEGAL_PARAMETER,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.SESSION_TICKET, b""),
            AlertDescription.UNSUPPORTED_EXTENSION,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.RENEGOTIATION_INFO, None),
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.RENEGOTIATION_INFO, b"\x01\x00"),
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.RENEGOTIATION_INFO, b"\x00\x00"),
            AlertDescription.DECODE_ERROR,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.EXTENDED_MASTER_SECRET, None),
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.EXTENDED_MASTER_SECRET, b"\x00"),
            AlertDescription.DECODE_ERROR,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.EC_POINT_FORMATS, b"\x01\x01"),
            AlertDescription.ILLEGAL_PARAMETER,
        ),
    ],
    ids=[
        "unoffered-suite",
        "tls13-suite",
        "compression",
        "unoffered-extension",
        "no-renegotiation-info",
        "renegotiation-info-not-empty",
        "renegotiation-info-malformed",
        "no-extended-master-secret",
        "extended-master-secret-not-empty",
        "no-uncompressed-point-format",
    ],
)
def test_bad_server_hello(
    engine_pki: EnginePKI, change: Callable[[object], object], alert: int
) -> None:
    assert_fails_with(_server_hello_with(Exchange(engine_pki), change), alert)


def test_server_hello_echoing_our_random_session_id_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    session_id = parse_client_hello(messages_of(ex.client_hello)[0][4:]).legacy_session_id
    assert session_id
    conn = _server_hello_with(
        ex, lambda h: dataclasses.replace(h, legacy_session_id_echo=session_id)
    )
    assert_fails_with(conn, AlertDescription.ILLEGAL_PARAMETER)


def test_truncated_server_hello_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    body = ex.server_messages[0][4:-3]
    assert_fails_with(
        ex.client_fed(handshake_message(HandshakeType.SERVER_HELLO, body)),
        AlertDescription.DECODE_ERROR,
    )


def test_server_key_exchange_instead_of_certificate_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    sh, _, ske, _ = ex.server_messages
    assert_fails_with(ex.client_fed(sh, ske), AlertDescription.UNEXPECTED_MESSAGE)


def test_empty_server_certificate_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    empty = handshake_message(HandshakeType.CERTIFICATE, b"\x00\x00\x00")
    assert_fails_with(ex.client_fed(ex.server_messages[0], empty), AlertDescription.DECODE_ERROR)


def test_malformed_server_certificate_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    cert = ex.server_messages[1]
    broken = handshake_message(HandshakeType.CERTIFICATE, cert[4:] + b"\x00")
    assert_fails_with(ex.client_fed(ex.server_messages[0], broken), AlertDescription.DECODE_ERROR)


def test_a_certificate_that_does_not_suit_the_suite_is_an_unsupported_certificate(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)  # an ECDHE_ECDSA suite
    rsa = Exchange(engine_pki, key_type="rsa").server_messages[1]
    assert_fails_with(
        ex.client_fed(ex.server_messages[0], rsa), AlertDescription.UNSUPPORTED_CERTIFICATE
    )


def _ske(ex: Exchange, **changes: object) -> bytes:
    exchange = parse_server_key_exchange(ex.server_messages[2][4:])
    return encode_server_key_exchange(dataclasses.replace(exchange, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "alert"),
    [
        ({"signature": b"\x30\x06\x02\x01\x01\x02\x01\x01"}, AlertDescription.DECRYPT_ERROR),
        ({"group": NamedGroup.FFDHE2048}, AlertDescription.ILLEGAL_PARAMETER),
        ({"scheme": 0x0203}, AlertDescription.ILLEGAL_PARAMETER),
        ({"public": b"\x04" + bytes(64)}, AlertDescription.DECRYPT_ERROR),
    ],
    ids=["bad-signature", "unoffered-group", "sha1-scheme", "altered-params"],
)
def test_bad_server_key_exchange(
    engine_pki: EnginePKI, changes: dict[str, object], alert: int
) -> None:
    ex = Exchange(engine_pki)
    sh, cert, _, shd = ex.server_messages
    assert_fails_with(ex.client_fed(sh, cert, _ske(ex, **changes), shd), alert)


def test_server_key_exchange_with_an_explicit_curve_is_an_illegal_parameter(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    sh, cert, ske, _ = ex.server_messages
    forged = handshake_message(HandshakeType.SERVER_KEY_EXCHANGE, b"\x01" + ske[5:])
    assert_fails_with(ex.client_fed(sh, cert, forged), AlertDescription.ILLEGAL_PARAMETER)


def test_truncated_server_key_exchange_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    sh, cert, ske, _ = ex.server_messages
    forged = handshake_message(HandshakeType.SERVER_KEY_EXCHANGE, ske[4:-1])
    assert_fails_with(ex.client_fed(sh, cert, forged), AlertDescription.DECODE_ERROR)


def test_server_hello_done_with_a_body_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    sh, cert, ske, _ = ex.server_messages
    forged = handshake_message(HandshakeType.SERVER_HELLO_DONE, b"\x00")
    assert_fails_with(ex.client_fed(sh, cert, ske, forged), AlertDescription.DECODE_ERROR)


def test_finished_instead_of_server_hello_done_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    sh, cert, ske, _ = ex.server_messages
    assert_fails_with(
        ex.client_fed(sh, cert, ske, encode_finished(bytes(12))),
        AlertDescription.UNEXPECTED_MESSAGE,
    )


def test_a_change_cipher_spec_before_server_hello_done_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    sh, cert, ske, _ = ex.server_messages
    ex.client.receive_data(handshake_records(sh, cert, ske) + CCS)
    assert_fails_with(ex.client, AlertDescription.UNEXPECTED_MESSAGE)


def _server_final_flight(ex: Exchange) -> tuple[ClientConnection, list[bytes]]:
    """The client after its flight, and the server's CCS and Finished records."""
    ex.server.receive_data(ex.client_flight())
    return ex.client, split_records(ex.server.data_to_send())


def test_finished_without_change_cipher_spec_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    client, records = _server_final_flight(ex)
    assert records[0] == CCS
    client.receive_data(handshake_records(encode_finished(bytes(12))))
    assert_fails_with(client, AlertDescription.UNEXPECTED_MESSAGE)


def test_a_malformed_change_cipher_spec_is_an_unexpected_message(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    client, _ = _server_final_flight(ex)
    client.receive_data(bytes((ContentType.CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 2)))
    assert_fails_with(client, AlertDescription.UNEXPECTED_MESSAGE)


def test_a_tampered_finished_record_is_a_bad_record_mac(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    client, (ccs, finished) = _server_final_flight(ex)
    tampered = finished[:-1] + bytes((finished[-1] ^ 1,))
    client.receive_data(ccs + tampered)
    assert_fails_with(client, AlertDescription.BAD_RECORD_MAC)


def _resealed(conn: Connection, content_type: int, data: bytes) -> bytes:
    """`data` sealed under the keys the peer will read our next record with."""
    read = conn._read
    assert isinstance(read, Tls12RecordProtection)
    return Tls12RecordProtection(read.params, read.key, read.iv, 0).seal(content_type, data)


def test_a_wrong_server_finished_is_a_decrypt_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    client, (ccs, _) = _server_final_flight(ex)
    client.receive_data(ccs)
    client.receive_data(_resealed(client, ContentType.HANDSHAKE, encode_finished(bytes(12))))
    assert_fails_with(client, AlertDescription.DECRYPT_ERROR)


def test_a_server_finished_of_the_wrong_length_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    client, (ccs, _) = _server_final_flight(ex)
    client.receive_data(ccs)
    client.receive_data(_resealed(client, ContentType.HANDSHAKE, encode_finished(bytes(32))))
    assert_fails_with(client, AlertDescription.DECODE_ERROR)


def test_application_data_before_the_server_finished_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    client, (ccs, _) = _server_final_flight(ex)
    client.receive_data(ccs)
    client.receive_data(_resealed(client, ContentType.APPLICATION_DATA, b"early"))
    assert_fails_with(client, AlertDescription.UNEXPECTED_MESSAGE)


# --- the server's states ------------------------------------------------------------------


def _client_hello_with(pki: EnginePKI, change: Callable[[object], object]) -> ServerConnection:
    client = ClientConnection(tls12_client(pki))
    hello = parse_client_hello(messages_of(client.data_to_send())[0][4:])
    server = ServerConnection(tls12_server(pki))
    server.receive_data(handshake_records(encode_client_hello(change(hello))))  # type: ignore[arg-type]
    return server


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        (
            lambda h: dataclasses.replace(h, legacy_compression_methods=b"\x01"),
            AlertDescription.ILLEGAL_PARAMETER,
        ),
        (
            lambda h: _extensions(h, 13, None),  # signature_algorithms
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: dataclasses.replace(h, cipher_suites=(0xC023, 0x009C)),
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: _extensions(h, Tls12ExtensionType.EC_POINT_FORMATS, b"\x01\x01"),
            AlertDescription.ILLEGAL_PARAMETER,
        ),
        (
            lambda h: _extensions(h, 10, b"\x00\x02\x01\x00"),  # supported_groups: ffdhe2048
            AlertDescription.HANDSHAKE_FAILURE,
        ),
        (
            lambda h: dataclasses.replace(
                _extensions(h, 43, None),  # no supported_versions
                legacy_version=0x0302,
            ),
            AlertDescription.PROTOCOL_VERSION,
        ),
    ],
    ids=[
        "no-null-compression",
        "no-signature-algorithms",
        "no-common-suite",
        "no-uncompressed-point-format",
        "no-common-group",
        "tls-1-1",
    ],
)
def test_bad_client_hello(
    engine_pki: EnginePKI, change: Callable[[object], object], alert: int
) -> None:
    assert_fails_with(_client_hello_with(engine_pki, change), alert)


def _client_messages(ex: Exchange) -> tuple[list[bytes], list[bytes]]:
    """The client's plaintext messages and its protected records (CCS, Finished)."""
    flight = ex.client_flight()
    records = split_records(flight)
    ccs_at = records.index(CCS)
    return messages_of(flight), records[ccs_at:]


def test_finished_instead_of_client_key_exchange_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    ex.server.receive_data(handshake_records(encode_finished(bytes(12))))
    assert_fails_with(ex.server, AlertDescription.UNEXPECTED_MESSAGE)


def test_a_change_cipher_spec_before_client_key_exchange_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki)
    ex.server.receive_data(CCS)
    assert_fails_with(ex.server, AlertDescription.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize(
    ("public", "alert"),
    [
        (bytes(32), AlertDescription.ILLEGAL_PARAMETER),
        (b"\x01\x02", AlertDescription.ILLEGAL_PARAMETER),
    ],
    ids=["all-zero-x25519", "wrong-size"],
)
def test_a_bad_client_key_exchange_point(engine_pki: EnginePKI, public: bytes, alert: int) -> None:
    ex = Exchange(engine_pki)
    body = ecdh_client_key_exchange_body(public)
    ex.server.receive_data(handshake_records(encode_client_key_exchange(body)))
    assert_fails_with(ex.server, alert)


def test_a_truncated_client_key_exchange_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    forged = handshake_message(HandshakeType.CLIENT_KEY_EXCHANGE, b"\x20" + bytes(8))
    ex.server.receive_data(handshake_records(forged))
    assert_fails_with(ex.server, AlertDescription.DECODE_ERROR)


def test_a_bad_client_certificate_verify_is_a_decrypt_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki, client_auth=True)
    (cert, cke, verify), _ = _client_messages(ex)
    forged = verify[:-1] + bytes((verify[-1] ^ 1,))
    ex.server.receive_data(handshake_records(cert, cke, forged))
    assert_fails_with(ex.server, AlertDescription.DECRYPT_ERROR)


def test_no_certificate_verify_after_a_client_certificate_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki, client_auth=True)
    (cert, cke, _), records = _client_messages(ex)
    ex.server.receive_data(handshake_records(cert, cke) + records[0])
    assert_fails_with(ex.server, AlertDescription.UNEXPECTED_MESSAGE)


def test_a_tampered_client_finished_record_is_a_bad_record_mac(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    (cke,), (ccs, finished) = _client_messages(ex)
    tampered = finished[:-1] + bytes((finished[-1] ^ 1,))
    ex.server.receive_data(handshake_records(cke) + ccs + tampered)
    assert_fails_with(ex.server, AlertDescription.BAD_RECORD_MAC)


def test_a_wrong_client_finished_is_a_decrypt_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    (cke,), (ccs, _) = _client_messages(ex)
    ex.server.receive_data(handshake_records(cke) + ccs)
    ex.server.receive_data(_resealed(ex.server, ContentType.HANDSHAKE, encode_finished(bytes(12))))
    assert_fails_with(ex.server, AlertDescription.DECRYPT_ERROR)


def test_a_second_change_cipher_spec_is_an_unexpected_message(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki)
    (cke,), (ccs, _) = _client_messages(ex)
    ex.server.receive_data(handshake_records(cke) + ccs + ccs)
    assert_fails_with(ex.server, AlertDescription.UNEXPECTED_MESSAGE)


def test_a_malformed_certificate_request_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki, client_auth=True)
    sh, cert, ske, request, _ = ex.server_messages
    assert request[0] == HandshakeType.CERTIFICATE_REQUEST
    forged = handshake_message(HandshakeType.CERTIFICATE_REQUEST, request[4:] + b"\x00")
    assert_fails_with(ex.client_fed(sh, cert, ske, forged), AlertDescription.DECODE_ERROR)


def test_a_malformed_client_certificate_is_a_decode_error(engine_pki: EnginePKI) -> None:
    ex = Exchange(engine_pki, client_auth=True)
    (cert, _, _), _ = _client_messages(ex)
    forged = handshake_message(HandshakeType.CERTIFICATE, cert[4:-1])
    ex.server.receive_data(handshake_records(forged))
    assert_fails_with(ex.server, AlertDescription.DECODE_ERROR)


def test_client_key_exchange_instead_of_a_requested_certificate_is_an_unexpected_message(
    engine_pki: EnginePKI,
) -> None:
    ex = Exchange(engine_pki, client_auth=True)
    (_, cke, _), _ = _client_messages(ex)
    ex.server.receive_data(handshake_records(cke))
    assert_fails_with(ex.server, AlertDescription.UNEXPECTED_MESSAGE)
