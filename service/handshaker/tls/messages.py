"""TLS 1.3 handshake messages: frozen dataclasses with parse and encode functions.

Wire layer only: no state, no crypto, no policy. The extensions a peer may send
in each message are parsed into typed fields here, with the bodies of
extensions.py; a parsed message re-encodes to the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .codec import Reader, Writer, uint16_array
from .codepoints import ExtensionType, HandshakeType
from .errors import DecodeError, IllegalParameter
from .extensions import (
    TOO_SHORT,
    TRAILING,
    TRUNCATED,
    Extensions,
    KeyShareEntry,
    extensions_block,
    parse_alpn,
    parse_certificate_authorities,
    parse_client_key_shares,
    parse_empty,
    parse_offered_psks,
    parse_oid_filters,
    parse_opaque,
    parse_server_name,
    parse_uint8_list,
    parse_uint16,
    parse_uint16_list,
    read_extensions,
    write_extensions,
)
from .fastinit import fast_frozen_init

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_CERTIFICATE = HandshakeType.CERTIFICATE
_CERTIFICATE_AUTHORITIES = ExtensionType.CERTIFICATE_AUTHORITIES
_CERTIFICATE_REQUEST = HandshakeType.CERTIFICATE_REQUEST
_CERTIFICATE_VERIFY = HandshakeType.CERTIFICATE_VERIFY
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_ENCRYPTED_EXTENSIONS = HandshakeType.ENCRYPTED_EXTENSIONS
_FINISHED = HandshakeType.FINISHED
_MESSAGE_HASH = HandshakeType.MESSAGE_HASH
_OID_FILTERS = ExtensionType.OID_FILTERS
_PRE_SHARED_KEY = ExtensionType.PRE_SHARED_KEY
_SERVER_HELLO = HandshakeType.SERVER_HELLO
_SIGNATURE_ALGORITHMS = ExtensionType.SIGNATURE_ALGORITHMS
_SIGNATURE_ALGORITHMS_CERT = ExtensionType.SIGNATURE_ALGORITHMS_CERT

# RFC 8446 section 4.1.3: the ServerHello random of a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
)


def handshake_message(msg_type: int, body: bytes) -> bytes:
    """struct { HandshakeType msg_type; uint24 length; ... } Handshake;"""
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


# --- ClientHello --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientHello:
    """
    struct {
        ProtocolVersion legacy_version = 0x0303;
        Random random;
        opaque legacy_session_id<0..32>;
        CipherSuite cipher_suites<2..2^16-2>;
        opaque legacy_compression_methods<1..2^8-1>;
        Extension extensions<8..2^16-1>;
    } ClientHello;
    """

    legacy_version: int
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    legacy_compression_methods: bytes
    extensions: Extensions
    # Typed views of the extensions a server acts on (None: extension absent).
    server_name: str | None = None
    supported_versions: tuple[int, ...] | None = None
    supported_groups: tuple[int, ...] | None = None
    key_shares: tuple[KeyShareEntry, ...] | None = None
    signature_algorithms: tuple[int, ...] | None = None
    signature_algorithms_cert: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] | None = None
    cookie: bytes | None = None
    psk_key_exchange_modes: tuple[int, ...] | None = None
    record_size_limit: int | None = None
    has_pre_shared_key: bool = False
    has_early_data: bool = False


fast_frozen_init(ClientHello)


def _present(parse: Callable[[bytes], object]) -> Callable[[bytes], bool]:
    """For an extension whose presence is the fact: check its syntax, record True."""

    def check(data: bytes) -> bool:
        parse(data)
        return True

    return check


def _check_padding(data: bytes) -> None:
    if data.count(0) != len(data):
        raise IllegalParameter("padding extension is not all zeros")


# ClientHello extension -> (ClientHello field it fills, or None: syntax checked only; parser).
# Extensions not listed are kept in `extensions` unparsed (GREASE-safe).
_CLIENT_HELLO_EXTENSIONS: dict[int, tuple[str | None, Callable[[bytes], object]]] = {
    ExtensionType.SERVER_NAME: ("server_name", parse_server_name),
    ExtensionType.SUPPORTED_VERSIONS: (
        "supported_versions",
        lambda data: parse_uint16_list(data, size=1),
    ),
    ExtensionType.SUPPORTED_GROUPS: ("supported_groups", parse_uint16_list),
    ExtensionType.KEY_SHARE: ("key_shares", parse_client_key_shares),
    ExtensionType.SIGNATURE_ALGORITHMS: ("signature_algorithms", parse_uint16_list),
    ExtensionType.SIGNATURE_ALGORITHMS_CERT: ("signature_algorithms_cert", parse_uint16_list),
    ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: ("alpn_protocols", parse_alpn),
    ExtensionType.COOKIE: ("cookie", lambda data: parse_opaque(data, 2, minimum=1)),
    ExtensionType.PSK_KEY_EXCHANGE_MODES: ("psk_key_exchange_modes", parse_uint8_list),
    ExtensionType.RECORD_SIZE_LIMIT: ("record_size_limit", parse_uint16),
    ExtensionType.PRE_SHARED_KEY: ("has_pre_shared_key", _present(parse_offered_psks)),
    ExtensionType.EARLY_DATA: ("has_early_data", _present(parse_empty)),
    # Section 4.2.6: 'The "extension_data" field ... is zero length.'
    ExtensionType.POST_HANDSHAKE_AUTH: (None, parse_empty),
    ExtensionType.CERTIFICATE_AUTHORITIES: (None, parse_certificate_authorities),
    ExtensionType.PADDING: (None, _check_padding),
}


# The same table by the position of each field in ClientHello's __init__ (after its six
# fixed fields), so the parser fills a list and passes it positionally (no keyword dict).
_TYPED_FIELDS = tuple(f.name for f in dataclasses.fields(ClientHello))[6:]
_TYPED_DEFAULTS: tuple[Any, ...] = tuple(f.default for f in dataclasses.fields(ClientHello))[6:]
_CLIENT_HELLO_PARSERS: dict[int, tuple[int, Callable[[bytes], object]]] = {
    ext_type: (-1 if name is None else _TYPED_FIELDS.index(name), parse)
    for ext_type, (name, parse) in _CLIENT_HELLO_EXTENSIONS.items()
}


def parse_client_hello(body: bytes) -> ClientHello:
    # The fixed head is read inline, with the Reader's checks in its order and words
    # (uint16 version, 32-byte random, opaque<0..32>, uint16 list, opaque<1..2^8-1>).
    size = len(body)
    if size < 35:
        raise DecodeError(TRUNCATED)
    pos = 35 + body[34]
    if pos > size:
        raise DecodeError(TRUNCATED)
    if pos - 35 > 32:
        raise DecodeError("legacy_session_id longer than 32 bytes")
    if pos + 2 > size:
        raise DecodeError(TRUNCATED)
    n = (body[pos] << 8) | body[pos + 1]
    if n < 2 or n % 2:
        raise DecodeError("malformed list of 16-bit values")
    suites_start = pos + 2
    suites_end = suites_start + n
    if suites_end + 1 > size:
        raise DecodeError(TRUNCATED)
    n = body[suites_end]
    if n < 1:
        raise DecodeError(TOO_SHORT)
    compression_start = suites_end + 1
    pos = compression_start + n
    if pos > size:
        raise DecodeError(TRUNCATED)
    r = Reader(body, pos)
    extensions = read_extensions(r, required=False)
    r.finish()
    # RFC 8446 section 4.2.11: pre_shared_key "MUST be the last extension in the ClientHello".
    for ext_type, _ in extensions[:-1]:
        if ext_type == _PRE_SHARED_KEY:
            raise IllegalParameter("pre_shared_key is not the last extension")
    values = list(_TYPED_DEFAULTS)
    table = _CLIENT_HELLO_PARSERS
    for ext_type, data in extensions:
        entry = table.get(ext_type)
        if entry is not None:
            index, parse = entry
            value = parse(data)
            if index >= 0:
                values[index] = value
    return ClientHello(
        (body[0] << 8) | body[1],
        body[2:34],
        body[35 : 35 + body[34]],
        uint16_array((suites_end - suites_start) >> 1).unpack_from(body, suites_start),
        body[compression_start:pos],
        extensions,
        *values,
    )


def encode_client_hello(hello: ClientHello) -> bytes:
    suites = hello.cipher_suites
    session_id = hello.legacy_session_id
    compression = hello.legacy_compression_methods
    body = b"".join(
        (
            hello.legacy_version.to_bytes(2, "big"),
            hello.random,
            len(session_id).to_bytes(1, "big"),
            session_id,
            (2 * len(suites)).to_bytes(2, "big"),
            uint16_array(len(suites)).pack(*suites),
            len(compression).to_bytes(1, "big"),
            compression,
            extensions_block(hello.extensions),
        )
    )
    return handshake_message(_CLIENT_HELLO, body)


# --- ServerHello and HelloRetryRequest ---------------------------------------


@dataclass(frozen=True, slots=True)
class ServerHello:
    """
    struct {
        ProtocolVersion legacy_version = 0x0303;
        Random random;
        opaque legacy_session_id_echo<0..32>;
        CipherSuite cipher_suite;
        uint8 legacy_compression_method = 0;
        Extension extensions<6..2^16-1>;
    } ServerHello;
    """

    legacy_version: int
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    legacy_compression_method: int
    extensions: Extensions

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM


fast_frozen_init(ServerHello)


def parse_server_hello(body: bytes) -> ServerHello:
    # The fixed head is read inline, with the Reader's checks in its order and words.
    size = len(body)
    if size < 35:
        raise DecodeError(TRUNCATED)
    session_end = 35 + body[34]
    if session_end > size:
        raise DecodeError(TRUNCATED)
    if session_end - 35 > 32:
        raise DecodeError("legacy_session_id_echo longer than 32 bytes")
    if session_end + 3 > size:
        raise DecodeError(TRUNCATED)
    r = Reader(body, session_end + 3)
    extensions = read_extensions(r, required=False)
    r.finish()
    return ServerHello(
        (body[0] << 8) | body[1],
        body[2:34],
        body[35:session_end],
        (body[session_end] << 8) | body[session_end + 1],
        body[session_end + 2],
        extensions,
    )


def encode_server_hello(hello: ServerHello) -> bytes:
    return server_hello_message(
        legacy_version=hello.legacy_version,
        random=hello.random,
        legacy_session_id_echo=hello.legacy_session_id_echo,
        cipher_suite=hello.cipher_suite,
        legacy_compression_method=hello.legacy_compression_method,
        extensions=hello.extensions,
    )


def server_hello_message(
    *,
    legacy_version: int,
    random: bytes,
    legacy_session_id_echo: bytes,
    cipher_suite: int,
    legacy_compression_method: int,
    extensions: Extensions,
) -> bytes:
    """encode_server_hello from the fields, for the server's own hello (no dataclass made)."""
    body = b"".join(
        (
            legacy_version.to_bytes(2, "big"),
            random,
            len(legacy_session_id_echo).to_bytes(1, "big"),
            legacy_session_id_echo,
            cipher_suite.to_bytes(2, "big"),
            legacy_compression_method.to_bytes(1, "big"),
            extensions_block(extensions),
        )
    )
    return handshake_message(_SERVER_HELLO, body)


