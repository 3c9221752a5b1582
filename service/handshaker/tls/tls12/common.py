"""What both TLS 1.2 roles share: the transcript, the negotiated secrets, signing and
verifying handshake signatures, Finished, and the HandshakeResult.

Each state is plain data (tls12/snapshot.py writes it); nothing here does I/O.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from ..codepoints import HandshakeType, ProtocolVersion, SignatureScheme
from ..errors import DecodeError, DecryptError, IllegalParameter, UnexpectedMessage
from ..events import HandshakeResult, TrafficKeys
from ..groups import KeyShare
from ..signatures import leaf_public_key, verify_certificate_verify
from ..sigschemes import SCHEMES, SchemeFamily
from . import prf
from .messages import encode_finished
from .record import Tls12RecordProtection
from .suites import Tls12SuiteParams

# RFC 8446 section 4.1.3: the last 8 bytes of a TLS 1.3-capable server's random when it
# negotiates TLS 1.2 ("DOWNGRD" then 0x01).
DOWNGRADE_TLS12 = bytes.fromhex("444F574E47524401")

_RSA_PKCS1 = (
    SignatureScheme.RSA_PKCS1_SHA256,
    SignatureScheme.RSA_PKCS1_SHA384,
    SignatureScheme.RSA_PKCS1_SHA512,
)

# Schemes a TLS 1.2 peer may sign its handshake with by default: the TLS 1.3 ones, then
# RSASSA-PKCS1-v1_5, which TLS 1.2 peers still use (never SHA-1).
DEFAULT_TLS12_SIGNATURE_SCHEMES_EXTRA: tuple[int, ...] = _RSA_PKCS1


def expect(msg_type: int, wanted: int, step: str) -> None:
    if msg_type != wanted:
        try:
            name = HandshakeType(msg_type).name
        except ValueError:
            name = str(msg_type)
        raise UnexpectedMessage(f"{name} while {step}")


def signing_schemes(key_schemes: Sequence[int]) -> tuple[int, ...]:
    """The schemes a key can sign a TLS 1.2 handshake with: its own, plus RSASSA-PKCS1-v1_5
    for an rsaEncryption key (one that signs rsa_pss_rsae_*)."""
    schemes = tuple(key_schemes)
    if any(SCHEMES[s].family is SchemeFamily.RSA_PSS_RSAE for s in schemes if s in SCHEMES):
        schemes += tuple(s for s in _RSA_PKCS1 if s not in schemes)
    return schemes


class Transcript:
    """The handshake messages so far, kept whole (CertificateVerify signs them, RFC 5246
    section 7.4.8) and hashed once the suite, and so the PRF hash, is known."""

    def __init__(self, messages: Sequence[bytes] = ()) -> None:
        self._messages = list(messages)

    def update(self, message: bytes) -> None:
        self._messages.append(message)

    def messages(self) -> bytes:
        return b"".join(self._messages)

    def digest(self, params: Tls12SuiteParams) -> bytes:
        h: Any = params.new_hash()
        for message in self._messages:
            h.update(message)
        return h.digest()  # type: ignore[no-any-return]


@dataclass(slots=True, eq=False)
class Secrets:
    """The master secret and the key block cut from it (RFC 5246 section 6.3)."""

    params: Tls12SuiteParams
    master_secret: bytes
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    # The two protections, cut from the key block once (a handshake asks three times).
    _protections: tuple[Tls12RecordProtection, Tls12RecordProtection] | None = field(
        default=None, repr=False
    )

    @staticmethod
    def derive(
        params: Tls12SuiteParams,
        pre_master_secret: bytes,
        client_random: bytes,
        server_random: bytes,
        transcript: Transcript | None,
    ) -> Secrets:
        """`transcript` through ClientKeyExchange for the extended master secret, else None.

        RFC 7627 section 3: 'session_hash = Hash(handshake_messages)' ... "from the first
        ClientHello up to and including the ClientKeyExchange message".
        """
        session_hash = transcript.digest(params) if transcript is not None else None
        master = prf.master_secret(
            params,
            pre_master_secret,
            client_random=client_random,
            server_random=server_random,
            session_hash=session_hash,
        )
        return Secrets(params, master, client_random, server_random, transcript is not None)

    def protections(self) -> tuple[Tls12RecordProtection, Tls12RecordProtection]:
        """(client write, server write) record protection, made once, sequence numbers at 0
        when made; each side installs one for reading and the other for writing."""
        if self._protections is None:
            params = self.params
            ck, sk, civ, siv = prf.key_block(
                params, self.master_secret, self.client_random, self.server_random
            )
            self._protections = (
                Tls12RecordProtection(params, ck, civ),
                Tls12RecordProtection(params, sk, siv),
            )
        return self._protections

    def finished(self, label: bytes, transcript: Transcript) -> bytes:
        return encode_finished(
            prf.verify_data(self.params, self.master_secret, label, transcript.digest(self.params))
        )

    def check_finished(self, label: bytes, transcript: Transcript, message: bytes) -> None:
        """Verify the peer's Finished (whole message) against the transcript before it."""
        if len(message) - 4 != prf.VERIFY_DATA_LEN:
            raise DecodeError("Finished is not 12 bytes")
        expected = prf.verify_data(
            self.params, self.master_secret, label, transcript.digest(self.params)
        )
        # Constant-time: the MAC must not leak how many bytes matched.
        if not hmac.compare_digest(message[4:], expected):
            raise DecryptError("Finished verify_data does not match")

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


