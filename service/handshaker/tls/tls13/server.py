"""The TLS 1.3 server: one class per step, each returning the next.

    ExpectClientHello       -> no usable share: HelloRetryRequest sent, ExpectClientHello again
                            -> ServerHello, EncryptedExtensions, [CertificateRequest,]
                               Certificate, CertificateVerify, Finished sent
    ExpectClientCertificate         (only when a certificate was requested)
    ExpectClientCertificateVerify   (only when the client sent a certificate)
    ExpectClientFinished    -> complete

The ClientHello is answered in two parts: negotiate(), a pure function that
returns a Selection (suite, group, credential, signature scheme, ALPN, retry or
not), then small emit steps (_send_server_hello, _send_encrypted_extensions, ...,
_send_finished). The CertificateVerify signature may wait for a private-key
operation (keyops.py); the flight is finished when it arrives.

Each state holds only what the next step needs, as plain fields (tls13/snapshot.py
writes them); the config is passed in, never stored in a snapshot. All
randomness comes from the connection's injected RNG.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography import x509

from ..codepoints import (
    CERTIFICATE_VERIFY_SCHEMES,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from ..config import ClientAuth, Credential, ServerConfig
from ..core import MAX_SKIPPED_EARLY_DATA, Connection, HandshakeState
from ..errors import (
    CertificateRequired,
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersionError,
    UnrecognizedName,
)
from ..extensions import (
    encode_alpn,
    encode_opaque,
    encode_server_key_share,
    encode_uint16,
    encode_uint16_list,
)
from ..fastinit import fast_frozen_init
from ..groups import SUPPORTED_GROUPS, server_exchange
from ..key_schedule import ApplicationSecrets, CipherSuiteParams, HandshakeSecrets
from ..messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    CertificateRequest,
    ClientHello,
    ServerHello,
    encode_certificate,
    encode_certificate_request,
    encode_encrypted_extensions,
    encode_server_hello,
    message_hash,
    parse_certificate,
    parse_client_hello,
    server_hello_message,
)
from ..signatures import (
    CLIENT_CONTEXT,
    SERVER_CONTEXT,
)
from .common import (
    CERTIFICATE_ENTRY_EXTENSIONS,
    CLIENT_HELLO_EXTENSIONS,
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
_CERTIFICATE_VERIFY = HandshakeType.CERTIFICATE_VERIFY
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_COOKIE = ExtensionType.COOKIE
_FINISHED = HandshakeType.FINISHED
_KEY_SHARE = ExtensionType.KEY_SHARE
_NONE = ClientAuth.NONE
_RECORD_SIZE_LIMIT = ExtensionType.RECORD_SIZE_LIMIT
_REQUIRED = ClientAuth.REQUIRED
_SERVER_NAME = ExtensionType.SERVER_NAME
_SIGNATURE_ALGORITHMS = ExtensionType.SIGNATURE_ALGORITHMS
_SIGNATURE_ALGORITHMS_CERT = ExtensionType.SIGNATURE_ALGORITHMS_CERT
_SUPPORTED_VERSIONS = ExtensionType.SUPPORTED_VERSIONS
_TLS1_2 = ProtocolVersion.TLS1_2
_TLS1_3 = ProtocolVersion.TLS1_3

_SUPPORTED_VERSIONS_TLS13 = b"\x03\x04"
_NO_EXTENSIONS: frozenset[int] = frozenset()


@dataclass(slots=True)
class Retry:
    """What our HelloRetryRequest fixed for the second ClientHello."""

    params: CipherSuiteParams
    group: int
    transcript: Transcript
    cookie: bytes | None
    ccs_sent: bool


@dataclass(frozen=True, slots=True)
class Selection:
    """What the server chose from a ClientHello: the outcome of negotiate()."""

    params: CipherSuiteParams
    group: int
    credential: Credential
    signature_scheme: int
    alpn_protocol: bytes | None
    # The largest plaintext we may send (the client's record_size_limit - 1).
    peer_record_size_limit: int
    # The client's share for `group`; None: ask for it with a HelloRetryRequest.
    client_share: bytes | None


fast_frozen_init(Selection)


@dataclass(slots=True)
class Negotiated:
    """What the first flight settled, carried through the client's second flight."""

    params: CipherSuiteParams
    group: int
    secrets: HandshakeSecrets
    application: ApplicationSecrets
    transcript: Transcript
    signature_scheme: int
    alpn_protocol: bytes | None
    hello_retry: bool
    peer_record_size_limit: int
    client_random: bytes
    server_name: str | None


