"""The TLS 1.3 client after the ServerHello (client.py has what comes before): the
server's encrypted flight, each message a state, then our second flight.

    ExpectEncryptedExtensions
    ExpectCertificateOrCertificateRequest
    ExpectCertificate
    ExpectCertificateVerify
    ExpectFinished          -> [Certificate, CertificateVerify,] Finished sent; complete
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from ..certificates import load_chain
from ..codepoints import (
    CERTIFICATE_VERIFY_SCHEMES,
    ExtensionType,
    HandshakeType,
)
from ..config import ClientConfig
from ..core import Connection, HandshakeState
from ..errors import (
    DecodeError,
    IllegalParameter,
    MissingExtension,
)
from ..extensions import (
    parse_alpn,
    parse_empty,
    parse_uint16,
    parse_uint16_list,
)
from ..key_schedule import ApplicationSecrets, CipherSuiteParams, HandshakeSecrets
from ..messages import (
    encode_certificate,
    parse_certificate,
    parse_certificate_request,
    parse_encrypted_extensions,
)
from ..signatures import (
    CLIENT_CONTEXT,
    SERVER_CONTEXT,
)
from .common import (
    CERTIFICATE_ENTRY_EXTENSIONS,
    CERTIFICATE_REQUEST_EXTENSIONS,
    ENCRYPTED_EXTENSIONS,
    Transcript,
    build_result,
    check_certificate_verify,
    check_extensions,
    check_finished,
    expect,
    finished_message,
    send_certificate_verify,
)

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_APPLICATION_LAYER_PROTOCOL_NEGOTIATION = ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION
_CERTIFICATE = HandshakeType.CERTIFICATE
_CERTIFICATE_REQUEST = HandshakeType.CERTIFICATE_REQUEST
_CERTIFICATE_VERIFY = HandshakeType.CERTIFICATE_VERIFY
_ENCRYPTED_EXTENSIONS = HandshakeType.ENCRYPTED_EXTENSIONS
_FINISHED = HandshakeType.FINISHED
_RECORD_SIZE_LIMIT = ExtensionType.RECORD_SIZE_LIMIT
_SERVER_NAME = ExtensionType.SERVER_NAME
_SIGNATURE_ALGORITHMS = ExtensionType.SIGNATURE_ALGORITHMS
_SUPPORTED_GROUPS = ExtensionType.SUPPORTED_GROUPS

_NO_EXTENSIONS: frozenset[int] = frozenset()


@dataclass(slots=True)
class Negotiated:
    """What the ServerHello settled, carried through the encrypted part."""

    config: ClientConfig
    client_random: bytes
    offered: frozenset[int]
    params: CipherSuiteParams
    group: int
    secrets: HandshakeSecrets
    transcript: Transcript
    hello_retry: bool
    alpn_protocol: bytes | None = None
    peer_record_size_limit: int = 2**14
    # signature_algorithms of the server's CertificateRequest, when it sent one.
    certificate_request: tuple[bytes, tuple[int, ...]] | None = None


class ExpectEncryptedExtensions:
    def __init__(self, state: Negotiated) -> None:
        self.state = state

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _ENCRYPTED_EXTENSIONS, "waiting for EncryptedExtensions")
        state = self.state
        extensions = parse_encrypted_extensions(message[4:])
        check_extensions(extensions, ENCRYPTED_EXTENSIONS, state.offered)
        for ext_type, data in extensions:
            if ext_type == _APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
                protocols = parse_alpn(data)
                # RFC 7301 section 3.1: the server's "ProtocolNameList MUST contain exactly
                # one ProtocolName" (another length: decode_error), one the client offered.
                if len(protocols) != 1:
                    raise DecodeError("server's ALPN list does not hold exactly one name")
                if protocols[0] not in state.config.alpn_protocols:
                    raise IllegalParameter("server selected an ALPN protocol we did not offer")
                state.alpn_protocol = protocols[0]
            elif ext_type == _SERVER_NAME:
                parse_empty(data)
            elif ext_type == _RECORD_SIZE_LIMIT:
                limit = parse_uint16(data)
                if limit < 64:
                    raise IllegalParameter("record_size_limit below 64")
                state.peer_record_size_limit = min(limit - 1, 2**14)
                conn.write_fragment_limit = state.peer_record_size_limit
                if state.config.record_size_limit is not None:
                    conn.read_fragment_limit = min(state.config.record_size_limit - 1, 2**14)
            elif ext_type == _SUPPORTED_GROUPS:
                parse_uint16_list(data)
        state.transcript.update(message)
        return ExpectCertificateOrCertificateRequest(state)


class ExpectCertificateOrCertificateRequest:
    def __init__(self, state: Negotiated) -> None:
        self.state = state

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        if msg_type == _CERTIFICATE:
            return ExpectCertificate(self.state).handle(conn, msg_type, message)
        expect(msg_type, _CERTIFICATE_REQUEST, "waiting for Certificate")
        request = parse_certificate_request(message[4:])
        if request.certificate_request_context:
            # Section 4.3.2: "SHALL be zero length" in the handshake; out of range, so
            # decode_error (as BoringSSL and rustls).
            raise DecodeError("certificate_request_context in the handshake is not empty")
        check_extensions(request.extensions, CERTIFICATE_REQUEST_EXTENSIONS, None)
        algorithms = dict(request.extensions).get(_SIGNATURE_ALGORITHMS)
        if algorithms is None:
            raise MissingExtension("CertificateRequest has no signature_algorithms")
        self.state.certificate_request = (
            request.certificate_request_context,
            parse_uint16_list(algorithms),
        )
        self.state.transcript.update(message)
        return ExpectCertificate(self.state)


class ExpectCertificate:
    def __init__(self, state: Negotiated) -> None:
        self.state = state

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CERTIFICATE, "waiting for Certificate")
        state = self.state
        config = state.config
        certificate = parse_certificate(message[4:])
        if certificate.certificate_request_context:
            # Section 4.4.2: "in the case of server authentication, this field SHALL be zero
            # length"; out of range, so decode_error (as BoringSSL and rustls).
            raise DecodeError("server Certificate has a certificate_request_context")
        if not certificate.certificate_list:
            raise DecodeError("server sent an empty Certificate")
        for entry in certificate.certificate_list:
            check_extensions(entry.extensions, CERTIFICATE_ENTRY_EXTENSIONS, _NO_EXTENSIONS)
        chain_der = tuple(entry.cert_data for entry in certificate.certificate_list)
        if config.verify_peer:
            leaf = config.trust_store.verify_server(
                chain_der, config.server_name if config.check_hostname else None, conn.clock()
            )
        else:
            leaf = load_chain(chain_der[:1])[0]
        state.transcript.update(message)
        return ExpectCertificateVerify(state, leaf, chain_der)


class ExpectCertificateVerify:
    def __init__(
        self, state: Negotiated, leaf: x509.Certificate, chain_der: tuple[bytes, ...]
    ) -> None:
        self.state = state
        self.leaf = leaf
        self.chain_der = chain_der

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CERTIFICATE_VERIFY, "waiting for CertificateVerify")
        state = self.state
        scheme = check_certificate_verify(
            message, self.leaf, state.config.signature_schemes, SERVER_CONTEXT, state.transcript
        )
        return ExpectFinished(state, self.chain_der, scheme)


class ExpectFinished:
    def __init__(
        self, state: Negotiated, peer_certificates: tuple[bytes, ...], peer_scheme: int
    ) -> None:
        self.state = state
        self.peer_certificates = peer_certificates
        self.peer_scheme = peer_scheme

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _FINISHED, "waiting for Finished")
        state = self.state
        params = state.params
        secrets = state.secrets
        transcript = state.transcript
        check_finished(params, secrets.server, transcript, message)
        transcript.update(message)
        application = ApplicationSecrets.derive(
            params, secrets.master_secret(), transcript.digest()
        )
        # The server's records from here on are application data: the caller's,
        # with the keys in the result, so no read protection is set up here.

        def finish(conn: Connection, signature_scheme: int | None) -> HandshakeState:
            finished = finished_message(params, secrets.client, transcript)
            conn.send_handshake(finished)
            transcript.update(finished)
            config = state.config
            conn.complete(
                build_result(
                    is_client=True,
                    params=params,
                    group=state.group,
                    handshake=secrets,
                    application=application,
                    resumption_master_secret=application.resumption_master_secret(
                        transcript.digest()
                    ),
                    client_random=state.client_random,
                    peer_signature_scheme=self.peer_scheme,
                    signature_scheme=signature_scheme,
                    alpn_protocol=state.alpn_protocol,
                    server_name=config.server_name,
                    peer_certificates=self.peer_certificates,
                    hello_retry=state.hello_retry,
                    peer_record_size_limit=state.peer_record_size_limit,
                    keylog=config.keylog,
                )
            )
            return self

        if state.certificate_request is None:
            return finish(conn, None)
        return self._send_client_certificate(conn, state.certificate_request, finish)

    def _send_client_certificate(
        self,
        conn: Connection,
        request: tuple[bytes, tuple[int, ...]],
        then: Callable[[Connection, int | None], HandshakeState],
    ) -> HandshakeState:
        """Answer a CertificateRequest: our chain and CertificateVerify, or an empty Certificate."""
        state = self.state
        context, accepted = request
        credential = state.config.credential
        scheme = None
        if credential is not None:
            scheme = next(
                (
                    s
                    for s in credential.signer.signature_schemes
                    if s in accepted and s in CERTIFICATE_VERIFY_SCHEMES
                ),
                None,
            )
        if credential is None or scheme is None:
            # RFC 8446 section 4.4.2: "If the client does not send any certificates
            # ... it MUST send a Certificate message containing no certificates."
            empty = encode_certificate(context, ())
            conn.send_handshake(empty)
            state.transcript.update(empty)
            return then(conn, None)
        certificate = encode_certificate(context, credential.chain_der)
        conn.send_handshake(certificate)
        state.transcript.update(certificate)
        signed = scheme
        return send_certificate_verify(
            conn,
            state.transcript,
            credential.signer,
            scheme,
            CLIENT_CONTEXT,
            then=lambda conn: then(conn, signed),
        )
