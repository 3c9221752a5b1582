"""The TLS 1.2 server (RFC 5246 section 7.3): one class per step, each returning the next.

    ExpectClientHello       -> ServerHello, Certificate, ServerKeyExchange (not for
                               the RSA key exchange), [CertificateRequest,]
                               ServerHelloDone sent
    ExpectClientCertificate         (only when a certificate was requested)
    ExpectClientKeyExchange
    ExpectCertificateVerify         (only when the client sent a certificate)
    ExpectChangeCipherSpec          (the core hands it the client's CCS)
    ExpectFinished          -> ChangeCipherSpec, Finished sent; complete

The ClientHello is answered in two parts: negotiate(), a pure function that returns
a Selection, then small emit steps. The ServerKeyExchange signature goes through
sign_then, so it may wait for a private-key operation (keyops.py) as TLS 1.3's
CertificateVerify does; the RSA key exchange's decryption goes through decrypt_then
the same way (rsa_kex.py). States hold a common.Handshake of plain fields
(tls12/snapshot.py writes it) and the config, which is never in a snapshot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..codepoints import (
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    Tls12ExtensionType,
)
from ..config import ClientAuth, Credential, ServerConfig
from ..core import Connection, ExpectsChangeCipherSpec, HandshakeState
from ..errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    NoApplicationProtocol,
    UnrecognizedName,
)
from ..extensions import encode_alpn, encode_uint16
from ..groups import KeyShare
from ..keyops import DeferredKey, PrivateKeyHandle, decrypt_then, sign_then
from ..messages import ClientHello, ServerHello, encode_server_hello
from ..sigschemes import SCHEMES, SchemeFamily
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
    EMPTY_RENEGOTIATION_INFO,
    RSA_SIGN,
    SERVER_HELLO_DONE,
    CertificateRequest,
    encode_certificate,
    encode_certificate_request,
    encode_ecdh_params,
    encode_signed_params,
    parse_certificate,
    parse_certificate_verify,
    parse_client_key_exchange,
    parse_client_key_exchange16,
    parse_ec_point_formats,
    parse_renegotiation_info,
)
from .suites import (
    TLS12_DHE_GROUPS,
    TLS12_GROUPS,
    Authentication,
    KeyExchange,
    Tls12SuiteParams,
)

_CURVE_GROUPS = {
    "secp256r1": NamedGroup.SECP256R1,
    "secp384r1": NamedGroup.SECP384R1,
    "secp521r1": NamedGroup.SECP521R1,
}
_FAMILIES_FOR = {
    Authentication.ECDSA: (SchemeFamily.ECDSA, SchemeFamily.EDDSA),
    Authentication.RSA: (
        SchemeFamily.RSA_PSS_RSAE,
        SchemeFamily.RSA_PSS_PSS,
        SchemeFamily.RSA_PKCS1,
    ),
}


@dataclass(frozen=True, slots=True)
class Selection:
    """What the server chose from a ClientHello: the outcome of negotiate()."""

    params: Tls12SuiteParams
    # The ECDHE curve or the RFC 7919 DHE group; 0 for the RSA key exchange.
    group: int
    credential: Credential
    # What signs the ServerKeyExchange; 0 for the RSA key exchange (nothing is signed).
    signature_scheme: int
    alpn_protocol: bytes | None
    extended_master_secret: bool
    # RFC 5746: the client signalled secure renegotiation (extension or SCSV).
    secure_renegotiation: bool
    ec_point_formats: bool
    # RFC 8449: the client's record_size_limit (None: it sent none, or we have none).
    peer_record_size_limit: int | None


def _extensions(hello: ClientHello) -> dict[int, bytes]:
    return dict(hello.extensions)


def _authentication_of(certificate: x509.Certificate) -> Authentication | None:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return Authentication.ECDSA
    if isinstance(key, rsa.RSAPublicKey):
        return Authentication.RSA
    return None


def _curve_allowed(certificate: x509.Certificate, client_groups: tuple[int, ...] | None) -> bool:
    """RFC 8422 section 5.1: the client's supported_groups also bound the curve of the
    server's ECDSA certificate ("the server's certificate MUST ... be on a curve the
    client supports")."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or client_groups is None:
        return True
    return _CURVE_GROUPS.get(key.curve.name) in client_groups


def _select_scheme(
    credential: Credential, authentication: Authentication, algorithms: tuple[int, ...]
) -> int | None:
    ours = signing_schemes(credential.signer.signature_schemes)
    families = _FAMILIES_FOR[authentication]
    # The client's order of preference among what our key can sign.
    for scheme in algorithms:
        if scheme in ours and scheme in SCHEMES and SCHEMES[scheme].family in families:
            return scheme
    return None


