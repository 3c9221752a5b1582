"""The TLS 1.2 client (RFC 5246 section 7.3): one class per step, each returning the next.

    handle_server_hello     (called by the version-neutral client_hello.ExpectServerHello)
    ExpectCertificate
    ExpectServerKeyExchange         (not for the RSA key exchange, rsa_kex.py)
    ExpectCertificateRequest        (a CertificateRequest, or straight to ServerHelloDone)
    ExpectServerHelloDone   -> [Certificate,] ClientKeyExchange, [CertificateVerify,]
                               ChangeCipherSpec, Finished sent
    ExpectChangeCipherSpec          (the core hands it the server's CCS)
    ExpectFinished          -> complete

States hold a common.Handshake of plain fields (tls12/snapshot.py writes it) and the
config. Our CertificateVerify is signed through sign_then, so it may wait for a
private-key operation. All randomness comes from the connection's RNG.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..certificates import load_chain
from ..codepoints import (
    ExtensionType,
    HandshakeType,
    Tls12ExtensionType,
)
from ..config import ClientConfig
from ..core import Connection, ExpectsChangeCipherSpec, HandshakeState
from ..errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    UnsupportedCertificate,
    UnsupportedExtension,
)
from ..extensions import parse_alpn, parse_uint16
from ..groups import KeyShare
from ..keyops import sign_then
from ..messages import ClientHello, ServerHello
from ..sigschemes import SCHEMES
from ..versions import offers_tls13, signature_algorithms
from . import dhe, prf, rsa_kex
from .common import (
    DOWNGRADE_TLS12,
    Handshake,
    Secrets,
    Transcript,
    expect,
    handshake_result,
    server_params_content,
    signing_schemes,
    verify_signature,
)
from .messages import (
    ECDSA_SIGN,
    RSA_SIGN,
    ecdh_client_key_exchange_body,
    encode_certificate,
    encode_certificate_verify,
    encode_client_key_exchange,
    encode_ecdh_params,
    opaque16_client_key_exchange_body,
    parse_certificate,
    parse_certificate_request,
    parse_ec_point_formats,
    parse_renegotiation_info,
    parse_server_dh_key_exchange,
    parse_server_hello_done,
    parse_server_key_exchange,
)
from .suites import TLS12_DHE_GROUPS, TLS12_GROUPS, Authentication, KeyExchange

# RFC 8446 section 4.1.3: the sentinel of a TLS 1.3 server negotiating TLS 1.1 or below.
DOWNGRADE_TLS11 = bytes.fromhex("444F574E47524400")
_ALLOWED_SERVER_HELLO = frozenset(
    {
        ExtensionType.SERVER_NAME,
        ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
        Tls12ExtensionType.EC_POINT_FORMATS,
        Tls12ExtensionType.EXTENDED_MASTER_SECRET,
        Tls12ExtensionType.RENEGOTIATION_INFO,
        ExtensionType.RECORD_SIZE_LIMIT,
    }
)


def handle_server_hello(
    conn: Connection,
    *,
    config: ClientConfig,
    hello: ClientHello,
    hello_message: bytes,
    server_hello: ServerHello,
    message: bytes,
) -> HandshakeState:
    """The server chose TLS 1.2 (no supported_versions, legacy_version 0x0303)."""
    conn.ccs_allowed = False  # from here a change_cipher_spec is a real step (core.py)
    random = server_hello.random
    if offers_tls13(config) and random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):
        # RFC 8446 section 4.1.3: "If a match is found, the client MUST abort the
        # handshake with an "illegal_parameter" alert."
        raise IllegalParameter("TLS 1.3 downgrade sentinel in a TLS 1.2 ServerHello")
    if server_hello.cipher_suite not in config.tls12_cipher_suites:
        raise IllegalParameter("server selected a TLS 1.2 cipher suite we did not offer")
    if server_hello.legacy_compression_method != 0:
        raise IllegalParameter("non-null compression method")
    if hello.legacy_session_id and server_hello.legacy_session_id_echo == hello.legacy_session_id:
        # Our session id is a random one (RFC 8446 appendix D.4); no server can have it
        # cached, so an echo claims a resumption of a session that never existed.
        raise IllegalParameter("server resumed a session we never had")
    extensions = _server_hello_extensions(config, hello, server_hello)
    alpn_protocol = _selected_alpn(config, extensions)
    peer_limit = 2**14
    record_size_limit = extensions.get(ExtensionType.RECORD_SIZE_LIMIT)
    if record_size_limit is not None:
        limit = parse_uint16(record_size_limit)
        if limit < 64:
            # RFC 8449 section 4: "MUST be treated as a fatal error ... illegal_parameter".
            raise IllegalParameter("record_size_limit below 64")
        # RFC 8449 section 4: in TLS 1.2 the limit counts the plaintext alone.
        peer_limit = min(limit, 2**14)
        conn.write_fragment_limit = peer_limit
        if config.record_size_limit is not None:
            conn.read_fragment_limit = min(config.record_size_limit, 2**14)
    handshake = Handshake(
        suite=server_hello.cipher_suite,
        client_random=hello.random,
        server_random=random,
        transcript=Transcript([hello_message, message]),
        group=0,
        extended_master_secret=Tls12ExtensionType.EXTENDED_MASTER_SECRET in extensions,
        alpn_protocol=alpn_protocol,
        server_name=config.server_name,
        peer_record_size_limit=peer_limit,
    )
    return ExpectCertificate(config, handshake)


def _server_hello_extensions(
    config: ClientConfig, hello: ClientHello, server_hello: ServerHello
) -> dict[int, bytes]:
    """The ServerHello's extensions by type, each one we offered, and the ones that must
    be empty or carry one value checked (RFC 5246, 5746, 7627, 8422)."""
    offered = frozenset(t for t, _ in hello.extensions)
    extensions = dict(server_hello.extensions)
    for ext_type in extensions:
        if ext_type not in offered or ext_type not in _ALLOWED_SERVER_HELLO:
            # RFC 5246 section 7.4.1.4: an extension we did not offer is unsupported_extension.
            raise UnsupportedExtension(f"extension {ext_type} was not offered")
    renegotiation = extensions.get(Tls12ExtensionType.RENEGOTIATION_INFO)
    if renegotiation is None:
        # RFC 5746 section 4.1 lets a client go on with a server without secure
        # renegotiation; we do not: every live TLS 1.2 stack sends it.
        raise HandshakeFailure("server lacks renegotiation_info (RFC 5746)")
    if parse_renegotiation_info(renegotiation):
        # RFC 5746 section 3.4: a non-empty renegotiated_connection "MUST" abort the handshake.
        raise HandshakeFailure("renegotiation_info is not empty on an initial handshake")
    ems = extensions.get(Tls12ExtensionType.EXTENDED_MASTER_SECRET)
    if ems:
        raise DecodeError("extended_master_secret is not empty")
    if ems is None and config.require_extended_master_secret:
        # RFC 7627 section 5.3 (client): "MUST abort the handshake" when it will not fall
        # back to the legacy master secret.
        raise HandshakeFailure("server does not support the extended master secret")
    formats = extensions.get(Tls12ExtensionType.EC_POINT_FORMATS)
    if formats is not None and 0 not in parse_ec_point_formats(formats):
        raise IllegalParameter("ec_point_formats lacks the uncompressed format")
    return extensions


def _selected_alpn(config: ClientConfig, extensions: dict[int, bytes]) -> bytes | None:
    """The one ALPN protocol the server chose, one we offered (RFC 7301 section 3.1)."""
    alpn = extensions.get(ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
    if alpn is None:
        return None
    protocols = parse_alpn(alpn)
    if len(protocols) != 1:
        raise DecodeError("server's ALPN list does not hold exactly one name")
    if protocols[0] not in config.alpn_protocols:
        raise IllegalParameter("server selected an ALPN protocol we did not offer")
    return protocols[0]


def _authentication_of(leaf: x509.Certificate) -> Authentication | None:
    key = leaf.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return Authentication.ECDSA
    if isinstance(key, rsa.RSAPublicKey):
        return Authentication.RSA
    return None


class ExpectCertificate:
    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.CERTIFICATE, "waiting for Certificate")
        config = self.config
        handshake = self.handshake
        chain = parse_certificate(message[4:])
        if not chain:
            raise DecodeError("server sent an empty Certificate")
        if config.verify_peer:
            leaf = config.trust_store.verify_server(
                chain, config.server_name if config.check_hostname else None, conn.clock()
            )
        else:
            leaf = load_chain(chain[:1])[0]
        if _authentication_of(leaf) is not handshake.params.authentication:
            # RFC 5246 section 7.4.2: the key "MUST be compatible with the selected key
            # exchange algorithm".
            raise UnsupportedCertificate("server certificate does not suit the cipher suite")
        handshake.peer_chain = chain
        handshake.transcript.update(message)
        if handshake.params.key_exchange is not KeyExchange.RSA:
            return ExpectServerKeyExchange(config, handshake)
        if not rsa_kex.allows_key_encipherment(leaf):
            raise UnsupportedCertificate("server certificate may not encipher keys (RSA)")
        # RFC 5246 section 7.4.7.1: "client_version: The latest (newest) version supported
        # by the client", the version of our ClientHello.
        premaster = rsa_kex.client_premaster(0x0303, conn.random(rsa_kex.PREMASTER_LEN - 2))
        encrypted = rsa_kex.encrypt_premaster(leaf, premaster)
        handshake.pre_master_secret = premaster
        handshake.client_public = opaque16_client_key_exchange_body(encrypted)
        return ExpectCertificateRequest(config, handshake)


class ExpectServerKeyExchange:
    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.SERVER_KEY_EXCHANGE, "waiting for ServerKeyExchange")
        handshake = self.handshake
        if handshake.params.key_exchange is KeyExchange.DHE:
            scheme, signature, params, finish = self._dhe(conn, message[4:])
        else:
            scheme, signature, params, finish = self._ecdhe(conn, message[4:])
        leaf = load_chain(handshake.peer_chain[:1])[0]
        content = server_params_content(handshake.client_random, handshake.server_random, params)
        verify_signature(leaf, scheme, signature, content, signature_algorithms(self.config))
        # Only a verified server's share is used.
        group, share, peer_public = finish
        shared = share.complete(peer_public)
        if handshake.params.key_exchange is KeyExchange.DHE:
            handshake.pre_master_secret = dhe.premaster(shared)
            handshake.client_public = opaque16_client_key_exchange_body(
                share.key_exchange.lstrip(b"\x00")
            )
        else:
            handshake.pre_master_secret = shared
            handshake.client_public = ecdh_client_key_exchange_body(share.key_exchange)
        handshake.group = group
        handshake.peer_scheme = scheme
        handshake.transcript.update(message)
        return ExpectCertificateRequest(self.config, handshake)

    def _ecdhe(
        self, conn: Connection, body: bytes
    ) -> tuple[int, bytes, bytes, tuple[int, KeyShare, bytes]]:
        exchange = parse_server_key_exchange(body)
        config = self.config
        if exchange.group not in config.supported_groups or exchange.group not in TLS12_GROUPS:
            # RFC 8422 section 5.4: the server must pick a curve the client offered.
            raise IllegalParameter("ServerKeyExchange uses a group we did not offer")
        params = encode_ecdh_params(exchange.group, exchange.public)
        share = KeyShare(exchange.group, conn.random)
        return exchange.scheme, exchange.signature, params, (exchange.group, share, exchange.public)

    def _dhe(
        self, conn: Connection, body: bytes
    ) -> tuple[int, bytes, bytes, tuple[int, KeyShare, bytes]]:
        exchange = parse_server_dh_key_exchange(body)
        offered = tuple(g for g in self.config.supported_groups if g in TLS12_DHE_GROUPS)
        group = dhe.named_group(exchange.p, exchange.g, offered)
        public = dhe.full_length(group, exchange.ys)
        share = KeyShare(group, conn.random)
        return exchange.scheme, exchange.signature, exchange.params_bytes, (group, share, public)


class ExpectCertificateRequest:
    """A CertificateRequest, or the ServerHelloDone that says none comes."""

    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        if msg_type == HandshakeType.SERVER_HELLO_DONE:
            return ExpectServerHelloDone(self.config, self.handshake).handle(
                conn, msg_type, message
            )
        expect(msg_type, HandshakeType.CERTIFICATE_REQUEST, "waiting for ServerHelloDone")
        request = parse_certificate_request(message[4:])
        self.handshake.certificate_request = (
            request.certificate_types,
            request.signature_algorithms,
        )
        self.handshake.transcript.update(message)
        return ExpectServerHelloDone(self.config, self.handshake)


def _client_scheme(config: ClientConfig, request: tuple[bytes, tuple[int, ...]]) -> int | None:
    """The scheme our certificate's key signs the CertificateVerify with, if it suits."""
    credential = config.credential
    if credential is None:
        return None
    types, accepted = request
    auth = _authentication_of(credential.certificate_chain[0])
    wanted_type = RSA_SIGN if auth is Authentication.RSA else ECDSA_SIGN
    if wanted_type not in types:
        return None
    for scheme in signing_schemes(credential.signer.signature_schemes):
        if scheme in accepted and scheme in SCHEMES:
            return scheme
    return None


