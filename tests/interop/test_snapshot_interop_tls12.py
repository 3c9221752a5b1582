"""TLS 1.2 handshakes restored from snapshots, flight by flight, against OpenSSL 3's CLI.

The subject is a RemoteConnection (tests/snapshot_kit.py): every flight it gets is
taken by a connection restored from the last snapshot, alternately in a fresh worker
process and in this one. The client's first snapshot is the version-neutral one
(it offered TLS 1.3 and 1.2); s_server -tls1_2 makes it continue as TLS 1.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handshaker.tls import ProtocolVersion
from pki import PkiFiles, TestPKI
from snapshot_kit import Spec, Worker

from .test_openssl_cli import exchange_with_s_client, exchange_with_s_server
from .test_openssl_cli_tls12 import s_client_tls12, s_server_tls12
from .test_snapshot_interop import _restored_client, _restored_server


def _client_spec(pki_files: PkiFiles, **fields: Any) -> Spec:
    return {"role": "client", "trust": str(pki_files.root_ca), **fields}


def _server_spec(pki_files: PkiFiles, pki: TestPKI, key_type: str, **fields: Any) -> Spec:
    files = pki_files[pki.servers[key_type]]
    return {
        "role": "server",
        "credential": {"chain": str(files.chain), "key": str(files.key)},
        **fields,
    }


pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker()
    yield process
    process.close()


@pytest.mark.parametrize(
    ("key_type", "cipher"),
    [("ecdsa-p256", "ECDHE-ECDSA-AES256-GCM-SHA384"), ("rsa-2048", "ECDHE-RSA-CHACHA20-POLY1305")],
)
def test_restored_client_completes_tls12_against_s_server(
    *,
    openssl_cli: str,
    worker: Worker,
    pki: TestPKI,
    pki_files: PkiFiles,
    key_type: str,
    cipher: str,
) -> None:
    options = ("-cipher", cipher)
    with (
        s_server_tls12(openssl_cli, pki_files, pki.servers[key_type], *options) as (peer, port),
        _restored_client(worker, _client_spec(pki_files), port) as (outcome, channel),
    ):
        assert outcome.result.version == TLS12
        exchange_with_s_server(channel, peer)
    assert f"CIPHER is {cipher}" in peer.stdout


def test_restored_client_authenticates_to_a_tls12_s_server(
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
        s_server_tls12(openssl_cli, pki_files, pki.servers["rsa-2048"], *options) as (peer, port),
        _restored_client(worker, spec, port) as (outcome, channel),
    ):
        assert outcome.result.version == TLS12
        assert outcome.result.signature_scheme is not None
        exchange_with_s_server(channel, peer)
    assert "CN = client ecdsa-p256" in peer.stdout


@pytest.mark.parametrize("client_auth", [False, True], ids=["server-auth", "mutual"])
def test_restored_server_completes_tls12_for_s_client(
    openssl_cli: str, worker: Worker, pki: TestPKI, pki_files: PkiFiles, client_auth: bool
) -> None:
    fields: dict[str, object] = {}
    options: tuple[str | Path, ...] = ()
    if client_auth:
        client_files = pki_files[pki.clients["rsa-2048"]]
        fields = {"client_auth": "required", "client_trust": str(pki_files.root_ca)}
        options = (
            "-cert", client_files.leaf, "-cert_chain", client_files.intermediates,
            "-key", client_files.key,
        )  # fmt: skip
    spec = _server_spec(pki_files, pki, "ed25519", **fields)
    with (
        s_client_tls12(openssl_cli, pki_files, *options) as (peer, listener),
        _restored_server(worker, spec, listener) as (outcome, channel),
    ):
        assert outcome.result.version == TLS12
        assert len(outcome.result.peer_certificates) == (2 if client_auth else 0)
        exchange_with_s_client(channel, peer)
    assert "Verification: OK" in peer.stdout
    assert "Extended master secret: yes" in peer.stdout