def _select_groups(config: ServerConfig, hello: ClientHello) -> dict[KeyExchange, int]:
    """The group each key exchange would use: ECDHE's curve, DHE's RFC 7919 group."""
    client_groups = hello.supported_groups
    chosen: dict[KeyExchange, int] = {KeyExchange.RSA: 0}
    ecdhe = [g for g in config.supported_groups if g in TLS12_GROUPS]
    # RFC 8422 section 4: without the extension a server may use any curve.
    common = ecdhe if client_groups is None else [g for g in ecdhe if g in client_groups]
    if common:
        chosen[KeyExchange.ECDHE] = common[0]
    # RFC 7919 section 4: a client that names FFDHE groups gets one of them or no DHE
    # suite; a client that names none (a legacy one) gets our first RFC 7919 group. We
    # never send a prime that is not one of RFC 7919's.
    dhe_groups = [g for g in config.supported_groups if g in TLS12_DHE_GROUPS]
    names_ffdhe = client_groups is not None and any(256 <= g <= 511 for g in client_groups)
    if names_ffdhe:
        assert client_groups is not None
        dhe_groups = [g for g in dhe_groups if g in client_groups]
    if dhe_groups:
        chosen[KeyExchange.DHE] = dhe_groups[0]
    return chosen


def _can_decrypt(key: PrivateKeyHandle) -> bool:
    if isinstance(key, DeferredKey):
        return key.decrypts
    return callable(getattr(key, "decrypt", None))


def _select_suite(
    config: ServerConfig,
    hello: ClientHello,
    credential: Credential,
    authentication: Authentication,
    groups: dict[KeyExchange, int],
) -> Tls12SuiteParams | None:
    """Our most preferred suite the client offers that the credential and groups allow."""
    leaf = credential.certificate_chain[0]
    for suite in config.tls12_cipher_suites:
        if suite not in hello.cipher_suites:
            continue
        params = Tls12SuiteParams.for_suite(suite)
        if params.authentication is not authentication or params.key_exchange not in groups:
            continue
        if params.key_exchange is KeyExchange.RSA and not (
            rsa_kex.allows_key_encipherment(leaf) and _can_decrypt(credential.signer)
        ):
            continue
        return params
    return None


@dataclass(frozen=True, slots=True)
class _Tls12Extensions:
    """What the TLS 1.2-only extensions of a ClientHello settle, checked."""

    secure_renegotiation: bool
    extended_master_secret: bool
    ec_point_formats: bool


def _tls12_extensions(config: ServerConfig, hello: ClientHello) -> _Tls12Extensions:
    """renegotiation_info (RFC 5746), extended_master_secret (RFC 7627), ec_point_formats
    (RFC 8422), and null compression: the checks before anything is chosen."""
    extensions = _extensions(hello)
    if 0 not in hello.legacy_compression_methods:
        # RFC 5246 section 7.4.1.2: the list "MUST contain ... CompressionMethod.null".
        raise IllegalParameter("ClientHello does not offer null compression")
    renegotiation = extensions.get(Tls12ExtensionType.RENEGOTIATION_INFO)
    if renegotiation is not None and parse_renegotiation_info(renegotiation):
        # RFC 5746 section 3.6: "the server MUST ... verify that the "renegotiated_connection"
        # field is of zero length. If it is not, the server MUST abort the handshake."
        raise HandshakeFailure("renegotiation_info is not empty on an initial handshake")
    secure_renegotiation = (
        renegotiation is not None or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
    )
    ems_data = extensions.get(Tls12ExtensionType.EXTENDED_MASTER_SECRET)
    if ems_data:
        raise DecodeError("extended_master_secret is not empty")
    if ems_data is None and config.require_extended_master_secret:
        # RFC 7627 section 5.2: a server that will not interoperate with legacy clients
        # "SHOULD abort the handshake".
        raise HandshakeFailure("client does not offer the extended master secret (RFC 7627)")
    point_formats = extensions.get(Tls12ExtensionType.EC_POINT_FORMATS)
    if point_formats is not None and 0 not in parse_ec_point_formats(point_formats):
        # RFC 8422 section 5.1.2: without "uncompressed" the server "MUST abort the
        # handshake and return an illegal_parameter alert".
        raise IllegalParameter("ec_point_formats lacks the uncompressed format")
    return _Tls12Extensions(secure_renegotiation, ems_data is not None, point_formats is not None)