def _select_group(
    config: ServerConfig, hello: ClientHello, shares: dict[int, bytes]
) -> tuple[int, bool]:
    """(group, whether the client already sent a share for it)."""
    client_groups = hello.supported_groups or ()
    common = [g for g in config.supported_groups if g in client_groups]
    if not common:
        raise HandshakeFailure("no key exchange group in common")
    if config.prefer_own_group_order:
        return common[0], common[0] in shares
    for group in config.supported_groups:
        if group in shares:
            return group, True
    return common[0], False


def _select_credential(config: ServerConfig, hello: ClientHello) -> tuple[Credential, int]:
    algorithms = hello.signature_algorithms or ()
    if config.credential_selector is not None:
        credential = config.credential_selector(hello.server_name, algorithms)
    else:
        credential = config.credential
    if credential is None:
        if hello.server_name is not None:
            raise UnrecognizedName("no credential for the requested server name")
        raise HandshakeFailure("no credential for this connection")
    schemes = credential.signer.signature_schemes
    # The client's order of preference among what our key can sign.
    for scheme in algorithms:
        if scheme in schemes and scheme in CERTIFICATE_VERIFY_SCHEMES:
            return credential, scheme
    raise HandshakeFailure("no signature scheme in common with the client")


def _client_shares(hello: ClientHello) -> dict[int, bytes]:
    if hello.supported_groups is None or hello.key_shares is None:
        raise MissingExtension("ClientHello lacks supported_groups or key_share")
    shares: dict[int, bytes] = {}
    for group, key_exchange in hello.key_shares:
        if group in shares:
            raise IllegalParameter("two key shares for one group")
        if group not in hello.supported_groups:
            raise IllegalParameter("key share for a group not in supported_groups")
        shares[group] = key_exchange
    return shares


def _check_second_hello(
    retry: Retry, hello: ClientHello, suite: int, shares: dict[int, bytes]
) -> None:
    """RFC 8446 section 4.1.2: the second ClientHello answers our HelloRetryRequest."""
    if retry.params.suite != suite:
        raise IllegalParameter("second ClientHello changed the cipher suite")
    if list(shares) != [retry.group]:
        raise IllegalParameter("second ClientHello lacks the one share we asked for")
    if retry.cookie is None and hello.cookie is not None:
        raise IllegalParameter("second ClientHello echoes a cookie we never sent")
    if retry.cookie is not None and (
        hello.cookie is None or not hmac.compare_digest(hello.cookie, retry.cookie)
    ):
        raise IllegalParameter("second ClientHello does not echo our cookie")
    if hello.has_early_data:
        raise IllegalParameter("early_data in the second ClientHello")