# --- EncryptedExtensions -------------------------------------------------------


def parse_encrypted_extensions(body: bytes) -> Extensions:
    """struct { Extension extensions<0..2^16-1>; } EncryptedExtensions;"""
    r = Reader(body)
    extensions = read_extensions(r)
    r.finish()
    return extensions


def encode_encrypted_extensions(extensions: Extensions) -> bytes:
    w = Writer()
    write_extensions(w, extensions)
    return handshake_message(_ENCRYPTED_EXTENSIONS, w.getvalue())


# --- CertificateRequest ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """
    struct {
        opaque certificate_request_context<0..2^8-1>;
        Extension extensions<2..2^16-1>;
    } CertificateRequest;
    """

    certificate_request_context: bytes
    extensions: Extensions


def parse_certificate_request(body: bytes) -> CertificateRequest:
    r = Reader(body)
    context = r.opaque(1)
    extensions = read_extensions(r, minimum=2)
    r.finish()
    # The extensions the client does not act on are parsed too, so a malformed one is
    # decode_error rather than silently ignored.
    for ext_type, data in extensions:
        if ext_type in (
            _SIGNATURE_ALGORITHMS,
            _SIGNATURE_ALGORITHMS_CERT,
        ):
            parse_uint16_list(data)
        elif ext_type == _CERTIFICATE_AUTHORITIES:
            parse_certificate_authorities(data)
        elif ext_type == _OID_FILTERS:
            parse_oid_filters(data)
    return CertificateRequest(context, extensions)


def encode_certificate_request(request: CertificateRequest) -> bytes:
    w = Writer()
    w.opaque(1, request.certificate_request_context)
    write_extensions(w, request.extensions)
    return handshake_message(_CERTIFICATE_REQUEST, w.getvalue())


# --- Certificate -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    cert_data: bytes
    extensions: Extensions


fast_frozen_init(CertificateEntry)


@dataclass(frozen=True, slots=True)
class Certificate:
    """
    struct {
        opaque certificate_request_context<0..2^8-1>;
        CertificateEntry certificate_list<0..2^24-1>;
    } Certificate;
    """

    certificate_request_context: bytes
    certificate_list: tuple[CertificateEntry, ...]


fast_frozen_init(Certificate)


def parse_certificate(body: bytes) -> Certificate:
    r = Reader(body)
    context = r.opaque(1)
    entries: list[CertificateEntry] = []
    with r.block(3) as certs:
        while not certs.eof():
            cert_data = certs.opaque(3, minimum=1)
            entries.append(CertificateEntry(cert_data, read_extensions(certs)))
    r.finish()
    return Certificate(context, tuple(entries))


def encode_certificate(context: bytes, chain_der: tuple[bytes, ...]) -> bytes:
    w = Writer()
    w.opaque(1, context)
    with w.block(3):
        for der in chain_der:
            w.opaque(3, der)
            w.uint16(0)  # no per-certificate extensions
    return handshake_message(_CERTIFICATE, w.getvalue())


# --- CertificateVerify and Finished --------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    """struct { SignatureScheme algorithm; opaque signature<0..2^16-1>; } CertificateVerify;"""

    algorithm: int
    signature: bytes


fast_frozen_init(CertificateVerify)


def parse_certificate_verify(body: bytes) -> CertificateVerify:
    # Read inline, as the Reader would. opaque signature<0..2^16-1>: an empty signature
    # parses, and then fails to verify.
    size = len(body)
    if size < 4:
        raise DecodeError(TRUNCATED)
    end = 4 + ((body[2] << 8) | body[3])
    if end != size:
        raise DecodeError(TRUNCATED if end > size else TRAILING)
    return CertificateVerify((body[0] << 8) | body[1], body[4:end])


def encode_certificate_verify(verify: CertificateVerify) -> bytes:
    return certificate_verify_message(verify.algorithm, verify.signature)


def certificate_verify_message(algorithm: int, signature: bytes) -> bytes:
    """encode_certificate_verify from the fields (no dataclass made for our own)."""
    body = algorithm.to_bytes(2, "big") + len(signature).to_bytes(2, "big") + signature
    return handshake_message(_CERTIFICATE_VERIFY, body)


def encode_finished(verify_data: bytes) -> bytes:
    """struct { opaque verify_data[Hash.length]; } Finished;"""
    return handshake_message(_FINISHED, verify_data)


def message_hash(hash_of_client_hello1: bytes) -> bytes:
    """The synthetic message that replaces ClientHello1 in the transcript after an HRR.

    Transcript-Hash(ClientHello1, HelloRetryRequest, ... Mn) =
        Hash(message_hash ||        /* Handshake type */
             00 00 Hash.length  ||  /* Handshake message length (bytes) */
             Hash(ClientHello1) ||  /* Hash of ClientHello1 */
             HelloRetryRequest  || ... || Mn)
    """
    return handshake_message(_MESSAGE_HASH, hash_of_client_hello1)
