"""What each TLS 1.2 state writes into a snapshot (protocol field 0x0303), and how it is rebuilt.

Every state that waits for a peer message is here, by a one-byte tag (client 1-15,
server 16-31); a state waiting for a private-key operation is not (its input is
replayed instead). Each state holds a common.Handshake of plain fields and the
config; the Handshake is written whole, and the config is the one restore is given.
"""

from __future__ import annotations

from ..config import ClientConfig, ServerConfig
from ..core import HandshakeState
from ..snapshot import SnapshotError, SnapshotReader, SnapshotWriter
from . import client, server
from .common import Handshake, Transcript
from .suites import TLS12_SUITES

_CLIENT_TAGS: dict[type, int] = {
    client.ExpectCertificate: 1,
    client.ExpectServerKeyExchange: 2,
    client.ExpectCertificateRequest: 3,
    client.ExpectServerHelloDone: 4,
    client.ExpectChangeCipherSpec: 5,
    client.ExpectFinished: 6,
}
_SERVER_TAGS: dict[type, int] = {
    server.ExpectClientCertificate: 16,
    server.ExpectClientKeyExchange: 17,
    server.ExpectCertificateVerify: 18,
    server.ExpectChangeCipherSpec: 19,
    server.ExpectFinished: 20,
}
_CLIENT_STATES = {tag: cls for cls, tag in _CLIENT_TAGS.items()}
_SERVER_STATES = {tag: cls for cls, tag in _SERVER_TAGS.items()}


def is_tls12_state(state: HandshakeState) -> bool:
    return type(state) in _CLIENT_TAGS or type(state) in _SERVER_TAGS


def state_tag(state: HandshakeState, *, is_client: bool) -> int:
    tag = (_CLIENT_TAGS if is_client else _SERVER_TAGS).get(type(state))
    if tag is None:
        raise SnapshotError(f"a connection in {type(state).__name__} cannot be snapshotted")
    return tag


def write_state(w: SnapshotWriter, state: HandshakeState) -> None:
    handshake: Handshake = state.handshake  # type: ignore[attr-defined]
    w.u16(handshake.suite)
    w.blob(handshake.client_random)
    w.blob(handshake.server_random)
    w.blob(handshake.transcript.messages())
    w.u16(handshake.group)
    w.u8(handshake.extended_master_secret)
    w.optional_blob(handshake.alpn_protocol)
    name = handshake.server_name
    w.optional_blob(name.encode() if name is not None else None)
    w.blobs(handshake.peer_chain)
    w.optional_u16(handshake.peer_scheme)
    w.optional_u16(handshake.signature_scheme)
    w.blob(handshake.ephemeral_private)
    w.blob(handshake.pre_master_secret)
    w.blob(handshake.client_public)
    request = handshake.certificate_request
    w.u8(request is not None)
    if request is not None:
        w.blob(request[0])
        w.u16_list(request[1])
    w.blob(handshake.master_secret)
    w.u16(handshake.peer_record_size_limit)
    w.u16(handshake.client_version)
    w.u16_list(handshake.client_signature_algorithms)
    w.blob(handshake.credential_digest)


def _read_handshake(r: SnapshotReader) -> Handshake:
    suite = r.u16()
    if suite not in TLS12_SUITES:
        raise SnapshotError(f"snapshot names an unknown TLS 1.2 suite 0x{suite:04x}")
    client_random = r.blob()
    server_random = r.blob()
    transcript = Transcript([r.blob()])
    group = r.u16()
    ems = r.flag()
    alpn = r.optional_blob()
    name = r.optional_blob()
    try:
        server_name = name.decode() if name is not None else None
    except UnicodeDecodeError:
        raise SnapshotError("snapshot has a server_name that is not UTF-8") from None
    handshake = Handshake(
        suite=suite,
        client_random=client_random,
        server_random=server_random,
        transcript=transcript,
        group=group,
        extended_master_secret=ems,
        alpn_protocol=alpn,
        server_name=server_name,
        peer_chain=r.blobs(),
        peer_scheme=r.optional_u16(),
        signature_scheme=r.optional_u16(),
        ephemeral_private=r.blob(),
        pre_master_secret=r.blob(),
        client_public=r.blob(),
    )
    if r.flag():
        handshake.certificate_request = (r.blob(), r.u16_list())
    handshake.master_secret = r.blob()
    handshake.peer_record_size_limit = r.u16()
    handshake.client_version = r.u16()
    handshake.client_signature_algorithms = r.u16_list()
    handshake.credential_digest = r.blob()
    if not 64 <= handshake.peer_record_size_limit <= 2**14:
        raise SnapshotError("snapshot has a record size limit out of range")
    if len(client_random) != 32 or len(server_random) != 32:
        raise SnapshotError("snapshot has a random of the wrong size")
    return handshake


def read_client_state(r: SnapshotReader, tag: int, config: ClientConfig) -> HandshakeState:
    cls = _CLIENT_STATES.get(tag)
    if cls is None:
        raise SnapshotError(f"snapshot has an unknown TLS 1.2 client state {tag}")
    state: HandshakeState = cls(config, _read_handshake(r))
    return state


def read_server_state(r: SnapshotReader, tag: int, config: ServerConfig) -> HandshakeState:
    cls = _SERVER_STATES.get(tag)
    if cls is None:
        raise SnapshotError(f"snapshot has an unknown TLS 1.2 server state {tag}")
    state: HandshakeState = cls(config, _read_handshake(r))
    return state
