"""What each TLS 1.3 state writes into a snapshot, and how it is rebuilt.

Every state that waits for a peer message is here, by a one-byte tag; a state
waiting for a private-key operation is not (its input is replayed instead).
Live objects are rebuilt from plain fields: the transcript hash from its
messages, traffic keys from their secrets, key shares from their private bytes,
the ClientHello from its encoding, the peer's leaf from its DER.
"""

from __future__ import annotations

from cryptography import x509

from ..config import ClientConfig, ServerConfig
from ..core import HandshakeState
from ..groups import KeyShare
from ..key_schedule import ApplicationSecrets, CipherSuiteParams, HandshakeSecrets, TrafficSecret
from ..messages import parse_client_hello
from ..snapshot import SnapshotError, SnapshotReader, SnapshotWriter
from . import client, client_flight, server
from .common import Transcript

# Client states 1-15, server states 16-31.
_CLIENT_TAGS: dict[type, int] = {
    client.ExpectServerHello: 1,
    client_flight.ExpectEncryptedExtensions: 2,
    client_flight.ExpectCertificateOrCertificateRequest: 3,
    client_flight.ExpectCertificate: 4,
    client_flight.ExpectCertificateVerify: 5,
    client_flight.ExpectFinished: 6,
}
_SERVER_TAGS: dict[type, int] = {
    server.ExpectClientHello: 16,
    server.ExpectClientCertificate: 17,
    server.ExpectClientCertificateVerify: 18,
    server.ExpectClientFinished: 19,
}


def state_tag(state: HandshakeState, *, is_client: bool) -> int:
    tag = (_CLIENT_TAGS if is_client else _SERVER_TAGS).get(type(state))
    if tag is None:
        raise SnapshotError(f"a connection in {type(state).__name__} cannot be snapshotted")
    return tag


# --- shared fields ------------------------------------------------------------------------


def _write_transcript(w: SnapshotWriter, transcript: Transcript) -> None:
    w.u16(transcript.params.suite)
    w.blob(transcript.messages())


def _read_transcript(r: SnapshotReader) -> Transcript:
    return Transcript.restore(r.suite(), r.blob())


def _write_handshake_secrets(w: SnapshotWriter, secrets: HandshakeSecrets) -> None:
    w.blob(secrets.handshake_secret)
    w.blob(secrets.client.secret)
    w.blob(secrets.server.secret)


def _secret(r: SnapshotReader, params: CipherSuiteParams) -> bytes:
    value = r.blob()
    if len(value) != params.hash_len:
        raise SnapshotError("snapshot has a secret of the wrong size")
    return value


def _read_handshake_secrets(r: SnapshotReader, params: CipherSuiteParams) -> HandshakeSecrets:
    return HandshakeSecrets(
        params=params,
        handshake_secret=_secret(r, params),
        client=TrafficSecret.derive(params, _secret(r, params)),
        server=TrafficSecret.derive(params, _secret(r, params)),
    )


def _leaf(chain_der: tuple[bytes, ...]) -> x509.Certificate:
    if not chain_der:
        raise SnapshotError("snapshot has an empty peer chain")
    try:
        return x509.load_der_x509_certificate(chain_der[0])
    except ValueError:
        raise SnapshotError("snapshot has a peer certificate that does not parse") from None


# --- the client -----------------------------------------------------------------------------


def write_client_state(w: SnapshotWriter, state: HandshakeState) -> None:
    if isinstance(state, client.ExpectServerHello):
        w.blob(state.hello_message)
        w.u8(len(state.shares))
        for group, share in state.shares.items():
            w.u16(group)
            w.blob(share.private_bytes())
        retry = state.retry
        w.u8(retry is not None)
        if retry is not None:
            _write_transcript(w, retry.transcript)
            w.u8(retry.ccs_sent)
        return
    assert isinstance(
        state,
        client_flight.ExpectEncryptedExtensions
        | client_flight.ExpectCertificateOrCertificateRequest
        | client_flight.ExpectCertificate
        | client_flight.ExpectCertificateVerify
        | client_flight.ExpectFinished,
    )
    negotiated = state.state
    w.blob(negotiated.client_random)
    w.u16_list(negotiated.offered)
    w.u16(negotiated.group)
    _write_transcript(w, negotiated.transcript)
    _write_handshake_secrets(w, negotiated.secrets)
    w.u8(negotiated.hello_retry)
    w.optional_blob(negotiated.alpn_protocol)
    w.u16(negotiated.peer_record_size_limit)
    request = negotiated.certificate_request
    w.u8(request is not None)
    if request is not None:
        w.blob(request[0])
        w.u16_list(request[1])
    if isinstance(state, client_flight.ExpectCertificateVerify | client_flight.ExpectFinished):
        w.blobs(
            state.chain_der
            if isinstance(state, client_flight.ExpectCertificateVerify)
            else state.peer_certificates
        )
    if isinstance(state, client_flight.ExpectFinished):
        w.u16(state.peer_scheme)


