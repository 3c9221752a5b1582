"""Handshakes restored from snapshots, flight by flight, against OpenSSL.

The subject is a RemoteConnection (tests/snapshot_kit.py): each flight it gets
is taken by a connection restored from the last snapshot, alternately in a
fresh worker process and in this one. The peers are `openssl s_server` and
`s_client` (OpenSSL 3) and pyOpenSSL on OpenSSL 4 for the hybrid ML-KEM group;
application data then crosses both ways with the keys the restored run produced.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from handshaker.tls import NamedGroup
from pki import PkiFiles, TestPKI
from snapshot_kit import RemoteConnection, Spec, Worker

from .driver import (
    ApplicationChannel,
    HandshakeOutcome,
    accept_one,
    connect_localhost,
    drive_handshake,
    listen_localhost,
)
from .harness import (
    echo_client,
    echo_server,
    exchange_with_echo_client,
    exchange_with_echo_server,
)
from .test_openssl_cli import exchange_with_s_client, exchange_with_s_server, s_client, s_server

pytestmark = pytest.mark.interop

HYBRID = "X25519MLKEM768"


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker()
    yield process
    process.close()


def _client_spec(pki_files: PkiFiles, **fields: Any) -> Spec:
    return {"role": "client", "trust": str(pki_files.root_ca), **fields}


def _server_spec(pki_files: PkiFiles, pki: TestPKI, key_type: str, **fields: Any) -> Spec:
    files = pki_files[pki.servers[key_type]]
    return {
        "role": "server",
        "credential": {"chain": str(files.chain), "key": str(files.key)},
        **fields,
    }


def _drive(connection: RemoteConnection, sock: socket.socket) -> HandshakeOutcome:
    outcome = drive_handshake(connection, sock)  # type: ignore[arg-type]
    # Every flight was continued from bytes, at least once in the worker process.
    assert "worker" in connection.hops
    return outcome


@contextmanager
def _restored_client(
    worker: Worker, spec: Spec, port: int
) -> Iterator[tuple[HandshakeOutcome, ApplicationChannel]]:
    with connect_localhost(port) as sock:
        outcome = _drive(RemoteConnection(worker, spec), sock)
        yield outcome, ApplicationChannel(sock, outcome.result, outcome.unconsumed)


@contextmanager
def _restored_server(
    worker: Worker, spec: Spec, listener: socket.socket
) -> Iterator[tuple[HandshakeOutcome, ApplicationChannel]]:
    with accept_one(listener) as sock:
        outcome = _drive(RemoteConnection(worker, spec), sock)
        yield outcome, ApplicationChannel(sock, outcome.result, outcome.unconsumed)


# --- the restored engine as client, against s_server ----------------------------------------


@pytest.mark.parametrize(
    ("server_options", "client_fields", "group", "hello_retry"),
    [
        (("-groups", "X25519"), {}, NamedGroup.X25519, False),
        (
            ("-groups", "P-384"),
            {"key_share_groups": [NamedGroup.X25519]},
            NamedGroup.SECP384R1,
            True,
        ),
    ],
    ids=["x25519", "hrr-p384"],
)
def test_restored_client_completes_against_s_server(
    *,
    openssl_cli: str,
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    server_options: tuple[str, ...],
    client_fields: dict[str, Any],
    group: int,
    hello_retry: bool,
) -> None:
    with (
        s_server(openssl_cli, pki_files, pki.servers["ecdsa-p384"], *server_options) as (
            peer,
            port,
        ),
        _restored_client(worker, _client_spec(pki_files, **client_fields), port) as (
            outcome,
            channel,
        ),
    ):
        assert outcome.result.group == group
        assert outcome.result.hello_retry is hello_retry
        exchange_with_s_server(channel, peer)


def test_restored_client_authenticates_to_s_server(
    openssl_cli: str, worker: Worker, pki: TestPKI, pki_files: PkiFiles
) -> None:
    client_files = pki_files[pki.clients["ecdsa-p256"]]
    spec = _client_spec(
        pki_files, credential={"chain": str(client_files.chain), "key": str(client_files.key)}
    )
    options: tuple[str | Path, ...] = (
        "-Verify",
        "2",
        "-verify_return_error",
        "-CAfile",
        pki_files.root_ca,
    )
    with (
        s_server(openssl_cli, pki_files, pki.servers["ecdsa-p256"], *options) as (peer, port),
        _restored_client(worker, spec, port) as (outcome, channel),
    ):
        assert outcome.result.signature_scheme is not None
        exchange_with_s_server(channel, peer)
    assert "CN = client ecdsa-p256" in peer.stdout


# --- the restored engine as server, for s_client --------------------------------------------


@pytest.mark.parametrize(
    ("client_options", "server_fields", "group", "hello_retry"),
    [
        (("-groups", "X25519"), {}, NamedGroup.X25519, False),
        (
            ("-groups", "P-256:X25519"),
            {"supported_groups": [NamedGroup.X25519]},
            NamedGroup.X25519,
            True,
        ),
    ],
    ids=["x25519", "hrr-x25519"],
)
def test_restored_server_completes_for_s_client(
    *,
    openssl_cli: str,
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    client_options: tuple[str, ...],
    server_fields: dict[str, Any],
    group: int,
    hello_retry: bool,
) -> None:
    spec = _server_spec(pki_files, pki, "ed25519", **server_fields)
    with (
        s_client(openssl_cli, pki_files, *client_options) as (peer, listener),
        _restored_server(worker, spec, listener) as (outcome, channel),
    ):
        assert outcome.result.group == group
        assert outcome.result.hello_retry is hello_retry
        exchange_with_s_client(channel, peer)
    assert "Verification: OK" in peer.stdout


def test_restored_server_requires_and_gets_the_s_client_certificate(
    openssl_cli: str, worker: Worker, pki: TestPKI, pki_files: PkiFiles
) -> None:
    client_files = pki_files[pki.clients["rsa-2048"]]
    spec = _server_spec(
        pki_files, pki, "ecdsa-p256", client_auth="required", client_trust=str(pki_files.root_ca)
    )
    options = (
        "-cert", client_files.leaf, "-cert_chain", client_files.intermediates,
        "-key", client_files.key,
    )  # fmt: skip
    with (
        s_client(openssl_cli, pki_files, *options) as (peer, listener),
        _restored_server(worker, spec, listener) as (outcome, channel),
    ):
        assert len(outcome.result.peer_certificates) == 2
        exchange_with_s_client(channel, peer)


# --- the hybrid ML-KEM group against OpenSSL 4 ----------------------------------------------


def test_restored_client_completes_x25519mlkem768_with_openssl4(
    pyopenssl_peer: list[str], worker: Worker, pki: TestPKI, pki_files: PkiFiles
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-groups", HYBRID]
    with echo_server(pyopenssl_peer, *flags) as (peer, port), connect_localhost(port) as sock:
        connection = RemoteConnection(worker, _client_spec(pki_files))
        outcome = _drive(connection, sock)
        assert outcome.result.group == NamedGroup.X25519MLKEM768
        session = _Session(outcome, sock)
        negotiated = exchange_with_echo_server(session, peer)  # type: ignore[arg-type]
    assert negotiated["curve"] == HYBRID


def test_restored_server_completes_x25519mlkem768_with_openssl4(
    pyopenssl_peer: list[str], worker: Worker, pki: TestPKI, pki_files: PkiFiles
) -> None:
    flags = [
        "-ca",
        str(pki_files.root_ca),
        "-servername",
        "localhost",
        "-groups",
        f"X25519:{HYBRID}",
    ]
    message = "restored into the hybrid group"
    spec = _server_spec(pki_files, pki, "ecdsa-p256", prefer_own=True)
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
        accept_one(listener) as sock,
    ):
        connection = RemoteConnection(worker, spec)
        outcome = _drive(connection, sock)
        assert outcome.result.group == NamedGroup.X25519MLKEM768
        negotiated = exchange_with_echo_client(_Session(outcome, sock), peer, message)  # type: ignore[arg-type]
    assert negotiated["curve"] == HYBRID


class _Session:
    """What the echo exchanges need of an engine session: its outcome and channel."""

    def __init__(self, outcome: HandshakeOutcome, sock: socket.socket) -> None:
        self.outcome = outcome
        self.sock = sock

    def channel(self) -> ApplicationChannel:
        return ApplicationChannel(self.sock, self.outcome.result, self.outcome.unconsumed)
