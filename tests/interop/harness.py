"""Engine-side building blocks shared by the interop tests: configs, expectations, sessions.

One place that says what a peer should see for each key type and group, and
how the engine is run in each role over a real socket, so each test module only
describes its peer.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    ServerConfig,
    ServerConnection,
    SignatureScheme,
)
from pki import Leaf, TestPKI

from .driver import (
    ApplicationChannel,
    HandshakeOutcome,
    accept_one,
    connect_localhost,
    drive_handshake,
)
from .peers import PeerProcess

# The CertificateVerify scheme a TLS 1.3 peer signs with for each key type when
# the verifier offers every scheme (RSA keys sign SHA-256 PSS first everywhere).
SCHEME_FOR_KEY_TYPE: dict[str, int] = {
    "ecdsa-p256": SignatureScheme.ECDSA_SECP256R1_SHA256,
    "ecdsa-p384": SignatureScheme.ECDSA_SECP384R1_SHA384,
    "ecdsa-p521": SignatureScheme.ECDSA_SECP521R1_SHA512,
    "rsa-2048": SignatureScheme.RSA_PSS_RSAE_SHA256,
    "rsa-pss": SignatureScheme.RSA_PSS_PSS_SHA256,
    "ed25519": SignatureScheme.ED25519,
    "ed448": SignatureScheme.ED448,
}

PING = b"ping from the engine\n"


def client_config(pki: TestPKI, **overrides: Any) -> ClientConfig:
    """A client that trusts the test root and expects the name "localhost"."""
    base = ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
    return dataclasses.replace(base, **overrides)


def server_config(leaf: Leaf, **overrides: Any) -> ServerConfig:
    """A server presenting `leaf` (sent with its intermediate)."""
    return dataclasses.replace(ServerConfig(credential=leaf.credential()), **overrides)


@dataclass
class EngineSession:
    """One engine handshake over a socket, and the channel when it completed."""

    outcome: HandshakeOutcome
    sock: socket.socket

    def channel(self) -> ApplicationChannel:
        return ApplicationChannel(self.sock, self.outcome.result, self.outcome.unconsumed)


@contextmanager
def engine_client(port: int, config: ClientConfig) -> Iterator[EngineSession]:
    """Connect to 127.0.0.1:port and run the engine's client handshake."""
    with connect_localhost(port) as sock:
        outcome = drive_handshake(ClientConnection(config), sock)
        yield EngineSession(outcome, sock)


@contextmanager
def engine_server(listener: socket.socket, config: ServerConfig) -> Iterator[EngineSession]:
    """Accept one connection on `listener` and run the engine's server handshake."""
    with accept_one(listener) as sock:
        outcome = drive_handshake(ServerConnection(config), sock)
        yield EngineSession(outcome, sock)


# --- peers that speak the echo protocol (the Go and pyOpenSSL peers) -----------------
#
# Server mode: print the port, then a JSON line of negotiated parameters, answer
# one line with "echo: <line>", close. Client mode: print the parameters, send
# one line, print {"echo": ...}, close.


@contextmanager
def echo_server(command: list[str], *flags: str) -> Iterator[tuple[PeerProcess, int]]:
    """Start an echo peer in server mode; yield it and its port."""
    with PeerProcess([*command, "-mode", "server", *flags]) as peer:
        port = int(peer.wait_for(r"^(\d+)$")[1])
        yield peer, port


def exchange_with_echo_server(session: EngineSession, peer: PeerProcess) -> dict[str, Any]:
    """Send a line, expect it echoed, see the peer's close_notify; the peer's parameters."""
    negotiated = peer.wait_for_json("version")
    channel = session.channel()
    channel.send(PING)
    assert channel.receive_line() == b"echo: " + PING
    assert channel.receive_until_closed() == b""
    assert channel.peer_closed
    channel.close()
    assert peer.wait() == 0, peer.describe()
    assert peer.wait_for_json("received")["received"] == PING.decode().rstrip("\n")
    return negotiated


@contextmanager
def echo_client(command: list[str], listener: socket.socket, *flags: str) -> Iterator[PeerProcess]:
    """Start an echo peer in client mode against `listener`."""
    port = listener.getsockname()[1]
    with PeerProcess([*command, "-mode", "client", "-addr", f"127.0.0.1:{port}", *flags]) as peer:
        yield peer


def exchange_with_echo_client(
    session: EngineSession, peer: PeerProcess, message: str
) -> dict[str, Any]:
    """Answer the peer's line with "echo: <line>", see its close_notify; its parameters."""
    channel = session.channel()
    line = channel.receive_line()
    assert line == f"{message}\n".encode()
    channel.send(b"echo: " + line)
    assert channel.receive_until_closed() == b""
    assert channel.peer_closed
    channel.close()
    assert peer.wait() == 0, peer.describe()
    assert peer.wait_for_json("echo")["echo"] == f"echo: {message}"
    negotiated: dict[str, Any] = peer.wait_for_json("version")
    return negotiated