def read_client_state(r: SnapshotReader, tag: int, config: ClientConfig) -> HandshakeState:
    if tag == 1:
        message = r.blob()
        try:
            hello = parse_client_hello(message[4:])
        except Exception:
            raise SnapshotError("snapshot has a ClientHello that does not parse") from None
        shares: dict[int, KeyShare] = {}
        for _ in range(r.u8()):
            group = r.u16()
            try:
                shares[group] = KeyShare.from_private_bytes(group, r.blob())
            except (ValueError, TypeError):
                raise SnapshotError("snapshot has an unusable key share") from None
        retry = None
        if r.flag():
            transcript = _read_transcript(r)
            retry = client.Retry(transcript.params, transcript, r.flag())
        return client.ExpectServerHello(config, hello, message, shares, retry)
    states = {v: k for k, v in _CLIENT_TAGS.items()}
    if tag not in states:
        raise SnapshotError(f"snapshot has an unknown client state {tag}")
    client_random = r.blob()
    offered = frozenset(r.u16_list())
    group = r.u16()
    transcript = _read_transcript(r)
    params = transcript.params
    secrets = _read_handshake_secrets(r, params)
    negotiated = client_flight.Negotiated(
        config=config,
        client_random=client_random,
        offered=offered,
        params=params,
        group=group,
        secrets=secrets,
        transcript=transcript,
        hello_retry=r.flag(),
        alpn_protocol=r.optional_blob(),
        peer_record_size_limit=r.u16(),
    )
    if r.flag():
        negotiated.certificate_request = (r.blob(), r.u16_list())
    cls = states[tag]
    if cls is client_flight.ExpectCertificateVerify:
        chain = r.blobs()
        return client_flight.ExpectCertificateVerify(negotiated, _leaf(chain), chain)
    if cls is client_flight.ExpectFinished:
        chain = r.blobs()
        return client_flight.ExpectFinished(negotiated, chain, r.u16())
    state: HandshakeState = cls(negotiated)
    return state


# --- the server -----------------------------------------------------------------------------


def write_server_state(w: SnapshotWriter, state: HandshakeState) -> None:
    if isinstance(state, server.ExpectClientHello):
        retry = state.retry
        w.u8(retry is not None)
        if retry is not None:
            w.u16(retry.group)
            _write_transcript(w, retry.transcript)
            w.optional_blob(retry.cookie)
            w.u8(retry.ccs_sent)
        return
    assert isinstance(
        state,
        server.ExpectClientCertificate
        | server.ExpectClientCertificateVerify
        | server.ExpectClientFinished,
    )
    negotiated = state.state
    _write_transcript(w, negotiated.transcript)
    w.u16(negotiated.group)
    _write_handshake_secrets(w, negotiated.secrets)
    application = negotiated.application
    w.blob(application.master_secret)
    w.blob(application.client.secret)
    w.blob(application.server.secret)
    w.blob(application.exporter_master_secret)
    w.u16(negotiated.signature_scheme)
    w.optional_blob(negotiated.alpn_protocol)
    w.u8(negotiated.hello_retry)
    w.u16(negotiated.peer_record_size_limit)
    w.blob(negotiated.client_random)
    server_name = negotiated.server_name
    w.optional_blob(server_name.encode() if server_name is not None else None)
    if isinstance(state, server.ExpectClientCertificateVerify):
        w.blobs(state.chain_der)
    elif isinstance(state, server.ExpectClientFinished):
        w.blobs(state.peer_certificates)
        w.optional_u16(state.peer_scheme)


def read_server_state(r: SnapshotReader, tag: int, config: ServerConfig) -> HandshakeState:
    if tag == 16:
        retry = None
        if r.flag():
            group = r.u16()
            transcript = _read_transcript(r)
            retry = server.Retry(transcript.params, group, transcript, r.optional_blob(), r.flag())
        return server.ExpectClientHello(config, retry)
    states = {v: k for k, v in _SERVER_TAGS.items()}
    if tag not in states:
        raise SnapshotError(f"snapshot has an unknown server state {tag}")
    transcript = _read_transcript(r)
    params = transcript.params
    group = r.u16()
    secrets = _read_handshake_secrets(r, params)
    application = ApplicationSecrets(
        params=params,
        master_secret=_secret(r, params),
        client=TrafficSecret.derive(params, _secret(r, params)),
        server=TrafficSecret.derive(params, _secret(r, params)),
        exporter_master_secret=_secret(r, params),
    )
    signature_scheme = r.u16()
    alpn_protocol = r.optional_blob()
    hello_retry = r.flag()
    peer_record_size_limit = r.u16()
    client_random = r.blob()
    name = r.optional_blob()
    try:
        server_name = name.decode() if name is not None else None
    except UnicodeDecodeError:
        raise SnapshotError("snapshot has a server_name that is not UTF-8") from None
    negotiated = server.Negotiated(
        params=params,
        group=group,
        secrets=secrets,
        application=application,
        transcript=transcript,
        signature_scheme=signature_scheme,
        alpn_protocol=alpn_protocol,
        hello_retry=hello_retry,
        peer_record_size_limit=peer_record_size_limit,
        client_random=client_random,
        server_name=server_name,
    )
    cls = states[tag]
    if cls is server.ExpectClientCertificateVerify:
        chain = r.blobs()
        return server.ExpectClientCertificateVerify(config, negotiated, _leaf(chain), chain)
    if cls is server.ExpectClientFinished:
        chain = r.blobs()
        return server.ExpectClientFinished(config, negotiated, chain, r.optional_u16())
    return server.ExpectClientCertificate(config, negotiated)