class ExpectServerHelloDone:
    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.SERVER_HELLO_DONE, "waiting for ServerHelloDone")
        parse_server_hello_done(message[4:])
        config = self.config
        handshake = self.handshake
        transcript = handshake.transcript
        transcript.update(message)
        request = handshake.certificate_request
        scheme = None
        if request is not None:
            scheme = _client_scheme(config, request)
            # RFC 5246 section 7.4.6: with no suitable certificate "the client MUST send a
            # certificate message containing no certificates".
            chain = config.credential.chain_der if (scheme and config.credential) else ()
            _send(conn, handshake, encode_certificate(chain))
        _send(conn, handshake, encode_client_key_exchange(handshake.client_public))
        secrets = Secrets.derive(
            handshake.params,
            handshake.pre_master_secret,
            handshake.client_random,
            handshake.server_random,
            transcript if handshake.extended_master_secret else None,
        )
        handshake.master_secret = secrets.master_secret
        handshake.secrets_cache = secrets
        handshake.pre_master_secret = b""
        handshake.client_public = b""

        def finish(conn: Connection) -> HandshakeState:
            client_write, _ = secrets.protections()
            conn.send_change_cipher_spec()
            conn.set_write_protection(client_write)
            _send(conn, handshake, secrets.finished(prf.CLIENT_FINISHED, transcript))
            return ExpectChangeCipherSpec(config, handshake)

        if scheme is None or config.credential is None:
            return finish(conn)
        handshake.signature_scheme = scheme

        def send_verify(conn: Connection, signature: bytes) -> HandshakeState:
            _send(conn, handshake, encode_certificate_verify(scheme, signature))
            return finish(conn)

        # RFC 5246 section 7.4.8: signed over every handshake message so far.
        return sign_then(conn, config.credential.signer, scheme, transcript.messages(), send_verify)


def _send(conn: Connection, handshake: Handshake, message: bytes) -> None:
    conn.send_handshake(message)
    handshake.transcript.update(message)


class ExpectChangeCipherSpec(ExpectsChangeCipherSpec):
    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle_change_cipher_spec(self, conn: Connection) -> HandshakeState:
        _, server_write = self.handshake.secrets().protections()
        conn.set_read_protection(server_write)
        return ExpectFinished(self.config, self.handshake)


class ExpectFinished:
    def __init__(self, config: ClientConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.FINISHED, "waiting for Finished")
        handshake = self.handshake
        secrets = handshake.secrets()
        secrets.check_finished(prf.SERVER_FINISHED, handshake.transcript, message)
        handshake.transcript.update(message)
        conn.complete(handshake_result(self.config.keylog, handshake, secrets, is_client=True))
        return self