def verify_signature(
    leaf: x509.Certificate,
    scheme: int,
    signature: bytes,
    content: bytes,
    offered: Sequence[int],
) -> None:
    """A peer's ServerKeyExchange or CertificateVerify signature (RFC 5246 section 4.7)."""
    if scheme not in offered:
        # RFC 5246 section 7.4.1.4.1: the peer must sign with a pair we listed.
        raise IllegalParameter("peer signed with a scheme we did not offer")
    params = SCHEMES.get(scheme)
    key = leaf_public_key(leaf)
    if (
        params is not None
        and params.family is SchemeFamily.ECDSA
        and isinstance(key, ec.EllipticCurvePublicKey)
    ):
        # RFC 8446 section 4.2.3: in TLS 1.2 the ECDSA code points name the hash alone
        # ("ecdsa_secp256r1_sha256" is SHA-256 with whatever curve the key is on).
        assert params.ecdsa is not None
        try:
            key.verify(signature, content, params.ecdsa)
        except InvalidSignature:
            raise DecryptError("signature does not verify") from None
        return
    verify_certificate_verify(leaf, scheme, signature, content)


def server_params_content(client_random: bytes, server_random: bytes, params: bytes) -> bytes:
    """ServerKeyExchange's signed content: ClientHello.random + ServerHello.random + params."""
    return client_random + server_random + params


def keylog_lines(client_random: bytes, master_secret: bytes) -> tuple[str, ...]:
    """NSS key log (SSLKEYLOGFILE) for TLS 1.2: CLIENT_RANDOM <client_random> <master_secret>."""
    return (f"CLIENT_RANDOM {client_random.hex()} {master_secret.hex()}",)


def build_result(
    *,
    is_client: bool,
    secrets: Secrets,
    client_write: Tls12RecordProtection,
    server_write: Tls12RecordProtection,
    group: int,
    peer_signature_scheme: int | None,
    signature_scheme: int | None,
    alpn_protocol: bytes | None,
    server_name: str | None,
    peer_certificates: tuple[bytes, ...],
    peer_record_size_limit: int,
    keylog: bool,
) -> HandshakeResult:
    """The result of a TLS 1.2 handshake: per direction the AEAD key, the fixed IV (GCM
    salt, 4 bytes, or ChaCha20-Poly1305 IV, 12 bytes) and the next sequence number.

    A TLS 1.2 session has no traffic secrets: TrafficKeys.secret is empty, and
    exporter_master_secret/resumption_master_secret are empty; the exporter (RFC 5705)
    runs on master_secret.
    """

    def keys(protection: Tls12RecordProtection) -> TrafficKeys:
        # Each side's one protected handshake record is its Finished (16 bytes, one
        # record), so application data continues at sequence number 1 both ways.
        return TrafficKeys(secret=b"", key=protection.key, iv=protection.iv, sequence_number=1)

    client = keys(client_write)
    server = keys(server_write)
    return HandshakeResult(
        version=ProtocolVersion.TLS1_2,
        cipher_suite=secrets.params.suite,
        group=group,
        peer_signature_scheme=peer_signature_scheme,
        signature_scheme=signature_scheme,
        alpn_protocol=alpn_protocol,
        server_name=server_name,
        peer_certificates=peer_certificates,
        read=server if is_client else client,
        write=client if is_client else server,
        exporter_master_secret=b"",
        resumption_master_secret=b"",
        client_random=secrets.client_random,
        master_secret=secrets.master_secret,
        server_random=secrets.server_random,
        extended_master_secret=secrets.extended_master_secret,
        peer_record_size_limit=peer_record_size_limit,
        keylog=keylog_lines(secrets.client_random, secrets.master_secret) if keylog else (),
    )


