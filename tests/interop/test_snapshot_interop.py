"""Handshakes restored from snapshots, flight by flight, against OpenSSL.

The subject is a RemoteConnection (tests/snapshot_kit.py): each flight it gets
is taken by a connection restored from the last snapshot, alternately in a
fresh worker process and in this one. For every group, with and without a
HelloRetryRequest and client authentication, in both roles, the peer is
`openssl s_server` / `s_client` (OpenSSL 3) for the classical and FFDHE groups
and pyOpenSSL on OpenSSL 4 for the ML-KEM ones; application data then crosses
both ways with the keys the restored run produced.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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

# OpenSSL's names for the groups each peer speaks.
OPENSSL3_GROUPS = {
    NamedGroup.X25519: "X25519",
    NamedGroup.SECP256R1: "P-256",
    NamedGroup.SECP384R1: "P-384",
    NamedGroup.SECP521R1: "P-521",
    NamedGroup.X448: "X448",
    NamedGroup.FFDHE2048: "ffdhe2048",
    NamedGroup.FFDHE3072: "ffdhe3072",
}
OPENSSL4_GROUPS = {
    NamedGroup.X25519MLKEM768: "X25519MLKEM768",
    NamedGroup.SECP256R1MLKEM768: "SecP256r1MLKEM768",
    NamedGroup.SECP384R1MLKEM1024: "SecP384r1MLKEM1024",
    NamedGroup.MLKEM768: "MLKEM768",
    NamedGroup.MLKEM1024: "MLKEM1024",
}
VARIANTS = [(False, False), (True, False), (False, True), (True, True)]
VARIANT_IDS = ["1rtt", "hrr", "mutual", "hrr-mutual"]


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker()
    yield process
    process.close()


def _other(group: int) -> int:
    """A group to send the first share for, so that the peer asks for `group` instead."""
    return NamedGroup.SECP256R1 if group == NamedGroup.X25519 else NamedGroup.X25519


def _files(pki_files: PkiFiles, pki: TestPKI, leaf: str, *, client: bool) -> dict[str, str]:
    files = pki_files[(pki.clients if client else pki.servers)[leaf]]
    return {"chain": str(files.chain), "key": str(files.key)}


def _client_spec(pki_files: PkiFiles, pki: TestPKI, group: int, *, hrr: bool, mutual: bool) -> Spec:
    spec: Spec = {
        "role": "client",
        "trust": str(pki_files.root_ca),
        "supported_groups": [group, _other(group)] if hrr else [group],
        "key_share_groups": [_other(group)] if hrr else [group],
    }
    if mutual:
        spec["credential"] = _files(pki_files, pki, "ecdsa-p256", client=True)
    return spec


def _server_spec(pki_files: PkiFiles, pki: TestPKI, group: int, *, mutual: bool) -> Spec:
    spec: Spec = {
        "role": "server",
        "credential": _files(pki_files, pki, "ecdsa-p384", client=False),
        "supported_groups": [group],
    }
    if mutual:
        spec["client_auth"] = "required"
        spec["client_trust"] = str(pki_files.root_ca)
    return spec


def _drive(connection: RemoteConnection, sock: socket.socket) -> HandshakeOutcome:
    outcome = drive_handshake(connection, sock)  # type: ignore[arg-type]
    # Every flight was continued from bytes, at least once in the worker process.
    assert "worker" in connection.hops
    return outcome


def _check(outcome: HandshakeOutcome, group: int, *, hrr: bool, mutual: bool, client: bool) -> None:
    result = outcome.result
    assert result.group == group
    assert result.hello_retry is hrr
    if mutual and client:
        assert result.signature_scheme is not None
    if mutual and not client:
        assert len(result.peer_certificates) == 2


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


# --- OpenSSL 3: s_server and s_client ---------------------------------------------------------


@pytest.mark.parametrize(("hrr", "mutual"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("group", list(OPENSSL3_GROUPS), ids=lambda g: NamedGroup(g).name.lower())
def test_restored_client_completes_against_s_server(
    *,
    openssl_cli: str,
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    group: int,
    hrr: bool,
    mutual: bool,
) -> None:
    options: list[str | Path] = ["-groups", OPENSSL3_GROUPS[group]]
    if mutual:
        options += ["-Verify", "2", "-verify_return_error", "-CAfile", pki_files.root_ca]
    spec = _client_spec(pki_files, pki, group, hrr=hrr, mutual=mutual)
    with (
        s_server(openssl_cli, pki_files, pki.servers["ecdsa-p384"], *options) as (peer, port),
        _restored_client(worker, spec, port) as (outcome, channel),
    ):
        _check(outcome, group, hrr=hrr, mutual=mutual, client=True)
        exchange_with_s_server(channel, peer)
    if mutual:
        assert "CN = client ecdsa-p256" in peer.stdout


@pytest.mark.parametrize(("hrr", "mutual"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("group", list(OPENSSL3_GROUPS), ids=lambda g: NamedGroup(g).name.lower())
def test_restored_server_completes_for_s_client(
    *,
    openssl_cli: str,
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    group: int,
    hrr: bool,
    mutual: bool,
) -> None:
    # With hrr, s_client's first share is for another group; the server takes only `group`.
    groups = f"{OPENSSL3_GROUPS[_other(group)]}:{OPENSSL3_GROUPS[group]}" if hrr else None
    options: list[str | Path] = ["-groups", groups or OPENSSL3_GROUPS[group]]
    if mutual:
        files = pki_files[pki.clients["rsa-2048"]]
        options += ["-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key]
    spec = _server_spec(pki_files, pki, group, mutual=mutual)
    with (
        s_client(openssl_cli, pki_files, *options) as (peer, listener),
        _restored_server(worker, spec, listener) as (outcome, channel),
    ):
        _check(outcome, group, hrr=hrr, mutual=mutual, client=False)
        exchange_with_s_client(channel, peer)
    assert "Verification: OK" in peer.stdout


# --- OpenSSL 4 through pyOpenSSL: the ML-KEM groups -------------------------------------------


class _Session:
    """What the echo exchanges need of an engine session: its outcome and channel."""

    def __init__(self, outcome: HandshakeOutcome, sock: socket.socket) -> None:
        self.outcome = outcome
        self.sock = sock

    def channel(self) -> ApplicationChannel:
        return ApplicationChannel(self.sock, self.outcome.result, self.outcome.unconsumed)


@pytest.mark.parametrize(("hrr", "mutual"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("group", list(OPENSSL4_GROUPS), ids=lambda g: NamedGroup(g).name.lower())
def test_restored_client_completes_ml_kem_groups_with_openssl4(
    *,
    pyopenssl_peer: list[str],
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    group: int,
    hrr: bool,
    mutual: bool,
) -> None:
    server = _files(pki_files, pki, "ecdsa-p256", client=False)
    flags = ["-cert", server["chain"], "-key", server["key"], "-groups", OPENSSL4_GROUPS[group]]
    if mutual:
        flags += ["-ca", str(pki_files.root_ca), "-clientauth", "require"]
    spec = _client_spec(pki_files, pki, group, hrr=hrr, mutual=mutual)
    with echo_server(pyopenssl_peer, *flags) as (peer, port), connect_localhost(port) as sock:
        outcome = _drive(RemoteConnection(worker, spec), sock)
        _check(outcome, group, hrr=hrr, mutual=mutual, client=True)
        negotiated = exchange_with_echo_server(_Session(outcome, sock), peer)  # type: ignore[arg-type]
    assert negotiated["curve"] == OPENSSL4_GROUPS[group]


@pytest.mark.parametrize(("hrr", "mutual"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("group", list(OPENSSL4_GROUPS), ids=lambda g: NamedGroup(g).name.lower())
def test_restored_server_completes_ml_kem_groups_with_openssl4(
    *,
    pyopenssl_peer: list[str],
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    group: int,
    hrr: bool,
    mutual: bool,
) -> None:
    names = OPENSSL4_GROUPS[group]
    if hrr:
        names = f"X25519:{names}"
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost", "-groups", names]
    if mutual:
        client = _files(pki_files, pki, "ecdsa-p256", client=True)
        flags += ["-cert", client["chain"], "-key", client["key"]]
    message = "restored server"
    spec = _server_spec(pki_files, pki, group, mutual=mutual)
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
        accept_one(listener) as sock,
    ):
        outcome = _drive(RemoteConnection(worker, spec), sock)
        _check(outcome, group, hrr=hrr, mutual=mutual, client=False)
        negotiated = exchange_with_echo_client(_Session(outcome, sock), peer, message)  # type: ignore[arg-type]
    assert negotiated["curve"] == OPENSSL4_GROUPS[group]
