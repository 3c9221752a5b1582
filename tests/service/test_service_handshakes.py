"""Handshakes through a running service, over the unary API and the Handshake stream alike.

Both sides of a connection run in the service (two sessions relaying out_bytes),
or one side is Python's ssl over a real socket on 127.0.0.1. Application data
crosses in both directions with the keys the service returns.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker.tls import CipherSuite, NamedGroup
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from pki import PkiFiles, TestPKI
from service_kit import (
    COMPLETE,
    NEED_INPUT,
    TLS13,
    RecordLayer,
    ServiceProcess,
    SslPeer,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    drive_over_socket,
    loopback_listener,
    open_handshake,
    relay,
)

APIS = ("unary", "stream")


def _hash(cipher_suite: int) -> hashes.HashAlgorithm:
    if cipher_suite == CipherSuite.TLS_AES_256_GCM_SHA384:
        return hashes.SHA384()
    return hashes.SHA256()


def _expand_label(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    # struct { uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>; }
    full_label = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return HKDFExpand(algorithm, length, info).derive(secret)


def rfc8446_exporter(
    cipher_suite: int, exporter_master_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """RFC 8446 section 7.5:

    TLS-Exporter(label, context_value, key_length) =
        HKDF-Expand-Label(Derive-Secret(Secret, label, ""),
                          "exporter", Hash(context_value), key_length)
    """
    algorithm = _hash(cipher_suite)
    name = algorithm.name
    empty_hash = hashlib.new(name, b"").digest()
    derived = _expand_label(
        algorithm, exporter_master_secret, label, empty_hash, algorithm.digest_size
    )
    return _expand_label(
        algorithm, derived, b"exporter", hashlib.new(name, context).digest(), length
    )


# --- service client vs service server ----------------------------------------------------------


@pytest.mark.parametrize("server_api", APIS)
@pytest.mark.parametrize("client_api", APIS)
def test_service_client_and_server_complete_and_carry_data_both_ways(
    stub: pb_grpc.HandshakerStub, client_api: str, server_api: str
) -> None:
    client = open_handshake(stub, client_api, client_options(alpn_protocols=["h2", "http/1.1"]))
    server = open_handshake(stub, server_api, pb.ServerOptions(alpn_protocols=["http/1.1"]))
    with client, server:
        c, s = relay(client, server)
        assert (c.state, s.state) == (COMPLETE, COMPLETE)
        client_keys, server_keys = client.keys(c), server.keys(s)

    for summary in (c.result, s.result):
        assert summary.version == TLS13
        assert summary.alpn_protocol == "http/1.1"
        assert summary.server_name == "localhost"
    assert c.result.cipher_suite == s.result.cipher_suite == client_keys.cipher_suite
    assert c.result.group == s.result.group != 0
    assert "localhost" in c.result.peer.dns_sans
    assert c.result.peer_signature_scheme == s.result.signature_scheme != 0
    assert not s.result.peer.chain_der  # no client certificate was asked for

    assert client_keys.write == server_keys.read
    assert client_keys.read == server_keys.write
    assert client_keys.exporter_master_secret == server_keys.exporter_master_secret
    assert client_keys.write.key != client_keys.read.key

    client_records, server_records = RecordLayer(client_keys), RecordLayer(server_keys)
    assert server_records.feed(client_records.seal(b"GET / HTTP/1.1\r\n\r\n")) == [
        b"GET / HTTP/1.1\r\n\r\n"
    ]
    assert client_records.feed(server_records.seal(b"HTTP/1.1 200 OK\r\n\r\n")) == [
        b"HTTP/1.1 200 OK\r\n\r\n"
    ]


@pytest.mark.parametrize("api", APIS)
def test_bytes_consumed_stops_at_the_client_finished_when_data_rides_behind_it(
    stub: pb_grpc.HandshakerStub, api: str
) -> None:
    client = open_handshake(stub, api, client_options())
    server = open_handshake(stub, api, pb.ServerOptions())
    with client, server:
        hello = client.step()
        server_flight = server.step(hello.out_bytes)
        finished = client.step(server_flight.out_bytes)
        assert finished.state == COMPLETE and finished.out_bytes
        client_records = RecordLayer(client.keys(finished))
        early_data = client_records.seal(b"first request") + client_records.seal(b"second")
        done = server.step(finished.out_bytes + early_data)
        assert done.state == COMPLETE
        assert done.bytes_consumed == len(finished.out_bytes)
        server_records = RecordLayer(server.keys(done))
    behind = (finished.out_bytes + early_data)[done.bytes_consumed :]
    assert server_records.feed(behind) == [b"first request", b"second"]


def test_bytes_consumed_counts_every_byte_fed_while_the_handshake_runs(
    stub: pb_grpc.HandshakerStub,
) -> None:
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions())
    hello = client.step().out_bytes
    # Split the ClientHello: the first piece is all handshake bytes, and too few to answer.
    first = server.step(hello[:7])
    assert (first.state, first.bytes_consumed, first.out_bytes) == (NEED_INPUT, 7, b"")
    second = server.step(hello[7:])
    assert second.state == NEED_INPUT and second.bytes_consumed == len(hello) - 7
    assert second.out_bytes


def test_keys_in_response_are_the_keys_get_keys_returns(stub: pb_grpc.HandshakerStub) -> None:
    client = UnaryHandshake(stub, client_options(), keys_in_response=True)
    server = UnaryHandshake(stub, pb.ServerOptions(), keys_in_response=True)
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert c.keys is not None and s.keys is not None
    assert c.keys == client.keys(c)
    assert s.keys == server.keys(s)
    assert c.keys.write == s.keys.read


def test_session_keys_say_how_each_side_authenticated_and_whether_a_retry_happened(
    stub: pb_grpc.HandshakerStub,
) -> None:
    # The client offers a share only for X25519; the server takes only P-256: a retry.
    client = UnaryHandshake(
        stub,
        client_options(key_share_groups=[0x001D], groups=[0x001D, 0x0017]),
        keys_in_response=True,
    )
    server = UnaryHandshake(stub, pb.ServerOptions(groups=[0x0017]), keys_in_response=True)
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert c.keys is not None and s.keys is not None
    assert c.keys.hello_retry and s.keys.hello_retry
    # The development `localhost` credential is ECDSA P-256: ecdsa_secp256r1_sha256.
    assert s.keys.signature_scheme == c.keys.peer_signature_scheme == 0x0403
    assert c.keys.signature_scheme == 0 and s.keys.peer_signature_scheme == 0


@pytest.mark.parametrize(
    "group",
    [
        NamedGroup.SECP256R1MLKEM768,
        NamedGroup.SECP384R1MLKEM1024,
        NamedGroup.MLKEM768,
        NamedGroup.MLKEM1024,
        NamedGroup.FFDHE2048,
    ],
    ids=lambda g: NamedGroup(g).name,
)
def test_the_options_accept_every_group_the_engine_has(
    stub: pb_grpc.HandshakerStub, group: int
) -> None:
    # The pure ML-KEM groups are not defaults but may be named in the options.
    client = UnaryHandshake(
        stub, client_options(groups=[group], key_share_groups=[group]), keys_in_response=True
    )
    server = UnaryHandshake(stub, pb.ServerOptions(groups=[group]), keys_in_response=True)
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert c.keys is not None and s.keys is not None
    assert c.keys.group == s.keys.group == group
    assert c.result.group == s.result.group == group
    assert not c.keys.hello_retry


def test_without_keys_in_response_the_complete_step_carries_no_keys(
    stub: pb_grpc.HandshakerStub,
) -> None:
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions())
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    assert c.keys is None and s.keys is None
    assert client.keys(c).write == server.keys(s).read


def test_both_sessions_of_a_connection_export_the_same_keying_material(
    stub: pb_grpc.HandshakerStub,
) -> None:
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions())
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    keys = client.keys(c)

    def export(session_id: str, label: bytes, context: bytes, length: int) -> bytes:
        request = pb.ExportKeyingMaterialRequest(
            session_id=session_id, label=label, context=context, length=length
        )
        material: bytes = stub.ExportKeyingMaterial(request).keying_material
        return material

    for label, context, length in (
        (b"EXPORTER-test", b"", 32),
        (b"EXPORTER-test", b"channel binding", 64),
        (b"EXPORTER-other", b"", 100),
    ):
        on_client = export(client.session_id, label, context, length)
        on_server = export(server.session_id, label, context, length)
        assert on_client == on_server
        assert len(on_client) == length
        assert on_client == rfc8446_exporter(
            keys.cipher_suite, keys.exporter_master_secret, label, context, length
        )
    assert export(client.session_id, b"EXPORTER-a", b"", 32) != export(
        client.session_id, b"EXPORTER-b", b"", 32
    )


# --- against Python's ssl over real sockets ------------------------------------------------


def _ssl_client_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _ssl_server_context(chain: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(chain, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.mark.parametrize("api", APIS)
def test_service_server_with_a_python_ssl_client(
    service: ServiceProcess, stub: pb_grpc.HandshakerStub, api: str
) -> None:
    peer = SslPeer(
        _ssl_client_context(service.dev_ca_pem), server_side=False, server_hostname="localhost"
    )
    handshake = open_handshake(stub, api, pb.ServerOptions(alpn_protocols=["http/1.1"]))
    with loopback_listener() as listener, handshake:
        thread = peer.run_client(listener.getsockname()[1], b"ping from python")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            step, behind = drive_over_socket(handshake, conn, speaks_first=False)
            assert step.state == COMPLETE, step.failure
            records = RecordLayer(handshake.keys(step))
            assert records.read_from(conn, behind) == b"ping from python"
            conn.sendall(records.seal(b"pong from the service"))
            thread.join(10)
    assert peer.error is None, repr(peer.error)
    assert peer.received == [b"pong from the service"]
    assert peer.version == "TLSv1.3"
    assert peer.alpn == "http/1.1" == step.result.alpn_protocol
    assert step.result.server_name == "localhost"


@pytest.mark.parametrize("api", APIS)
def test_service_client_with_a_python_ssl_server(
    stub: pb_grpc.HandshakerStub, pki: TestPKI, pki_files: PkiFiles, api: str
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    peer = SslPeer(
        _ssl_server_context(pki_files[leaf].chain, pki_files[leaf].key), server_side=True
    )
    options = client_options(
        alpn_protocols=["h2", "http/1.1"],
        trust_anchors_pem=pki.root.certificate.public_bytes(Encoding.PEM).decode(),
    )
    handshake = open_handshake(stub, api, options)
    with loopback_listener() as listener, handshake:
        thread = peer.run_server(listener, b"echo: ")
        with socket.create_connection(listener.getsockname(), timeout=10) as conn:
            step, behind = drive_over_socket(handshake, conn, speaks_first=True)
            assert step.state == COMPLETE, step.failure
            records = RecordLayer(handshake.keys(step))
            assert records.feed(behind) == []
            conn.sendall(records.seal(b"ping from the service"))
            # Python's ssl server sends NewSessionTickets first; the record layer skips them.
            assert records.read_from(conn) == b"echo: ping from the service"
            thread.join(10)
    assert peer.error is None, repr(peer.error)
    assert peer.received == [b"ping from the service"]
    assert step.result.alpn_protocol == "http/1.1"
    assert step.result.peer.chain_der[0] == leaf.certificate.public_bytes(Encoding.DER)
    assert step.result.peer.ip_sans == ["127.0.0.1"]


@pytest.mark.parametrize("api", APIS)
def test_service_server_asks_a_python_ssl_client_for_its_certificate(
    service: ServiceProcess,
    stub: pb_grpc.HandshakerStub,
    pki: TestPKI,
    pki_files: PkiFiles,
    api: str,
) -> None:
    client_leaf = pki.clients["ecdsa-p256"]
    context = _ssl_client_context(service.dev_ca_pem)
    context.load_cert_chain(pki_files[client_leaf].chain, pki_files[client_leaf].key)
    peer = SslPeer(context, server_side=False, server_hostname="localhost")
    options = pb.ServerOptions(
        client_auth=pb.CLIENT_AUTH_REQUIRED,
        client_trust_anchors_pem=pki.root.certificate.public_bytes(Encoding.PEM).decode(),
    )
    handshake = open_handshake(stub, api, options)
    with loopback_listener() as listener, handshake:
        thread = peer.run_client(listener.getsockname()[1], b"hello")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            step, behind = drive_over_socket(handshake, conn, speaks_first=False)
            assert step.state == COMPLETE, step.failure
            records = RecordLayer(handshake.keys(step))
            assert records.read_from(conn, behind) == b"hello"
            conn.sendall(records.seal(b"hello, client ecdsa-p256"))
            thread.join(10)
    assert peer.error is None, repr(peer.error)
    assert peer.received == [b"hello, client ecdsa-p256"]
    assert step.result.peer.chain_der[0] == client_leaf.certificate.public_bytes(Encoding.DER)
    assert "client ecdsa-p256" in step.result.peer.subject
    assert step.result.peer_signature_scheme != 0


def test_stream_and_unary_negotiate_alike(stub: pb_grpc.HandshakerStub) -> None:
    options = client_options(
        alpn_protocols=["http/1.1"], cipher_suites=[CipherSuite.TLS_AES_256_GCM_SHA384]
    )
    server_options = pb.ServerOptions(alpn_protocols=["http/1.1"])
    summaries = []
    session_ids = []
    for api in APIS:
        with (
            open_handshake(stub, api, options) as c_side,
            StreamHandshake(stub, server_options) as s_side,
        ):
            c, s = relay(c_side, s_side)
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
            summaries.append(c.result)
            session_ids.append(c.session_id)
    unary, stream = summaries
    assert unary.cipher_suite == stream.cipher_suite == CipherSuite.TLS_AES_256_GCM_SHA384
    assert unary.group == stream.group
    assert unary.alpn_protocol == stream.alpn_protocol == "http/1.1"
    assert unary.peer.chain_der == stream.peer.chain_der
    assert session_ids[0] and not session_ids[1]