@dataclass(slots=True, eq=False)
class Handshake:
    """Everything a TLS 1.2 handshake has settled so far, as plain fields, in either role.

    Every state of both roles holds one of these (and its config); tls12/snapshot.py
    writes it whole. Fields fill in as the handshake goes; a state reads only the ones
    its step has reached.
    """

    suite: int
    client_random: bytes
    server_random: bytes
    transcript: Transcript
    group: int
    extended_master_secret: bool
    alpn_protocol: bytes | None = None
    server_name: str | None = None
    # The peer's certificate chain as sent (DER, leaf first), and the scheme it signed with.
    peer_chain: tuple[bytes, ...] = ()
    peer_scheme: int | None = None
    # The scheme we signed with (server: ServerKeyExchange; client: CertificateVerify).
    signature_scheme: int | None = None
    # Our ECDHE or DHE private key (server, until ClientKeyExchange).
    ephemeral_private: bytes = b""
    # Client, from ServerKeyExchange (or, RSA, the Certificate) to its flight: the premaster
    # secret and the body of our ClientKeyExchange (messages.*_client_key_exchange_body).
    pre_master_secret: bytes = b""
    client_public: bytes = b""
    # Client: the server's CertificateRequest (certificate_types, signature algorithms).
    certificate_request: tuple[bytes, tuple[int, ...]] | None = None
    master_secret: bytes = b""
    # RFC 8449: the largest plaintext we may send the peer (its record_size_limit, at most
    # 2^14 in TLS 1.2, where the limit counts no content type byte).
    peer_record_size_limit: int = 2**14
    # Server, RSA key exchange: ClientHello.client_version (the premaster secret's first
    # two bytes, RFC 5246 section 7.4.7.1), the client's signature_algorithms and the
    # SHA-256 of our leaf, so that a restored connection finds the same credential.
    client_version: int = 0x0303
    client_signature_algorithms: tuple[int, ...] = ()
    credential_digest: bytes = b""
    # What secrets() made and our live key share (server): derived from the fields above
    # (master_secret, ephemeral_private), kept to save the work, never in a snapshot.
    secrets_cache: Secrets | None = field(default=None, repr=False)
    live_share: KeyShare | None = field(default=None, repr=False)

    @property
    def params(self) -> Tls12SuiteParams:
        return Tls12SuiteParams.for_suite(self.suite)

    def secrets(self) -> Secrets:
        """The Secrets of master_secret, kept while it stays the same (not in a snapshot)."""
        cached = self.secrets_cache
        if cached is None or cached.master_secret is not self.master_secret:
            cached = Secrets(
                self.params,
                self.master_secret,
                self.client_random,
                self.server_random,
                self.extended_master_secret,
            )
            self.secrets_cache = cached
        return cached

    def __repr__(self) -> str:
        return f"Handshake(suite=0x{self.suite:04x}, <redacted>)"


def handshake_result(
    keylog: bool, handshake: Handshake, secrets: Secrets, *, is_client: bool
) -> HandshakeResult:
    client_write, server_write = secrets.protections()
    return build_result(
        is_client=is_client,
        secrets=secrets,
        client_write=client_write,
        server_write=server_write,
        group=handshake.group,
        peer_signature_scheme=handshake.peer_scheme,
        signature_scheme=handshake.signature_scheme,
        alpn_protocol=handshake.alpn_protocol,
        server_name=handshake.server_name,
        peer_certificates=handshake.peer_chain,
        peer_record_size_limit=handshake.peer_record_size_limit,
        keylog=keylog,
    )