def negotiate(config: ServerConfig, hello: ClientHello) -> Selection:
    """Choose suite, group, credential, scheme and ALPN: a pure function of the hello."""
    checked = _tls12_extensions(config, hello)
    algorithms = hello.signature_algorithms
    if algorithms is None:
        # RFC 5246 section 7.4.1.4.1 would default to SHA-1, which we never sign with.
        raise HandshakeFailure("ClientHello lacks signature_algorithms (SHA-1 only)")
    if config.credential_selector is not None:
        credential = config.credential_selector(hello.server_name, algorithms)
    else:
        credential = config.credential
    if credential is None:
        if hello.server_name is not None:
            raise UnrecognizedName("no credential for the requested server name")
        raise HandshakeFailure("no credential for this connection")
    groups = _select_groups(config, hello)
    leaf = credential.certificate_chain[0]
    authentication = _authentication_of(leaf)
    if authentication is None or not _curve_allowed(leaf, hello.supported_groups):
        raise HandshakeFailure("our certificate suits no curve or suite the client offers")
    params = _select_suite(config, hello, credential, authentication, groups)
    if params is None:
        raise HandshakeFailure("no TLS 1.2 cipher suite and group in common")
    scheme = 0
    if params.key_exchange is not KeyExchange.RSA:
        scheme = _select_scheme(credential, authentication, algorithms) or 0
        if not scheme:
            raise HandshakeFailure("no TLS 1.2 signature scheme in common")
    alpn_protocol = None
    if hello.alpn_protocols is not None and config.alpn_protocols:
        alpn_protocol = next((p for p in config.alpn_protocols if p in hello.alpn_protocols), None)
        if alpn_protocol is None:
            raise NoApplicationProtocol("no ALPN protocol in common")
    peer_limit = None
    if hello.record_size_limit is not None and config.record_size_limit is not None:
        if hello.record_size_limit < 64:
            raise IllegalParameter("record_size_limit below 64")
        peer_limit = min(hello.record_size_limit, 2**14)
    return Selection(
        params=params,
        group=groups[params.key_exchange],
        credential=credential,
        signature_scheme=scheme,
        alpn_protocol=alpn_protocol,
        extended_master_secret=checked.extended_master_secret,
        secure_renegotiation=checked.secure_renegotiation,
        ec_point_formats=checked.ec_point_formats,
        peer_record_size_limit=peer_limit,
    )


