"""Wire codec: real messages round-trip byte for byte; truncation is always decode_error."""

from __future__ import annotations

import pytest
from engine_kit import EnginePKI, Trace, client_config, split_messages, split_records
from handshaker.tls import ClientConnection, ContentType, NamedGroup
from handshaker.tls.codec import Reader, Writer
from handshaker.tls.codepoints import ExtensionType, HandshakeType
from handshaker.tls.errors import DecodeError, IllegalParameter
from handshaker.tls.extensions import parse_alpn, parse_server_name
from handshaker.tls.messages import (
    encode_certificate,
    encode_certificate_verify,
    encode_client_hello,
    encode_encrypted_extensions,
    encode_server_hello,
    parse_certificate,
    parse_certificate_verify,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
)


def _client_hello_message(pki: EnginePKI, **overrides: object) -> bytes:
    client = ClientConnection(client_config(pki, **overrides))
    (record,) = split_records(client.data_to_send())
    (message,) = split_messages(record[5:])
    return message


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"alpn_protocols": (b"h2", b"http/1.1"), "record_size_limit": 1000},
        {"middlebox_compatibility": False, "key_share_groups": (NamedGroup.SECP521R1,)},
        {"padding_to": 512},
        {"server_name": "127.0.0.1"},
    ],
    ids=["default", "alpn-limit", "plain-p521", "padded", "ip"],
)
def test_client_hello_round_trips(engine_pki: EnginePKI, overrides: dict[str, object]) -> None:
    message = _client_hello_message(engine_pki, **overrides)
    hello = parse_client_hello(message[4:])
    assert encode_client_hello(hello) == message


def test_client_hello_typed_fields_match_the_config(engine_pki: EnginePKI) -> None:
    # A TLS 1.3-only client: its ClientHello is exactly what it was before TLS 1.2 arrived.
    config = client_config(
        engine_pki, alpn_protocols=(b"h2",), record_size_limit=4000, min_version=0x0304
    )
    client = ClientConnection(config)
    (record,) = split_records(client.data_to_send())
    hello = parse_client_hello(record[9:])
    assert hello.server_name == config.server_name
    assert hello.supported_versions == (0x0304,)
    assert hello.supported_groups == config.supported_groups
    assert [g for g, _ in hello.key_shares or ()] == list(config.key_share_groups)
    assert hello.signature_algorithms == config.signature_schemes
    assert hello.signature_algorithms_cert == config.certificate_signature_schemes
    assert hello.alpn_protocols == (b"h2",)
    assert hello.record_size_limit == 4000
    assert hello.cipher_suites == config.cipher_suites
    assert {t for t, _ in hello.extensions} & {11, 23, 0xFF01} == set()


def test_the_default_client_hello_also_offers_tls_1_2(engine_pki: EnginePKI) -> None:
    # Since issue 10: supported_versions 1.3 then 1.2, the TLS 1.2 suites after the 1.3
    # ones, RSASSA-PKCS1-v1_5 after the TLS 1.3 schemes, and TLS 1.2's extensions.
    config = client_config(engine_pki)
    (record,) = split_records(ClientConnection(config).data_to_send())
    hello = parse_client_hello(record[9:])
    assert hello.supported_versions == (0x0304, 0x0303)
    assert hello.cipher_suites == config.cipher_suites + config.tls12_cipher_suites
    assert hello.signature_algorithms == (config.signature_schemes + config.tls12_signature_schemes)
    extensions = dict(hello.extensions)
    assert extensions[11] == b"\x01\x00"  # ec_point_formats: uncompressed
    assert extensions[23] == b""  # extended_master_secret
    assert extensions[0xFF01] == b"\x00"  # renegotiation_info, empty


def test_padding_reaches_the_requested_size(engine_pki: EnginePKI) -> None:
    message = _client_hello_message(
        engine_pki, padding_to=700, key_share_groups=(NamedGroup.X25519,)
    )
    assert len(message) >= 700
    assert ExtensionType.PADDING in dict(parse_client_hello(message[4:]).extensions)


def test_server_hello_round_trips(trace: Trace) -> None:
    (message,) = split_messages(trace.server_plaintext_records()[0][5:])
    hello = parse_server_hello(message[4:])
    assert encode_server_hello(hello) == message
    assert not hello.is_hello_retry_request


def test_encrypted_extensions_round_trips(trace: Trace) -> None:
    message = trace.server_messages()[0]
    assert message[0] == HandshakeType.ENCRYPTED_EXTENSIONS
    assert encode_encrypted_extensions(parse_encrypted_extensions(message[4:])) == message


def test_certificate_round_trips(trace: Trace, engine_pki: EnginePKI) -> None:
    message = trace.server_messages()[1]
    certificate = parse_certificate(message[4:])
    chain = tuple(entry.cert_data for entry in certificate.certificate_list)
    assert chain == engine_pki.servers["ed25519"].chain_der
    assert encode_certificate(certificate.certificate_request_context, chain) == message


def test_certificate_verify_round_trips(trace: Trace) -> None:
    message = trace.server_messages()[2]
    verify = parse_certificate_verify(message[4:])
    assert verify.algorithm == trace.client_result.peer_signature_scheme
    assert encode_certificate_verify(verify) == message


def test_client_certificate_round_trips(trace_client_auth: Trace, engine_pki: EnginePKI) -> None:
    message = trace_client_auth.client_messages()[0]
    certificate = parse_certificate(message[4:])
    chain = tuple(entry.cert_data for entry in certificate.certificate_list)
    assert chain == engine_pki.clients["ed25519"].chain_der
    assert encode_certificate(b"", chain) == message


