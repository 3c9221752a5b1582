"""TLS 1.2 handshake messages that TLS 1.3 lacks or shapes differently (RFC 5246 section 7.4,
RFC 8422 section 5): frozen dataclasses with parse and encode functions.

Wire layer only: no state, no crypto, no policy. The hellos are the version-neutral
ones in ../messages.py. Malformed input is a DecodeError (the codec's blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..codec import Reader, Writer
from ..codepoints import HandshakeType
from ..errors import DecodeError, IllegalParameter
from ..messages import handshake_message

# RFC 8422 section 5.4: "enum { ... named_curve (3), reserved(248..255) } ECCurveType;"
NAMED_CURVE = 3
# RFC 5246 section 7.4.4 / RFC 8422 section 5.5: ClientCertificateType values we ask for.
RSA_SIGN = 1
ECDSA_SIGN = 64
# RFC 5746 section 3.2 on an initial handshake: renegotiated_connection is empty.
EMPTY_RENEGOTIATION_INFO = b"\x00"


# --- Certificate ------------------------------------------------------------------


def encode_certificate(chain_der: tuple[bytes, ...]) -> bytes:
    """opaque ASN.1Cert<1..2^24-1>;
    struct { ASN.1Cert certificate_list<0..2^24-1>; } Certificate;
    """
    w = Writer()
    with w.block(3):
        for der in chain_der:
            w.opaque(3, der)
    return handshake_message(HandshakeType.CERTIFICATE, w.getvalue())


def parse_certificate(body: bytes) -> tuple[bytes, ...]:
    r = Reader(body)
    chain: list[bytes] = []
    with r.block(3) as certs:
        while not certs.eof():
            chain.append(certs.opaque(3, minimum=1))
    r.finish()
    return tuple(chain)


# --- ServerKeyExchange (ECDHE) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    """
    struct {
        ECCurveType curve_type;          /* named_curve */
        NamedCurve namedcurve;
        opaque point <1..2^8-1>;         /* ECPoint public */
    } ServerECDHParams;
    struct {
        ServerECDHParams params;
        digitally-signed struct {        /* SignatureAndHashAlgorithm + signature */
            opaque client_random[32]; opaque server_random[32]; ServerECDHParams params;
        } signed_params;
    } ServerKeyExchange;
    """

    group: int
    public: bytes
    scheme: int
    signature: bytes

    @property
    def params_bytes(self) -> bytes:
        return encode_ecdh_params(self.group, self.public)


def encode_ecdh_params(group: int, public: bytes) -> bytes:
    return bytes((NAMED_CURVE,)) + group.to_bytes(2, "big") + bytes((len(public),)) + public


def encode_server_key_exchange(exchange: ServerKeyExchange) -> bytes:
    return encode_signed_params(exchange.params_bytes, exchange.scheme, exchange.signature)


def encode_signed_params(params: bytes, scheme: int, signature: bytes) -> bytes:
    """A ServerKeyExchange: the (EC)DH parameters, then their digitally-signed struct."""
    w = Writer()
    w.raw(params)
    w.uint16(scheme)
    w.opaque(2, signature)
    return handshake_message(HandshakeType.SERVER_KEY_EXCHANGE, w.getvalue())


# --- ServerKeyExchange (DHE, RFC 5246 section 7.4.3) ----------------------------------


@dataclass(frozen=True, slots=True)
class ServerDhKeyExchange:
    """
    struct {
        opaque dh_p<1..2^16-1>;
        opaque dh_g<1..2^16-1>;
        opaque dh_Ys<1..2^16-1>;
    } ServerDHParams;     /* Ephemeral DH parameters */
    """

    p: int
    g: int
    ys: bytes
    scheme: int
    signature: bytes
    # The ServerDHParams exactly as sent: what the signature covers.
    params_bytes: bytes


def _minimal(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def encode_dh_params(p: int, g: int, ys: bytes) -> bytes:
    """ServerDHParams with p and g minimal, and Ys without leading zero bytes (as OpenSSL)."""
    w = Writer()
    w.opaque(2, _minimal(p))
    w.opaque(2, _minimal(g))
    w.opaque(2, ys.lstrip(b"\x00") or b"\x00")
    return w.getvalue()


def parse_server_dh_key_exchange(body: bytes) -> ServerDhKeyExchange:
    r = Reader(body)
    p = int.from_bytes(r.opaque(2, minimum=1), "big")
    g = int.from_bytes(r.opaque(2, minimum=1), "big")
    ys = r.opaque(2, minimum=1)
    params_len = len(body) - r.remaining()
    scheme = r.uint16()
    signature = r.opaque(2)
    r.finish()
    return ServerDhKeyExchange(p, g, ys, scheme, signature, body[:params_len])


def parse_server_key_exchange(body: bytes) -> ServerKeyExchange:
    r = Reader(body)
    curve_type = r.uint8()
    if curve_type != NAMED_CURVE:
        # RFC 8422 section 5.4: explicit curves are deprecated; only named_curve is defined.
        raise IllegalParameter("ServerKeyExchange curve_type is not named_curve")
    group = r.uint16()
    public = r.opaque(1, minimum=1)
    scheme = r.uint16()
    signature = r.opaque(2)
    r.finish()
    return ServerKeyExchange(group, public, scheme, signature)


# --- CertificateRequest ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """
    struct {
        ClientCertificateType certificate_types<1..2^8-1>;
        SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>;
        DistinguishedName certificate_authorities<0..2^16-1>;
    } CertificateRequest;
    """

    certificate_types: bytes
    signature_algorithms: tuple[int, ...]


def encode_certificate_request(request: CertificateRequest) -> bytes:
    w = Writer()
    w.opaque(1, request.certificate_types)
    w.uint16_list(2, request.signature_algorithms)
    w.uint16(0)  # no certificate_authorities
    return handshake_message(HandshakeType.CERTIFICATE_REQUEST, w.getvalue())


def parse_certificate_request(body: bytes) -> CertificateRequest:
    r = Reader(body)
    types = r.opaque(1, minimum=1)
    algorithms = r.uint16_list(2, minimum=2)
    with r.block(2) as names:
        while not names.eof():
            names.opaque(2, minimum=1)
    r.finish()
    return CertificateRequest(types, algorithms)


# --- ServerHelloDone, ClientKeyExchange, CertificateVerify, Finished ------------------


SERVER_HELLO_DONE = handshake_message(HandshakeType.SERVER_HELLO_DONE, b"")


def parse_server_hello_done(body: bytes) -> None:
    """struct { } ServerHelloDone;"""
    if body:
        raise DecodeError("ServerHelloDone is not empty")


def ecdh_client_key_exchange_body(public: bytes) -> bytes:
    """struct { opaque point <1..2^8-1>; } ClientECDiffieHellmanPublic (RFC 8422 section 5.7)."""
    return bytes((len(public),)) + public


def opaque16_client_key_exchange_body(value: bytes) -> bytes:
    """opaque dh_Yc<1..2^16-1> (ClientDiffieHellmanPublic), or the RSA EncryptedPreMasterSecret
    (RFC 5246 section 7.4.7.1: "public-key-encrypted PreMasterSecret pre_master_secret")."""
    return len(value).to_bytes(2, "big") + value


def encode_client_key_exchange(body: bytes) -> bytes:
    """The ClientKeyExchange message around a body made by one of the two functions above."""
    return handshake_message(HandshakeType.CLIENT_KEY_EXCHANGE, body)


def parse_client_key_exchange(body: bytes) -> bytes:
    """The ECDHE point of a ClientKeyExchange."""
    r = Reader(body)
    public = r.opaque(1, minimum=1)
    r.finish()
    return public


def parse_client_key_exchange16(body: bytes) -> bytes:
    """dh_Yc or the RSA-encrypted premaster secret of a ClientKeyExchange."""
    r = Reader(body)
    value = r.opaque(2, minimum=1)
    r.finish()
    return value


def encode_certificate_verify(scheme: int, signature: bytes) -> bytes:
    """struct { digitally-signed struct { opaque handshake_messages[...]; } } CertificateVerify;"""
    w = Writer()
    w.uint16(scheme)
    w.opaque(2, signature)
    return handshake_message(HandshakeType.CERTIFICATE_VERIFY, w.getvalue())


def parse_certificate_verify(body: bytes) -> tuple[int, bytes]:
    r = Reader(body)
    scheme = r.uint16()
    signature = r.opaque(2)
    r.finish()
    return scheme, signature


def encode_finished(verify_data: bytes) -> bytes:
    """struct { opaque verify_data[verify_data_length]; } Finished;"""
    return handshake_message(HandshakeType.FINISHED, verify_data)


def parse_ec_point_formats(data: bytes) -> bytes:
    """ECPointFormat ec_point_format_list<1..2^8-1> (RFC 8422 section 5.1.2)."""
    r = Reader(data)
    formats = r.opaque(1, minimum=1)
    r.finish()
    return formats


def parse_renegotiation_info(data: bytes) -> bytes:
    """struct { opaque renegotiated_connection<0..255>; } RenegotiationInfo;"""
    r = Reader(data)
    value = r.opaque(1)
    r.finish()
    return value
