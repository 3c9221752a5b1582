"""What a completed handshake hands back: SessionKeys and the peer's identity, as plain dataclasses.

Secrets are excluded from repr, so printing or logging these objects never leaks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from handshaker_wire.v1 import handshaker_pb2 as pb

from .constants import cipher_suite_name, group_name, version_name

DEFAULT_RECORD_SIZE_LIMIT = 2**14


@dataclass(frozen=True, slots=True)
class TrafficKeys:
    """One direction's record protection state.

    TLS 1.3 (RFC 8446 section 7.3): the traffic secret and its key and IV. TLS 1.2: no
    secret (empty); iv is the fixed IV (AES-GCM's 4-byte salt, ChaCha20's 12 bytes).
    """

    secret: bytes = field(repr=False)
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    # The sequence number of the next record in this direction.
    sequence_number: int = 0

    @classmethod
    def from_proto(cls, message: pb.TrafficKeys) -> TrafficKeys:
        return cls(
            secret=message.secret,
            key=message.key,
            iv=message.iv,
            sequence_number=message.sequence_number,
        )


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The peer's certificate chain (leaf first, DER) and the names its leaf holds."""

    chain_der: tuple[bytes, ...] = field(default=(), repr=False)
    dns_sans: tuple[str, ...] = ()
    uri_sans: tuple[str, ...] = ()
    ip_sans: tuple[str, ...] = ()
    subject: str = ""

    @classmethod
    def from_proto(cls, message: pb.PeerIdentity) -> PeerIdentity:
        return cls(
            chain_der=tuple(message.chain_der),
            dns_sans=tuple(message.dns_sans),
            uri_sans=tuple(message.uri_sans),
            ip_sans=tuple(message.ip_sans),
            subject=message.subject,
        )


@dataclass(frozen=True, slots=True)
class Tls12Session:
    """A TLS 1.2 session's RFC 5705 exporter inputs (TLS 1.3 has exporter_master_secret)."""

    master_secret: bytes = field(repr=False)
    client_random: bytes = field(repr=False)
    server_random: bytes = field(repr=False)
    # True when master_secret is RFC 7627's extended master secret.
    extended_master_secret: bool = True

    @classmethod
    def from_proto(cls, message: pb.Tls12Session) -> Tls12Session:
        return cls(
            master_secret=message.master_secret,
            client_random=message.client_random,
            server_random=message.server_random,
            extended_master_secret=message.extended_master_secret,
        )


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys and negotiated parameters of a completed handshake."""

    version: int
    cipher_suite: int
    group: int
    alpn_protocol: str | None
    resumed: bool
    server_name: str | None
    peer: PeerIdentity
    read: TrafficKeys
    write: TrafficKeys
    exporter_master_secret: bytes = field(repr=False)
    keylog: tuple[str, ...] = field(default=(), repr=False)
    # The largest plaintext the peer accepts in one record (RFC 8449).
    peer_record_size_limit: int = DEFAULT_RECORD_SIZE_LIMIT
    hello_retry: bool = False
    # This side's and the peer's CertificateVerify schemes (None: none was sent).
    signature_scheme: int | None = None
    peer_signature_scheme: int | None = None
    # TLS 1.2 only: the exporter's inputs.
    tls12: Tls12Session | None = None

    @classmethod
    def from_proto(cls, message: pb.SessionKeys) -> SessionKeys:
        return cls(
            version=message.version,
            cipher_suite=message.cipher_suite,
            group=message.group,
            alpn_protocol=message.alpn_protocol or None,
            resumed=message.resumed,
            server_name=message.server_name or None,
            peer=PeerIdentity.from_proto(message.peer),
            read=TrafficKeys.from_proto(message.read),
            write=TrafficKeys.from_proto(message.write),
            exporter_master_secret=message.exporter_master_secret,
            keylog=tuple(message.keylog),
            peer_record_size_limit=message.peer_record_size_limit or DEFAULT_RECORD_SIZE_LIMIT,
            hello_retry=message.hello_retry,
            signature_scheme=message.signature_scheme or None,
            peer_signature_scheme=message.peer_signature_scheme or None,
            tls12=Tls12Session.from_proto(message.tls12) if message.HasField("tls12") else None,
        )

    def describe(self) -> str:
        """One line naming what was negotiated, e.g. for a log; holds no secret."""
        parts = [
            version_name(self.version),
            cipher_suite_name(self.cipher_suite),
            f"group={group_name(self.group)}",
            f"alpn={self.alpn_protocol or '-'}",
        ]
        if self.peer.subject:
            parts.append(f"peer={self.peer.subject}")
        return " ".join(parts)