def test_every_truncation_of_a_client_hello_is_a_decode_error(engine_pki: EnginePKI) -> None:
    body = _client_hello_message(engine_pki, key_share_groups=(NamedGroup.X25519,))[4:]
    hello = parse_client_hello(body)
    # A ClientHello that ends right after its compression methods has no extensions
    # block at all, which the grammar allows; every other cut is a truncation.
    without_extensions = len(body) - 2 - sum(4 + len(data) for _, data in hello.extensions)
    for cut in range(len(body)):
        if cut == without_extensions:
            assert parse_client_hello(body[:cut]).extensions == ()
            continue
        with pytest.raises(DecodeError):
            parse_client_hello(body[:cut])


def test_every_truncation_of_a_server_hello_is_a_decode_error(trace: Trace) -> None:
    body = trace.server_plaintext_records()[0][9:]
    hello = parse_server_hello(body)
    without_extensions = len(body) - 2 - sum(4 + len(data) for _, data in hello.extensions)
    for cut in range(len(body)):
        if cut == without_extensions:
            continue
        with pytest.raises(DecodeError):
            parse_server_hello(body[:cut])


def test_trailing_bytes_after_a_message_are_a_decode_error(trace: Trace) -> None:
    body = trace.server_plaintext_records()[0][9:]
    with pytest.raises(DecodeError):
        parse_server_hello(body + b"\x00")


def test_duplicate_extension_is_an_illegal_parameter_in_the_parser() -> None:
    extensions = b"\x00\x10\x00\x00\x00\x10\x00\x00"
    with pytest.raises(IllegalParameter):
        parse_encrypted_extensions(len(extensions).to_bytes(2, "big") + extensions)


def test_reader_reads_big_endian_integers_and_vectors() -> None:
    reader = Reader(bytes.fromhex("01 0203 040506 0708090a 02 aabb 0003 ccddee"))
    assert reader.uint8() == 1
    assert reader.uint16() == 0x0203
    assert reader.uint24() == 0x040506
    assert reader.uint32() == 0x0708090A
    assert reader.opaque(1) == b"\xaa\xbb"
    with reader.block(2) as block:
        assert block.raw(3) == b"\xcc\xdd\xee"
    assert reader.eof()
    reader.finish()


@pytest.mark.parametrize(
    "read",
    [
        lambda r: r.uint16(),
        lambda r: r.uint24(),
        lambda r: r.uint32(),
        lambda r: r.raw(2),
        lambda r: r.opaque(1),
        lambda r: r.block(1),
        lambda r: r.uint16_list(1),
    ],
    ids=["uint16", "uint24", "uint32", "raw", "opaque", "block", "uint16_list"],
)
def test_reader_truncation_is_a_decode_error(read: object) -> None:
    reader = Reader(b"\x05")
    with pytest.raises(DecodeError):
        read(reader)  # type: ignore[operator]


def test_reader_vector_below_its_minimum_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x00").opaque(1, minimum=1)
    with pytest.raises(DecodeError):
        Reader(b"\x01\x00").block(1, minimum=2)


def test_reader_odd_length_uint16_list_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x03\x00\x01\x02").uint16_list(1)


def test_reader_block_with_leftover_bytes_is_a_decode_error() -> None:
    reader = Reader(b"\x03\x00\x01\x02")
    with pytest.raises(DecodeError), reader.block(1) as block:
        block.uint16()


def test_reader_finish_with_leftover_bytes_is_a_decode_error() -> None:
    reader = Reader(b"\x00\x01\x02")
    reader.uint16()
    with pytest.raises(DecodeError):
        reader.finish()


def test_reader_block_stays_inside_its_vector() -> None:
    reader = Reader(b"\x01\xaa\xbb")
    block = reader.block(1)
    assert block.raw(1) == b"\xaa"
    with pytest.raises(DecodeError):
        block.uint8()
    assert reader.raw(1) == b"\xbb"


def test_writer_fills_in_block_lengths() -> None:
    writer = Writer()
    with writer.block(2):
        writer.uint8(1)
        with writer.block(1):
            writer.raw(b"abc")
    writer.uint16_list(1, (0x1301, 0x1302))
    writer.uint24(7)
    assert writer.getvalue() == bytes.fromhex("0005 01 03 616263 04 1301 1302 000007")


def test_writer_refuses_a_vector_too_long_for_its_prefix() -> None:
    writer = Writer()
    with pytest.raises(ValueError), writer.block(1):
        writer.raw(bytes(256))


def test_server_name_and_alpn_extension_parsers() -> None:
    assert parse_server_name(bytes.fromhex("000c 00 0009 6c6f63616c686f7374")) == "localhost"
    assert parse_alpn(bytes.fromhex("0007 02 6832 03 616263")) == (b"h2", b"abc")
    with pytest.raises(DecodeError):
        parse_alpn(bytes.fromhex("0003 00 6832"))
    with pytest.raises(DecodeError):
        parse_server_name(bytes.fromhex("0000"))


def test_plaintext_record_helper_matches_the_record_layer() -> None:
    from handshaker.tls.framing import RecordReader, plaintext_records

    data = bytes(range(256)) * 100
    records = plaintext_records(ContentType.HANDSHAKE, data)
    reader = RecordReader()
    reader.feed(records)
    fragments = [record[5:] for _, record in reader.records()]
    assert b"".join(fragments) == data
    assert max(len(f) for f in fragments) == 2**14
    assert reader.pending() == b""