def negotiate(config: ServerConfig, hello: ClientHello, retry: Retry | None) -> Selection:
    """Choose version, suite, group, credential, scheme and ALPN: a pure function of the hello."""
    if hello.supported_versions is None or _TLS1_3 not in hello.supported_versions:
        raise ProtocolVersionError("client does not offer TLS 1.3")
    if hello.legacy_compression_methods != b"\x00":
        # RFC 8446 section 4.1.2: exactly one byte, zero, or illegal_parameter.
        raise IllegalParameter("legacy_compression_methods is not just null")
    suite = next((s for s in config.cipher_suites if s in hello.cipher_suites), None)
    if suite is None:
        raise HandshakeFailure("no cipher suite in common")
    shares = _client_shares(hello)
    if hello.signature_algorithms is None:
        raise MissingExtension("ClientHello lacks signature_algorithms")
    if hello.has_pre_shared_key and hello.psk_key_exchange_modes is None:
        # Section 9.2: "If containing a "pre_shared_key" extension, it MUST also contain
        # a "psk_key_exchange_modes" extension" or the server sends missing_extension.
        raise MissingExtension("ClientHello has pre_shared_key without psk_key_exchange_modes")
    credential, scheme = _select_credential(config, hello)
    alpn_protocol = None
    if hello.alpn_protocols is not None and config.alpn_protocols:
        alpn_protocol = next((p for p in config.alpn_protocols if p in hello.alpn_protocols), None)
        if alpn_protocol is None:
            raise NoApplicationProtocol("no ALPN protocol in common")
    peer_limit = 2**14
    if hello.record_size_limit is not None:
        if hello.record_size_limit < 64:
            raise IllegalParameter("record_size_limit below 64")
        peer_limit = min(hello.record_size_limit - 1, 2**14)
    if retry is None:
        group, has_share = _select_group(config, hello, shares)
        if has_share and group not in SUPPORTED_GROUPS:
            raise HandshakeFailure("no supported group")
    else:
        _check_second_hello(retry, hello, suite, shares)
        group = retry.group
    return Selection(
        params=CipherSuiteParams.for_suite(suite),
        group=group,
        credential=credential,
        signature_scheme=scheme,
        alpn_protocol=alpn_protocol,
        peer_record_size_limit=peer_limit,
        client_share=shares.get(group),
    )


class ExpectClientHello:
    def __init__(self, config: ServerConfig, retry: Retry | None = None) -> None:
        self.config = config
        self.retry = retry

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CLIENT_HELLO, "waiting for ClientHello")
        return self.handle_hello(conn, message, parse_client_hello(message[4:]))

    def handle_hello(self, conn: Connection, message: bytes, hello: ClientHello) -> HandshakeState:
        """Answer a ClientHello already parsed (by the version-neutral first step)."""
        config = self.config
        retry = self.retry
        conn.ccs_allowed = True
        check_extensions(hello.extensions, CLIENT_HELLO_EXTENSIONS, None)
        selection = negotiate(config, hello, retry)
        if retry is None:
            if hello.has_early_data:
                conn.skip_early_data = MAX_SKIPPED_EARLY_DATA
            if selection.client_share is None:
                return _send_hello_retry_request(conn, config, hello, message, selection)
            transcript = Transcript(selection.params)
            ccs_sent = False
        else:
            transcript = retry.transcript
            ccs_sent = retry.ccs_sent
        transcript.update(message)
        secrets = _send_server_hello(conn, hello, selection, transcript, ccs_sent)
        _send_encrypted_extensions(conn, config, hello, selection, transcript)
        if config.client_auth is not _NONE:
            _send_certificate_request(conn, config, transcript)
        _send(conn, transcript, _certificate_message(selection.credential))

        def finish_flight(conn: Connection) -> HandshakeState:
            state = _send_finished(
                conn, hello, selection, secrets, transcript, hello_retry=retry is not None
            )
            if config.record_size_limit is not None and hello.record_size_limit is not None:
                conn.read_fragment_limit = min(config.record_size_limit - 1, 2**14)
            if config.client_auth is _NONE:
                return ExpectClientFinished(config, state, (), None)
            return ExpectClientCertificate(config, state)

        return send_certificate_verify(
            conn,
            transcript,
            selection.credential.signer,
            selection.signature_scheme,
            SERVER_CONTEXT,
            then=finish_flight,
        )


def _certificate_message(credential: Credential) -> bytes:
    """Our Certificate (empty context, no entry extensions): the same for every handshake."""
    message = credential.encodings.get("tls13 Certificate")
    if message is None:
        message = encode_certificate(b"", credential.chain_der)
        credential.encodings["tls13 Certificate"] = message
    return message


