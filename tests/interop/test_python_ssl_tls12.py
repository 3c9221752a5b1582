"""The engine in TLS 1.2 against Python's `ssl` (system OpenSSL 3.0) with maximum_version
TLSv1_2: both roles, each key type family, client authentication, ALPN, and data both ways.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
from handshaker.tls import ClientAuth, ProtocolVersion
from pki import PemFiles, PkiFiles, TestPKI

from .driver import listen_localhost
from .harness import PING, client_config, engine_client, engine_server, server_config
from .test_python_ssl import TIMEOUT, PeerThread, _common_name, _describe, _read_line, _serve_one

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
KEY_TYPES = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"]


def _server_context(leaf_files: PemFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(leaf_files.chain, leaf_files.key)
    return context


def _client_context(pki_files: PkiFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(pki_files.root_ca)
    return context


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_engine_client_with_a_tls_1_2_python_ssl_server(
    pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    context = _server_context(pki_files[pki.servers[key_type]])
    context.set_alpn_protocols(["h2", "http/1.1"])
    with listen_localhost() as listener:
        peer = PeerThread(_serve_one(listener, context))
        config = client_config(pki, alpn_protocols=(b"http/1.1",))
        with engine_client(listener.getsockname()[1], config) as session:
            result = session.outcome.result
            assert result.version == TLS12
            assert result.alpn_protocol == b"http/1.1"
            assert result.extended_master_secret
            channel = session.channel()
            channel.send(PING)
            assert channel.receive_line() == b"echo: " + PING
            channel.close()
            assert channel.receive_until_closed() == b""
            assert channel.peer_closed
        info = peer.join()
    assert info["version"] == "TLSv1.2"
    assert info["received"] == PING


def test_engine_client_authenticates_to_a_tls_1_2_python_ssl_server(
    pki: TestPKI, pki_files: PkiFiles
) -> None:
    context = _server_context(pki_files[pki.servers["rsa-2048"]])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki_files.root_ca)
    with listen_localhost() as listener:
        peer = PeerThread(_serve_one(listener, context))
        config = client_config(pki, credential=pki.clients["ecdsa-p256"].credential())
        with engine_client(listener.getsockname()[1], config) as session:
            assert session.outcome.result.version == TLS12
            channel = session.channel()
            channel.send(PING)
            assert channel.receive_line() == b"echo: " + PING
            channel.close()
            assert channel.receive_until_closed() == b""
        info = peer.join()
    assert _common_name(info["peer"]) == "client ecdsa-p256"


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("client_auth", [False, True], ids=["server-auth", "mutual"])
def test_a_tls_1_2_python_ssl_client_with_the_engine_server(
    pki: TestPKI, pki_files: PkiFiles, key_type: str, client_auth: bool
) -> None:
    context = _client_context(pki_files)
    client_leaf = pki.clients["rsa-2048"]
    if client_auth:
        context.load_cert_chain(pki_files[client_leaf].chain, pki_files[client_leaf].key)
    context.set_alpn_protocols(["h2"])
    message = b"over TLS 1.2\n"

    def run() -> dict[str, Any]:
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            info = _describe(tls)
            tls.sendall(message)
            info["reply"] = _read_line(tls)
            tls.unwrap()
            return info

    overrides: dict[str, Any] = {"alpn_protocols": (b"h2",)}
    if client_auth:
        overrides.update(
            client_auth=ClientAuth.REQUIRED, client_trust_anchors=(pki.root.certificate,)
        )
    with listen_localhost() as listener:
        peer = PeerThread(run)
        config = server_config(pki.servers[key_type], **overrides)
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.version == TLS12
            assert result.alpn_protocol == b"h2"
            if client_auth:
                assert result.peer_certificates == client_leaf.credential().chain_der
            channel = session.channel()
            assert channel.receive_line() == message
            channel.send(b"echo: " + message)
            assert channel.receive_until_closed() == b""
            channel.close()
        info = peer.join()
    assert info["version"] == "TLSv1.2"
    assert info["reply"] == b"echo: " + message
    assert _common_name(info["peer"]) == f"server {key_type}"
