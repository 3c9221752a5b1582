"""The fuzz targets' fixed world: a PKI, configs and recorded handshakes that are the same
bytes on every machine.

A committed PKI (tests/fuzz/pki/, make_pki.py), an Ed25519 key where our own signature
must be the same bytes every time, X25519 only (ML-KEM encapsulation draws randomness no
seed controls), seeded RNGs and a fixed clock: so a recorded flight's
Finished still verifies when the fuzzer replays the flights before it, and a mutation
reaches the state that reads it. Used by targets.py and make_corpus.py.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from handshaker.tls import (
    ClientAuth,
    ClientConfig,
    ClientConnection,
    Credential,
    NamedGroup,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
)

# Inside the certificates' validity, so a run in any year checks the same things.
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC).timestamp()


def seeded(seed: str) -> Callable[[int], bytes]:
    counter = [0]

    def draw(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{counter[0]}".encode()).digest()
            counter[0] += 1
        return out[:n]

    return draw


PKI = Path(__file__).with_name("pki")


def _credential(name: str) -> Credential:
    key = load_pem_private_key((PKI / f"{name}.key").read_bytes(), password=None)
    chain = tuple(x509.load_pem_x509_certificates((PKI / f"{name}.pem").read_bytes()))
    return Credential(chain, PrivateKeySigner(key))  # type: ignore[arg-type]


@dataclass(frozen=True)
class World:
    # The client target's pair: the client validates an ECDSA chain.
    client: ClientConfig
    server_for_client: ServerConfig
    # The server target's pair: an Ed25519 server key signs the same bytes every time, so
    # the recorded second flight (signed over the transcript) stays valid; its client does
    # not validate that chain (the WebPKI policy refuses Ed25519 leaves).
    server: ServerConfig
    client_for_server: ClientConfig
    mutual_server: ServerConfig
    mutual_client_for_server: ClientConfig
    mutual_client: ClientConfig
    mutual_server_for_client: ServerConfig


@cache
def world() -> World:
    root = x509.load_pem_x509_certificate((PKI / "root.pem").read_bytes())
    ecdsa, ed25519_leaf, client_leaf = (
        _credential("server-ecdsa"),
        _credential("server-ed25519"),
        _credential("client"),
    )
    groups = (NamedGroup.X25519,)
    client = ClientConfig(
        server_name="localhost",
        trust_anchors=(root,),
        alpn_protocols=(b"h2",),
        supported_groups=groups,
        key_share_groups=groups,
    )
    unverified = replace(client, verify_peer=False, trust_anchors=())
    server = ServerConfig(credential=ed25519_leaf, alpn_protocols=(b"h2",), supported_groups=groups)
    mutual = {"client_auth": ClientAuth.REQUIRED, "client_trust_anchors": (root,)}
    return World(
        client=client,
        server_for_client=replace(server, credential=ecdsa),
        server=server,
        client_for_server=unverified,
        mutual_server=replace(server, **mutual),  # type: ignore[arg-type]
        mutual_client_for_server=replace(unverified, credential=client_leaf),
        mutual_client=replace(client, credential=client_leaf),
        mutual_server_for_client=replace(server, credential=ecdsa, **mutual),  # type: ignore[arg-type]
    )


def _client(config: ClientConfig) -> ClientConnection:
    return ClientConnection(config, random=seeded("client"), clock=lambda: NOW)


def _server(config: ServerConfig) -> ServerConnection:
    return ServerConnection(config, random=seeded("server"), clock=lambda: NOW)


def client(mutual: bool) -> ClientConnection:
    """The client target's connection."""
    w = world()
    return _client(w.mutual_client if mutual else w.client)


def server(mutual: bool) -> ServerConnection:
    """The server target's connection."""
    w = world()
    return _server(w.mutual_server if mutual else w.server)


def _record(c: ClientConnection, s: ServerConnection) -> tuple[bytes, bytes, bytes]:
    hello = c.data_to_send()
    s.receive_data(hello)
    server_flight = s.data_to_send()
    c.receive_data(server_flight)
    second = c.data_to_send()
    s.receive_data(second)
    if s.state.value != "COMPLETE":
        raise AssertionError(f"the recorded handshake must complete: {list(s.events())}")
    return hello, server_flight, second


@cache
def server_flights(mutual: bool) -> tuple[bytes, bytes, bytes]:
    """(ClientHello, server flight, client's second flight) with the server target's server."""
    w = world()
    return _record(
        _client(w.mutual_client_for_server if mutual else w.client_for_server), server(mutual)
    )


@cache
def client_flights(mutual: bool) -> tuple[bytes, bytes, bytes]:
    """The same with the client target's client."""
    w = world()
    return _record(
        client(mutual), _server(w.mutual_server_for_client if mutual else w.server_for_client)
    )
