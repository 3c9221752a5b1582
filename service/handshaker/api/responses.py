"""What a handshake's outcome writes into the response messages: its summary, the session
keys, the peer's identity.

The messages are filled in place: on the hot path each byte string is copied into its
message once, not again through constructors and CopyFrom.
"""

from __future__ import annotations

from cryptography import x509
from handshaker_wire.v1 import handshaker_pb2 as pb

from handshaker.tls import HandshakeResult, ProtocolVersion, TrafficKeys


def fill_peer_identity(identity: pb.PeerIdentity, chain_der: tuple[bytes, ...]) -> None:
    if not chain_der:
        return
    identity.chain_der.extend(chain_der)
    try:
        leaf = x509.load_der_x509_certificate(chain_der[0])
        identity.subject = leaf.subject.rfc4514_string()
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return
    identity.dns_sans.extend(san.get_values_for_type(x509.DNSName))
    identity.uri_sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    identity.ip_sans.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))


def fill_traffic_keys(target: pb.TrafficKeys, keys: TrafficKeys) -> None:
    target.secret = keys.secret
    target.key = keys.key
    target.iv = keys.iv
    target.sequence_number = keys.sequence_number


def alpn_text(result: HandshakeResult) -> str:
    return result.alpn_protocol.decode("ascii", "replace") if result.alpn_protocol else ""


def fill_summary(summary: pb.HandshakeSummary, result: HandshakeResult) -> None:
    summary.version = result.version
    summary.cipher_suite = result.cipher_suite
    summary.group = result.group
    summary.alpn_protocol = alpn_text(result)
    summary.server_name = result.server_name or ""
    summary.resumed = result.resumed
    summary.hello_retry = result.hello_retry
    summary.signature_scheme = result.signature_scheme or 0
    summary.peer_signature_scheme = result.peer_signature_scheme or 0
    fill_peer_identity(summary.peer, result.peer_certificates)


def fill_session_keys(
    keys: pb.SessionKeys, result: HandshakeResult, peer: pb.PeerIdentity | None = None
) -> None:
    keys.version = result.version
    keys.cipher_suite = result.cipher_suite
    keys.group = result.group
    keys.alpn_protocol = alpn_text(result)
    keys.resumed = result.resumed
    keys.server_name = result.server_name or ""
    if peer is not None:
        if peer.chain_der:
            keys.peer.CopyFrom(peer)
    else:
        fill_peer_identity(keys.peer, result.peer_certificates)
    fill_traffic_keys(keys.read, result.read)
    fill_traffic_keys(keys.write, result.write)
    keys.exporter_master_secret = result.exporter_master_secret
    if result.version == ProtocolVersion.TLS1_2:
        tls12 = keys.tls12
        tls12.master_secret = result.master_secret
        tls12.client_random = result.client_random
        tls12.server_random = result.server_random
        tls12.extended_master_secret = result.extended_master_secret
    keys.keylog.extend(result.keylog)
    keys.peer_record_size_limit = result.peer_record_size_limit
    keys.hello_retry = result.hello_retry
    keys.signature_scheme = result.signature_scheme or 0
    keys.peer_signature_scheme = result.peer_signature_scheme or 0


# Every response that carries a step (and the keys once COMPLETE).
StepResponse = (
    pb.StartClientResponse | pb.StartServerResponse | pb.FeedResponse | pb.HandshakeResponse
)