def _send(conn: Connection, transcript: Transcript, message: bytes) -> None:
    conn.send_handshake(message)
    transcript.update(message)


def _send_server_hello(
    conn: Connection,
    hello: ClientHello,
    selection: Selection,
    transcript: Transcript,
    ccs_sent: bool,
) -> HandshakeSecrets:
    """ServerHello with our share; the handshake keys from the exchange."""
    assert selection.client_share is not None
    params = selection.params
    group = selection.group
    server_random = conn.random(32)  # drawn first: recorded traces replay in this order
    key_exchange, shared_secret = server_exchange(group, selection.client_share, conn.random)
    server_hello = server_hello_message(
        legacy_version=_TLS1_2,
        random=server_random,
        legacy_session_id_echo=hello.legacy_session_id,
        cipher_suite=params.suite,
        legacy_compression_method=0,
        extensions=(
            (_KEY_SHARE, encode_server_key_share(group, key_exchange)),
            (_SUPPORTED_VERSIONS, _SUPPORTED_VERSIONS_TLS13),
        ),
    )
    _send(conn, transcript, server_hello)
    if hello.legacy_session_id and not ccs_sent:
        # Appendix D.4: a dummy change_cipher_spec right after our first handshake message.
        conn.send_change_cipher_spec()
    secrets = HandshakeSecrets.derive(params, shared_secret, transcript.digest())
    conn.set_write_keys(params, secrets.server)
    conn.write_fragment_limit = selection.peer_record_size_limit
    return secrets


def _send_encrypted_extensions(
    conn: Connection,
    config: ServerConfig,
    hello: ClientHello,
    selection: Selection,
    transcript: Transcript,
) -> None:
    extensions: list[tuple[int, bytes]] = []
    if hello.record_size_limit is not None and config.record_size_limit is not None:
        extensions.append((_RECORD_SIZE_LIMIT, encode_uint16(config.record_size_limit)))
    if hello.server_name is not None and config.credential_selector is not None:
        # RFC 6066 section 3: an empty server_name says the name was used.
        extensions.append((_SERVER_NAME, b""))
    if selection.alpn_protocol is not None:
        extensions.append(
            (
                _APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
                encode_alpn((selection.alpn_protocol,)),
            )
        )
    _send(conn, transcript, encode_encrypted_extensions(tuple(extensions)))


def _send_certificate_request(
    conn: Connection, config: ServerConfig, transcript: Transcript
) -> None:
    request = CertificateRequest(
        certificate_request_context=b"",
        extensions=(
            (_SIGNATURE_ALGORITHMS, encode_uint16_list(config.signature_schemes)),
            (
                _SIGNATURE_ALGORITHMS_CERT,
                encode_uint16_list(config.certificate_signature_schemes),
            ),
        ),
    )
    _send(conn, transcript, encode_certificate_request(request))


def _send_finished(
    conn: Connection,
    hello: ClientHello,
    selection: Selection,
    secrets: HandshakeSecrets,
    transcript: Transcript,
    *,
    hello_retry: bool,
) -> Negotiated:
    """Our Finished; the application keys; what the client's second flight is checked with."""
    params = selection.params
    _send(conn, transcript, finished_message(params, secrets.server, transcript))
    application = ApplicationSecrets.derive(params, secrets.master_secret(), transcript.digest())
    conn.set_write_keys(params, application.server)
    conn.set_read_keys(params, secrets.client)
    return Negotiated(
        params=params,
        group=selection.group,
        secrets=secrets,
        application=application,
        transcript=transcript,
        signature_scheme=selection.signature_scheme,
        alpn_protocol=selection.alpn_protocol,
        hello_retry=hello_retry,
        peer_record_size_limit=selection.peer_record_size_limit,
        client_random=hello.random,
        server_name=hello.server_name,
    )


