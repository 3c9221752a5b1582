"""Fuzz targets: each role's receive_data, and the proto-to-config translation.

Each target takes one input and must never raise: the engine ends any input with an
event (a failure queues its alert), and the options translation refuses bad options
with one of the errors the servicer maps to a status code. Everything is
deterministic (a fixed Ed25519 credential, seeded RNGs, a fixed clock), so a seed
recorded from a real handshake replays byte for byte: `make_corpus()` writes them.

Run them with `tests/fuzz/run.py TARGET SECONDS` (atheris); the suite replays the
committed corpus (test_fuzz_corpus.py).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from google.protobuf.message import DecodeError
from handshaker.api.options import ConfigFactory, InvalidOptions
from handshaker.keystore import (
    EMPTY_POLICY,
    LOCAL,
    AccessDenied,
    KeyNotFound,
    KeystoreUnavailable,
    MemoryKeyStore,
    Role,
)
from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    ConnectionState,
    Credential,
    NamedGroup,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
)
from handshaker.tls.connection import Connection
from handshaker.v1 import handshaker_pb2 as pb

CORPUS = Path(__file__).parent / "corpus"
CLOCK = 1_800_000_000.0  # a fixed "now" inside the credential's validity


def _seeded(seed: str) -> Callable[[int], bytes]:
    counter = itertools.count()

    def draw(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{next(counter)}".encode()).digest()
        return out[:n]

    return draw


def _credential() -> Credential:
    """A self-signed Ed25519 credential that is the same bytes on every run."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz key").digest())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.test")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("fuzz.test")]), critical=False)
        .sign(key, None)
    )
    return Credential((certificate,), PrivateKeySigner(key))


CREDENTIAL = _credential()


def new_client() -> ClientConnection:
    config = ClientConfig(
        server_name="fuzz.test",
        verify_peer=False,
        key_share_groups=(NamedGroup.X25519,),
    )
    return ClientConnection(config, random=_seeded("fuzz/client"), clock=lambda: CLOCK)


def new_server() -> ServerConnection:
    return ServerConnection(
        ServerConfig(credential=CREDENTIAL), random=_seeded("fuzz/server"), clock=lambda: CLOCK
    )


def _drain(conn: Connection) -> None:
    conn.data_to_send()
    list(conn.events())
    # Every input ends the handshake or leaves it waiting; never an exception.
    assert conn.state in (
        ConnectionState.HANDSHAKING,
        ConnectionState.COMPLETE,
        ConnectionState.FAILED,
    )


def _feed(conn: Connection, data: bytes) -> None:
    # The first byte chooses where the input is split in two deliveries, so record
    # boundaries falling between reads get exercised too.
    if not data:
        return
    cut = data[0] % (len(data) + 1)
    for part in (data[1:cut], data[max(cut, 1) :]):
        if part and conn.state is ConnectionState.HANDSHAKING:
            conn.receive_data(part)
            _drain(conn)


def server_receive(data: bytes) -> None:
    """A server-role connection fed the input as the client's bytes."""
    _feed(new_server(), data)


def client_receive(data: bytes) -> None:
    """A client-role connection (its ClientHello sent) fed the input as the server's bytes."""
    client = new_client()
    client.data_to_send()
    _feed(client, data)


_KEYSTORE = MemoryKeyStore(
    {"fuzz": CREDENTIAL},
    {"default": CREDENTIAL.certificate_chain, "other": CREDENTIAL.certificate_chain},
    policy=EMPTY_POLICY.grant_credential("fuzz", LOCAL, (Role.SERVER, Role.CLIENT))
    .grant_trust_bundle("default", LOCAL)
    .grant_trust_bundle("other", LOCAL),
)
# The refusals the servicer turns into INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED
# and UNAVAILABLE; anything else escaping the translation is a finding.
REFUSALS = (InvalidOptions, KeyNotFound, AccessDenied, KeystoreUnavailable)


def options(data: bytes) -> None:
    """The input's first byte picks ClientOptions or ServerOptions; the rest is the message."""
    if not data:
        return
    message: pb.ClientOptions | pb.ServerOptions = (
        pb.ClientOptions() if data[0] & 1 else pb.ServerOptions()
    )
    try:
        message.ParseFromString(data[1:])
    except DecodeError:
        return
    # A fresh factory: a cached config must not hide a path.
    factory = ConfigFactory(_KEYSTORE, clock=lambda: CLOCK)
    try:
        if isinstance(message, pb.ClientOptions):
            ClientConnection(factory.client(message, LOCAL), random=_seeded("fuzz/options"))
        else:
            ServerConnection(factory.server(message, LOCAL), random=_seeded("fuzz/options"))
    except REFUSALS:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "server_receive": server_receive,
    "client_receive": client_receive,
    "options": options,
}


def _recorded_flights() -> tuple[bytes, bytes, bytes]:
    """(ClientHello flight, server flight, client final flight) of a real handshake."""
    client, server = new_client(), new_server()
    hello = client.data_to_send()
    server.receive_data(hello)
    server_flight = server.data_to_send()
    client.receive_data(server_flight)
    final = client.data_to_send()
    server.receive_data(final)
    assert client.state is ConnectionState.COMPLETE, list(client.events())
    assert server.state is ConnectionState.COMPLETE, list(server.events())
    return hello, server_flight, final


def seeds() -> dict[str, dict[str, bytes]]:
    """The corpus: real flights for the engine targets, real options for the translation."""
    hello, server_flight, final = _recorded_flights()
    root_pem = CREDENTIAL.certificate_chain[0].public_bytes(Encoding.PEM).decode()
    client_options = {
        "plain": pb.ClientOptions(server_name="fuzz.test"),
        "full": pb.ClientOptions(
            server_name="fuzz.test",
            alpn_protocols=["h2", "http/1.1"],
            trust_bundle="other",
            credential="fuzz",
            cipher_suites=[0x1301, 0x1303],
            groups=[0x1D, 0x17],
            key_share_groups=[0x1D],
            signature_schemes=[0x0807, 0x0403],
            keylog=True,
        ),
        "inline": pb.ClientOptions(server_name="127.0.0.1", trust_anchors_pem=root_pem),
    }
    server_options = {
        "plain": pb.ServerOptions(),
        "named": pb.ServerOptions(credential="fuzz", alpn_protocols=["h2"]),
        "client-auth": pb.ServerOptions(
            credential="fuzz",
            client_auth=pb.CLIENT_AUTH_REQUIRED,
            client_trust_anchors_pem=root_pem,
        ),
    }
    return {
        # The leading byte 0 delivers each seed in one piece.
        "server_receive": {"client-hello": b"\0" + hello, "whole-client": b"\0" + hello + final},
        "client_receive": {"server-flight": b"\0" + server_flight},
        "options": {
            **{f"client-{k}": b"\1" + v.SerializeToString() for k, v in client_options.items()},
            **{f"server-{k}": b"\0" + v.SerializeToString() for k, v in server_options.items()},
        },
    }


def make_corpus(root: Path = CORPUS) -> None:
    for target, named in seeds().items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in named.items():
            (folder / name).write_bytes(data)
