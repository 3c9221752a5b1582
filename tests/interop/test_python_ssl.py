"""The engine against Python's `ssl` module (the system OpenSSL 3.0), peers run in threads."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import pytest
from handshaker.tls import CipherSuite, ClientAuth, NamedGroup
from pki import PemFiles, PkiFiles, TestPKI

from .driver import listen_localhost
from .harness import (
    PING,
    SCHEME_FOR_KEY_TYPE,
    client_config,
    engine_client,
    engine_server,
    server_config,
)

pytestmark = pytest.mark.interop

TIMEOUT = 15.0


class PeerThread:
    """Runs a peer function in a thread; join() re-raises what it raised."""

    def __init__(self, target: Callable[[], dict[str, Any]]) -> None:
        self.info: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.info = self._target()
        except BaseException as error:
            self._error = error

    def join(self) -> dict[str, Any]:
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the ssl peer did not finish"
        if self._error is not None:
            raise self._error
        return self.info


def _read_line(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _describe(tls: ssl.SSLSocket) -> dict[str, Any]:
    cipher = tls.cipher()
    return {
        "version": tls.version(),
        "cipher": cipher[0] if cipher else None,
        "alpn": tls.selected_alpn_protocol(),
        "peer": tls.getpeercert(),
    }


def _common_name(peer: dict[str, Any]) -> str:
    for rdn in peer["subject"]:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    raise AssertionError("no commonName in the peer certificate")


def _server_context(leaf_files: PemFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(leaf_files.chain, leaf_files.key)
    return context


def _client_context(pki_files: PkiFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(pki_files.root_ca)
    return context


def _serve_one(listener: socket.socket, context: ssl.SSLContext) -> Callable[[], dict[str, Any]]:
    """A one-connection echo server: handshake, echo one line, close_notify both ways."""

    def serve() -> dict[str, Any]:
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        with context.wrap_socket(conn, server_side=True) as tls:
            info = _describe(tls)
            line = _read_line(tls)
            info["received"] = line
            tls.sendall(b"echo: " + line)
            tls.unwrap()
        return info

    return serve


# --- the engine as client, against an ssl server ------------------------------------


@pytest.mark.parametrize(
    ("server_curve", "group", "hello_retry"),
    [
        (None, NamedGroup.X25519, False),
        # One ECDH curve on the server: the engine's X25519 share is refused, HRR follows.
        ("secp384r1", NamedGroup.SECP384R1, True),
    ],
    ids=["default", "hrr-secp384r1"],
)
def test_engine_client_with_python_ssl_server(
    pki: TestPKI,
    pki_files: PkiFiles,
    server_curve: str | None,
    group: int,
    hello_retry: bool,
) -> None:
    context = _server_context(pki_files[pki.servers["rsa-2048"]])
    context.set_alpn_protocols(["h2", "http/1.1"])
    if server_curve:
        context.set_ecdh_curve(server_curve)
    with listen_localhost() as listener:
        peer = PeerThread(_serve_one(listener, context))
        config = client_config(
            pki,
            alpn_protocols=(b"http/1.1",),
            key_share_groups=(NamedGroup.X25519,),
        )
        with engine_client(listener.getsockname()[1], config) as session:
            result = session.outcome.result
            assert result.group == group
            assert result.hello_retry == hello_retry
            assert result.alpn_protocol == b"http/1.1"
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE["rsa-2048"]
            channel = session.channel()
            channel.send(PING)
            assert channel.receive_line() == b"echo: " + PING
            channel.close()
            assert channel.receive_until_closed() == b""
            assert channel.peer_closed
            # OpenSSL servers send NewSessionTickets after the handshake; they were skipped.
            assert channel.post_handshake_messages >= 1
        info = peer.join()
    assert info["version"] == "TLSv1.3"
    assert info["alpn"] == "http/1.1"
    assert info["received"] == PING
    assert info["cipher"] == CipherSuite(result.cipher_suite).name


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_client_authenticates_to_python_ssl_server(
    pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    context = _server_context(pki_files[pki.servers["ed25519"]])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki_files.root_ca)
    with listen_localhost() as listener:
        peer = PeerThread(_serve_one(listener, context))
        config = client_config(pki, credential=pki.clients[key_type].credential())
        with engine_client(listener.getsockname()[1], config) as session:
            result = session.outcome.result
            assert result.signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE["ed25519"]
            channel = session.channel()
            channel.send(PING)
            assert channel.receive_line() == b"echo: " + PING
            channel.close()
            assert channel.receive_until_closed() == b""
        info = peer.join()
    assert _common_name(info["peer"]) == f"client {key_type}"


# --- the engine as server, against an ssl client ------------------------------------


def _memory_bio_client(
    port: int, context: ssl.SSLContext, message: bytes
) -> Callable[[], dict[str, Any]]:
    """A client that writes `message` in the same TCP send as its Finished."""

    def run() -> dict[str, Any]:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:

            def receive() -> None:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                incoming.write(data)

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    receive()
            tls.write(message)
            # Finished and the first application record leave together.
            flight = outgoing.read()
            sock.sendall(flight)
            reply = b""
            while not reply.endswith(b"\n"):
                try:
                    reply += tls.read(4096)
                except ssl.SSLWantReadError:
                    receive()
            # Queue our close_notify; we do not wait for the server's.
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()
            sock.sendall(outgoing.read())
            return {"reply": reply, "flight": len(flight), "version": tls.version()}

    return run


def test_python_ssl_client_data_right_behind_finished_reaches_the_channel(
    pki: TestPKI, pki_files: PkiFiles
) -> None:
    message = b"sent with the client Finished\n"
    with listen_localhost() as listener:
        peer = PeerThread(
            _memory_bio_client(listener.getsockname()[1], _client_context(pki_files), message)
        )
        with engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session:
            outcome = session.outcome
            assert outcome.result.group == NamedGroup.X25519
            # The application record arrived in the same read as the Finished: the
            # engine must hand it back instead of swallowing it.
            assert outcome.unconsumed, "the engine kept no bytes behind the client Finished"
            channel = session.channel()
            assert channel.receive_line() == message
            channel.send(b"echo: " + message)
            assert channel.receive_until_closed() == b""
            assert channel.peer_closed
        info = peer.join()
    assert info["reply"] == b"echo: " + message
    assert info["version"] == "TLSv1.3"


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_python_ssl_client_authenticates_to_engine_server(
    pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    context = _client_context(pki_files)
    context.load_cert_chain(pki_files[client_leaf].chain, pki_files[client_leaf].key)
    context.set_alpn_protocols(["h2"])
    message = b"mutually authenticated\n"

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

    with listen_localhost() as listener:
        peer = PeerThread(run)
        config = server_config(
            pki.servers["rsa-pss"],
            alpn_protocols=(b"h2",),
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.peer_certificates == client_leaf.credential().chain_der
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            assert result.alpn_protocol == b"h2"
            channel = session.channel()
            assert channel.receive_line() == message
            channel.send(b"echo: " + message)
            assert channel.receive_until_closed() == b""
            channel.close()
        info = peer.join()
    assert info["reply"] == b"echo: " + message
    assert info["alpn"] == "h2"
    assert _common_name(info["peer"]) == "server rsa-pss"