def _send_hello_retry_request(
    conn: Connection,
    config: ServerConfig,
    hello: ClientHello,
    message: bytes,
    selection: Selection,
) -> HandshakeState:
    params = selection.params
    cookie = conn.random(32) if config.hello_retry_cookie else None
    extensions: list[tuple[int, bytes]] = [
        (_KEY_SHARE, encode_uint16(selection.group)),
        (_SUPPORTED_VERSIONS, _SUPPORTED_VERSIONS_TLS13),
    ]
    if cookie is not None:
        extensions.append((_COOKIE, encode_opaque(cookie, 2)))
    retry_request = encode_server_hello(
        ServerHello(
            legacy_version=_TLS1_2,
            random=HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=hello.legacy_session_id,
            cipher_suite=params.suite,
            legacy_compression_method=0,
            extensions=tuple(extensions),
        )
    )
    transcript = Transcript(params)
    transcript.update(message_hash(params.hash_of(message)))
    _send(conn, transcript, retry_request)
    ccs_sent = False
    if hello.legacy_session_id:
        conn.send_change_cipher_spec()
        ccs_sent = True
    return ExpectClientHello(config, Retry(params, selection.group, transcript, cookie, ccs_sent))


class ExpectClientCertificate:
    def __init__(self, config: ServerConfig, state: Negotiated) -> None:
        self.config = config
        self.state = state

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CERTIFICATE, "waiting for the client's Certificate")
        config = self.config
        state = self.state
        certificate = parse_certificate(message[4:])
        if certificate.certificate_request_context:
            # Section 4.4.2: it echoes our CertificateRequest's, which is empty in the
            # handshake; anything else is out of range (decode_error, as BoringSSL).
            raise DecodeError("client Certificate has the wrong certificate_request_context")
        for entry in certificate.certificate_list:
            check_extensions(entry.extensions, CERTIFICATE_ENTRY_EXTENSIONS, _NO_EXTENSIONS)
        state.transcript.update(message)
        if not certificate.certificate_list:
            if config.client_auth is _REQUIRED:
                raise CertificateRequired("client sent no certificate")
            return ExpectClientFinished(config, state, (), None)
        chain_der = tuple(entry.cert_data for entry in certificate.certificate_list)
        leaf = config.client_trust_store.verify_client(chain_der, conn.clock())
        return ExpectClientCertificateVerify(config, state, leaf, chain_der)


class ExpectClientCertificateVerify:
    def __init__(
        self,
        config: ServerConfig,
        state: Negotiated,
        leaf: x509.Certificate,
        chain_der: tuple[bytes, ...],
    ) -> None:
        self.config = config
        self.state = state
        self.leaf = leaf
        self.chain_der = chain_der

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CERTIFICATE_VERIFY, "waiting for CertificateVerify")
        state = self.state
        scheme = check_certificate_verify(
            message, self.leaf, self.config.signature_schemes, CLIENT_CONTEXT, state.transcript
        )
        return ExpectClientFinished(self.config, state, self.chain_der, scheme)


class ExpectClientFinished:
    def __init__(
        self,
        config: ServerConfig,
        state: Negotiated,
        peer_certificates: tuple[bytes, ...],
        peer_scheme: int | None,
    ) -> None:
        self.config = config
        self.state = state
        self.peer_certificates = peer_certificates
        self.peer_scheme = peer_scheme

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _FINISHED, "waiting for the client's Finished")
        state = self.state
        params = state.params
        transcript = state.transcript
        check_finished(params, state.secrets.client, transcript, message)
        transcript.update(message)
        conn.complete(
            build_result(
                is_client=False,
                params=params,
                group=state.group,
                handshake=state.secrets,
                application=state.application,
                resumption_master_secret=state.application.resumption_master_secret(
                    transcript.digest()
                ),
                client_random=state.client_random,
                peer_signature_scheme=self.peer_scheme,
                signature_scheme=state.signature_scheme,
                alpn_protocol=state.alpn_protocol,
                server_name=state.server_name,
                peer_certificates=self.peer_certificates,
                hello_retry=state.hello_retry,
                peer_record_size_limit=state.peer_record_size_limit,
                keylog=self.config.keylog,
            )
        )
        return self
