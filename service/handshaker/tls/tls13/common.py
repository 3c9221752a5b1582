"""What both TLS 1.3 roles share: the transcript, extension rules, Finished, results."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..codepoints import ExtensionType, HandshakeType, ProtocolVersion
from ..errors import (
    DecodeError,
    DecryptError,
    IllegalParameter,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ..events import HandshakeResult, TrafficKeys
from ..extensions import Extensions
from ..key_schedule import (
    ApplicationSecrets,
    CipherSuiteParams,
    HandshakeSecrets,
    TrafficSecret,
    finished_verify_data,
)
from ..keyops import PrivateKeyHandle, sign_then
from ..messages import certificate_verify_message, encode_finished, parse_certificate_verify
from ..signatures import certificate_verify_content, verify_certificate_verify

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_TLS1_3 = ProtocolVersion.TLS1_3

if TYPE_CHECKING:
    from ..core import Connection, HandshakeState

# RFC 8446 section 4.2: which extensions may appear in which message. Every
# extension we know of may appear in a ClientHello except oid_filters (CR only).
CLIENT_HELLO_EXTENSIONS = frozenset(int(e) for e in ExtensionType) - {ExtensionType.OID_FILTERS}
SERVER_HELLO_EXTENSIONS = frozenset(
    {ExtensionType.KEY_SHARE, ExtensionType.PRE_SHARED_KEY, ExtensionType.SUPPORTED_VERSIONS}
)
HELLO_RETRY_REQUEST_EXTENSIONS = frozenset(
    {ExtensionType.KEY_SHARE, ExtensionType.COOKIE, ExtensionType.SUPPORTED_VERSIONS}
)
ENCRYPTED_EXTENSIONS = frozenset(
    {
        ExtensionType.SERVER_NAME,
        ExtensionType.MAX_FRAGMENT_LENGTH,
        ExtensionType.SUPPORTED_GROUPS,
        ExtensionType.USE_SRTP,
        ExtensionType.HEARTBEAT,
        ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
        ExtensionType.CLIENT_CERTIFICATE_TYPE,
        ExtensionType.SERVER_CERTIFICATE_TYPE,
        ExtensionType.EARLY_DATA,
        ExtensionType.RECORD_SIZE_LIMIT,
    }
)
CERTIFICATE_ENTRY_EXTENSIONS = frozenset(
    {ExtensionType.STATUS_REQUEST, ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP}
)
CERTIFICATE_REQUEST_EXTENSIONS = frozenset(
    {
        ExtensionType.STATUS_REQUEST,
        ExtensionType.SIGNATURE_ALGORITHMS,
        ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP,
        ExtensionType.CERTIFICATE_AUTHORITIES,
        ExtensionType.OID_FILTERS,
        ExtensionType.SIGNATURE_ALGORITHMS_CERT,
    }
)
_RECOGNIZED = frozenset(int(e) for e in ExtensionType)


def check_extensions(
    extensions: Extensions, allowed: frozenset[int], offered: frozenset[int] | None
) -> None:
    """Apply RFC 8446 section 4.2's rules to a block of extensions from the peer.

    A recognized extension that does not belong in this message: illegal_parameter.
    A response to an extension we did not offer (`offered` given): unsupported_extension.
    """
    for ext_type, _ in extensions:
        if ext_type in _RECOGNIZED and ext_type not in allowed:
            raise IllegalParameter(f"extension {ext_type} is not allowed in this message")
        if offered is not None and ext_type not in offered:
            raise UnsupportedExtension(f"extension {ext_type} was not offered")


class Transcript:
    """The running transcript hash of the handshake messages.

    The messages hashed so far are kept too (references, not copies), so a
    snapshot can carry them and restore() rebuilds the same hash state. The
    digest is kept until the next update: several steps hash the same point
    (the server's Finished is followed by the application secrets and then the
    client's Finished check, all over the same messages).
    """

    def __init__(self, params: CipherSuiteParams) -> None:
        self.params = params
        self._hash: Any = params.new_hash()
        self._messages: list[bytes] = []
        self._digest: bytes | None = None

    def update(self, message: bytes) -> None:
        self._hash.update(message)
        self._messages.append(message)
        self._digest = None

    def digest(self) -> bytes:
        digest = self._digest
        if digest is None:
            digest = self._digest = self._hash.copy().digest()
        return digest

    def messages(self) -> bytes:
        """Everything hashed so far, in order (the snapshot's copy of the transcript)."""
        return b"".join(self._messages)

    @classmethod
    def restore(cls, params: CipherSuiteParams, messages: bytes) -> Transcript:
        transcript = cls(params)
        if messages:
            transcript.update(messages)
        return transcript


def expect(msg_type: int, wanted: int, step: str) -> None:
    if msg_type != wanted:
        try:
            name = HandshakeType(msg_type).name
        except ValueError:
            name = str(msg_type)
        raise UnexpectedMessage(f"{name} while {step}")


def finished_message(
    params: CipherSuiteParams, base_key: TrafficSecret, transcript: Transcript
) -> bytes:
    return encode_finished(finished_verify_data(params, base_key, transcript.digest()))


def check_finished(
    params: CipherSuiteParams, base_key: TrafficSecret, transcript: Transcript, message: bytes
) -> None:
    """Verify a peer's Finished (whole message) against the transcript before it."""
    # "struct { opaque verify_data[Hash.length]; } Finished;": any other length is a
    # message "of incorrect length" (RFC 8446 section 6), so decode_error, not a bad MAC.
    if len(message) - 4 != params.hash_len:
        raise DecodeError("Finished is not Hash.length bytes")
    expected = finished_verify_data(params, base_key, transcript.digest())
    # Constant-time comparison: the MAC must not leak how many bytes matched.
    if not hmac.compare_digest(message[4:], expected):
        raise DecryptError("Finished verify_data does not match")


def check_certificate_verify(
    message: bytes,
    leaf: x509.Certificate,
    offered_schemes: tuple[int, ...],
    context: bytes,
    transcript: Transcript,
) -> int:
    """Verify the peer's CertificateVerify over the transcript so far; returns its scheme."""
    verify = parse_certificate_verify(message[4:])
    if verify.algorithm not in offered_schemes:
        raise IllegalParameter("peer signed with a scheme we did not offer")
    content = certificate_verify_content(context, transcript.digest())
    verify_certificate_verify(leaf, verify.algorithm, verify.signature, content)
    transcript.update(message)
    return verify.algorithm


def send_certificate_verify(
    conn: Connection,
    transcript: Transcript,
    key: PrivateKeyHandle,
    scheme: int,
    context: bytes,
    *,
    then: Callable[[Connection], HandshakeState],
) -> HandshakeState:
    """Sign the transcript so far, queue our CertificateVerify, then go on with `then`.

    With a DeferredKey the connection waits for the signature first (keyops.py).
    """
    content = certificate_verify_content(context, transcript.digest())

    def send(conn: Connection, signature: bytes) -> HandshakeState:
        message = certificate_verify_message(scheme, signature)
        conn.send_handshake(message)
        transcript.update(message)
        return then(conn)

    return sign_then(conn, key, scheme, content, send)


def keylog_lines(
    client_random: bytes, handshake: HandshakeSecrets, application: ApplicationSecrets
) -> tuple[str, ...]:
    """NSS key log lines (the SSLKEYLOGFILE format) for this handshake."""
    random_hex = client_random.hex()
    return tuple(
        f"{label} {random_hex} {secret.hex()}"
        for label, secret in (
            ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", handshake.client.secret),
            ("SERVER_HANDSHAKE_TRAFFIC_SECRET", handshake.server.secret),
            ("CLIENT_TRAFFIC_SECRET_0", application.client.secret),
            ("SERVER_TRAFFIC_SECRET_0", application.server.secret),
            ("EXPORTER_SECRET", application.exporter_master_secret),
        )
    )


def traffic_keys(secret: TrafficSecret) -> TrafficKeys:
    return TrafficKeys(secret=secret.secret, key=secret.key, iv=secret.iv, sequence_number=0)


def build_result(
    *,
    is_client: bool,
    params: CipherSuiteParams,
    group: int,
    handshake: HandshakeSecrets,
    application: ApplicationSecrets,
    resumption_master_secret: bytes,
    client_random: bytes,
    peer_signature_scheme: int | None,
    signature_scheme: int | None,
    alpn_protocol: bytes | None,
    server_name: str | None,
    peer_certificates: tuple[bytes, ...],
    hello_retry: bool,
    peer_record_size_limit: int,
    keylog: bool,
) -> HandshakeResult:
    client = traffic_keys(application.client)
    server = traffic_keys(application.server)
    return HandshakeResult(
        version=_TLS1_3,
        cipher_suite=params.suite,
        group=group,
        peer_signature_scheme=peer_signature_scheme,
        signature_scheme=signature_scheme,
        alpn_protocol=alpn_protocol,
        server_name=server_name,
        peer_certificates=peer_certificates,
        read=server if is_client else client,
        write=client if is_client else server,
        exporter_master_secret=application.exporter_master_secret,
        resumption_master_secret=resumption_master_secret,
        client_random=client_random,
        hello_retry=hello_retry,
        peer_record_size_limit=peer_record_size_limit,
        keylog=keylog_lines(client_random, handshake, application) if keylog else (),
    )