class ExpectClientHello:
    """Answers the first ClientHello once the version-neutral step chose TLS 1.2."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def handle_hello(self, conn: Connection, message: bytes, hello: ClientHello) -> HandshakeState:
        config = self.config
        selection = negotiate(config, hello)
        server_random = conn.random(32)
        if config.max_version >= ProtocolVersion.TLS1_3:
            # RFC 8446 section 4.1.3: a TLS 1.3 server negotiating TLS 1.2 "MUST set the
            # last 8 bytes of their Random value" to 44 4F 57 4E 47 52 44 01.
            server_random = server_random[:24] + DOWNGRADE_TLS12
        handshake = Handshake(
            suite=selection.params.suite,
            client_random=hello.random,
            server_random=server_random,
            transcript=Transcript([message]),
            group=selection.group,
            extended_master_secret=selection.extended_master_secret,
            alpn_protocol=selection.alpn_protocol,
            server_name=hello.server_name,
            signature_scheme=selection.signature_scheme or None,
        )
        if selection.peer_record_size_limit is not None and config.record_size_limit is not None:
            handshake.peer_record_size_limit = selection.peer_record_size_limit
            conn.write_fragment_limit = selection.peer_record_size_limit
            conn.read_fragment_limit = min(config.record_size_limit, 2**14)
        _send(conn, handshake, _server_hello(config, hello, selection, server_random))
        _send(conn, handshake, _certificate_message(selection.credential))
        if selection.params.key_exchange is KeyExchange.RSA:
            # Kept for the decryption (rsa_kex.py) and for finding the key after a restore.
            handshake.client_version = hello.legacy_version
            handshake.client_signature_algorithms = tuple(hello.signature_algorithms or ())
            handshake.credential_digest = _leaf_digest(selection.credential)
            return _finish_flight(conn, config, handshake, selection.credential)
        share = KeyShare(selection.group, conn.random)
        handshake.ephemeral_private = share.private_bytes()
        handshake.live_share = share  # the live key, until a snapshot drops it
        if selection.params.key_exchange is KeyExchange.DHE:
            params = dhe.server_dh_params(selection.group, share.key_exchange)
        else:
            params = encode_ecdh_params(selection.group, share.key_exchange)
        content = server_params_content(hello.random, server_random, params)

        def send_key_exchange(conn: Connection, signature: bytes) -> HandshakeState:
            scheme = selection.signature_scheme
            _send(conn, handshake, encode_signed_params(params, scheme, signature))
            return _finish_flight(conn, config, handshake, None)

        return sign_then(
            conn,
            selection.credential.signer,
            selection.signature_scheme,
            content,
            send_key_exchange,
        )


def _leaf_digest(credential: Credential) -> bytes:
    return hashlib.sha256(credential.chain_der[0]).digest()


def _finish_flight(
    conn: Connection, config: ServerConfig, handshake: Handshake, credential: Credential | None
) -> HandshakeState:
    """[CertificateRequest,] ServerHelloDone; `credential` only for the RSA key exchange."""
    if config.client_auth is not ClientAuth.NONE:
        _send(conn, handshake, _certificate_request(config))
    _send(conn, handshake, SERVER_HELLO_DONE)
    if config.client_auth is ClientAuth.NONE:
        return ExpectClientKeyExchange(config, handshake, credential)
    return ExpectClientCertificate(config, handshake, credential)


def _send(conn: Connection, handshake: Handshake, message: bytes) -> None:
    conn.send_handshake(message)
    handshake.transcript.update(message)


def _server_hello(
    config: ServerConfig, hello: ClientHello, selection: Selection, server_random: bytes
) -> bytes:
    extensions: list[tuple[int, bytes]] = []
    if selection.secure_renegotiation:
        extensions.append((Tls12ExtensionType.RENEGOTIATION_INFO, EMPTY_RENEGOTIATION_INFO))
    if selection.extended_master_secret:
        extensions.append((Tls12ExtensionType.EXTENDED_MASTER_SECRET, b""))
    if selection.ec_point_formats:
        extensions.append((Tls12ExtensionType.EC_POINT_FORMATS, b"\x01\x00"))
    if selection.peer_record_size_limit is not None and config.record_size_limit is not None:
        # RFC 8449 section 4: a TLS 1.2 endpoint sends at most 2^14.
        limit = min(config.record_size_limit, 2**14)
        extensions.append((ExtensionType.RECORD_SIZE_LIMIT, encode_uint16(limit)))
    if hello.server_name is not None and config.credential_selector is not None:
        # RFC 6066 section 3: an empty server_name says the name was used.
        extensions.append((ExtensionType.SERVER_NAME, b""))
    if selection.alpn_protocol is not None:
        extensions.append(
            (
                ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
                encode_alpn((selection.alpn_protocol,)),
            )
        )
    return encode_server_hello(
        ServerHello(
            legacy_version=ProtocolVersion.TLS1_2,
            random=server_random,
            # No session id: this engine keeps no sessions to resume (RFC 5246 section
            # 7.4.1.3: an empty session_id means the session will not be cached).
            legacy_session_id_echo=b"",
            cipher_suite=selection.params.suite,
            legacy_compression_method=0,
            extensions=tuple(extensions),
        )
    )


def _certificate_message(credential: Credential) -> bytes:
    message = credential.encodings.get("tls12 Certificate")
    if message is None:
        message = encode_certificate(credential.chain_der)
        credential.encodings["tls12 Certificate"] = message
    return message


def _certificate_request(config: ServerConfig) -> bytes:
    schemes = config.signature_schemes + tuple(
        s for s in config.tls12_signature_schemes if s not in config.signature_schemes
    )
    return encode_certificate_request(CertificateRequest(bytes((RSA_SIGN, ECDSA_SIGN)), schemes))


class ExpectClientCertificate:
    def __init__(
        self, config: ServerConfig, handshake: Handshake, credential: Credential | None = None
    ) -> None:
        self.config = config
        self.handshake = handshake
        # The RSA key exchange's credential (None after a restore: looked up again).
        self.credential = credential

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.CERTIFICATE, "waiting for the client's Certificate")
        config = self.config
        chain = parse_certificate(message[4:])
        self.handshake.transcript.update(message)
        if not chain:
            if config.client_auth is ClientAuth.REQUIRED:
                # RFC 5246 section 7.4.6: a server that requires one "may respond with a
                # fatal handshake_failure alert".
                raise HandshakeFailure("client sent no certificate")
            return ExpectClientKeyExchange(config, self.handshake, self.credential)
        config.client_trust_store.verify_client(chain, conn.clock())
        self.handshake.peer_chain = chain
        return ExpectClientKeyExchange(config, self.handshake, self.credential)


def _decrypting_credential(config: ServerConfig, handshake: Handshake) -> Credential:
    """The credential a restored RSA-key-exchange connection decrypts with: the one it
    sent its Certificate for, chosen again the way negotiate() chose it."""
    if config.credential_selector is not None:
        credential = config.credential_selector(
            handshake.server_name, handshake.client_signature_algorithms
        )
    else:
        credential = config.credential
    if credential is None or _leaf_digest(credential) != handshake.credential_digest:
        raise HandshakeFailure("the credential changed during the handshake")
    return credential


class ExpectClientKeyExchange:
    def __init__(
        self, config: ServerConfig, handshake: Handshake, credential: Credential | None = None
    ) -> None:
        self.config = config
        self.handshake = handshake
        self.credential = credential

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.CLIENT_KEY_EXCHANGE, "waiting for ClientKeyExchange")
        handshake = self.handshake
        key_exchange = handshake.params.key_exchange
        if key_exchange is KeyExchange.RSA:
            ciphertext = parse_client_key_exchange16(message[4:])
            handshake.transcript.update(message)
            # R is drawn whatever the outcome, before the key is asked (rsa_kex.py).
            random46 = conn.random(rsa_kex.PREMASTER_LEN - 2)
            credential = self.credential or _decrypting_credential(self.config, handshake)

            def derive(conn: Connection, decrypted: bytes) -> HandshakeState:
                premaster = rsa_kex.server_premaster(decrypted, handshake.client_version, random46)
                return self._derive(premaster)

            return decrypt_then(conn, credential.signer, ciphertext, derive)
        share = handshake.live_share or KeyShare.from_private_bytes(
            handshake.group, handshake.ephemeral_private
        )
        if key_exchange is KeyExchange.DHE:
            public = dhe.full_length(handshake.group, parse_client_key_exchange16(message[4:]))
            # ffdhe.py checks 1 < dh_Yc < p - 1 (RFC 7919 section 5.1).
            premaster = dhe.premaster(share.complete(public))
        else:
            # RFC 8422 section 5.11 / RFC 8446 4.2.8: the peer's point is validated here.
            premaster = share.complete(parse_client_key_exchange(message[4:]))
        handshake.transcript.update(message)
        return self._derive(premaster)

    def _derive(self, pre_master_secret: bytes) -> HandshakeState:
        handshake = self.handshake
        secrets = Secrets.derive(
            handshake.params,
            pre_master_secret,
            handshake.client_random,
            handshake.server_random,
            handshake.transcript if handshake.extended_master_secret else None,
        )
        handshake.master_secret = secrets.master_secret
        handshake.secrets_cache = secrets
        handshake.ephemeral_private = b""
        handshake.live_share = None
        if handshake.peer_chain:
            return ExpectCertificateVerify(self.config, handshake)
        return ExpectChangeCipherSpec(self.config, handshake)


class ExpectCertificateVerify:
    def __init__(self, config: ServerConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.CERTIFICATE_VERIFY, "waiting for CertificateVerify")
        handshake = self.handshake
        config = self.config
        scheme, signature = parse_certificate_verify(message[4:])
        leaf = x509.load_der_x509_certificate(handshake.peer_chain[0])
        # RFC 5246 section 7.4.8: the signature is over handshake_messages, "all handshake
        # messages sent or received, starting at client hello and up to, but not
        # including, this message".
        verify_signature(
            leaf,
            scheme,
            signature,
            handshake.transcript.messages(),
            config.signature_schemes + config.tls12_signature_schemes,
        )
        handshake.peer_scheme = scheme
        handshake.transcript.update(message)
        return ExpectChangeCipherSpec(config, handshake)


class ExpectChangeCipherSpec(ExpectsChangeCipherSpec):
    def __init__(self, config: ServerConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle_change_cipher_spec(self, conn: Connection) -> HandshakeState:
        client_write, _ = self.handshake.secrets().protections()
        conn.set_read_protection(client_write)
        return ExpectFinished(self.config, self.handshake)


class ExpectFinished:
    def __init__(self, config: ServerConfig, handshake: Handshake) -> None:
        self.config = config
        self.handshake = handshake

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.FINISHED, "waiting for the client's Finished")
        handshake = self.handshake
        secrets = handshake.secrets()
        transcript = handshake.transcript
        secrets.check_finished(prf.CLIENT_FINISHED, transcript, message)
        transcript.update(message)
        _, server_write = secrets.protections()
        conn.send_change_cipher_spec()
        conn.set_write_protection(server_write)
        finished = secrets.finished(prf.SERVER_FINISHED, transcript)
        conn.send_handshake(finished)
        transcript.update(finished)
        conn.complete(handshake_result(self.config.keylog, handshake, secrets, is_client=False))
        return self
