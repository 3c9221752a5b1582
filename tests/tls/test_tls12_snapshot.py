"""Snapshots of TLS 1.2 handshakes: every waiting state of both roles is written (protocol
0x0303) and restored, in this process and in a fresh one, and the handshake continues
exactly as the uninterrupted one. The client's state before the ServerHello offered both
versions: its snapshot (protocol 0) continues as TLS 1.2 here and as TLS 1.3 in
test_snapshot.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from handshaker.tls import (
    ClientConnection,
    ConnectionState,
    ContentType,
    HandshakeComplete,
    HandshakeResult,
    NamedGroup,
    ProtocolVersion,
    ServerConnection,
    SnapshotError,
)
from handshaker.tls.record import RecordReader
from pki import PkiFiles, TestPKI, issue_leaf, write_pem_files
from snapshot_kit import RemoteConnection, SeededRandom, Spec, Worker, new_connection, restore

TLS12 = ProtocolVersion.TLS1_2
CLIENT_STATES = {
    "ExpectServerHello",  # the version-neutral one (client_hello.py)
    "ExpectCertificate",
    "ExpectServerKeyExchange",
    "ExpectCertificateRequest",
    "ExpectServerHelloDone",
    "ExpectChangeCipherSpec",
    "ExpectFinished",
}
SERVER_STATES = {
    "ExpectFirstClientHello",
    "ExpectClientCertificate",
    "ExpectClientKeyExchange",
    "ExpectCertificateVerify",
    "ExpectChangeCipherSpec",
    "ExpectFinished",
}


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker()
    yield process
    process.close()


@pytest.fixture(scope="module")
def ed25519_files(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ed25519 leaves: deterministic signatures, so reruns give the same bytes."""
    directory = tmp_path_factory.mktemp("tls12-snapshot-pki")
    now = datetime.datetime.now(datetime.UTC)
    server = issue_leaf("snapshot server", pki.intermediate, key_type="ed25519", now=now)
    client = issue_leaf(
        "snapshot client",
        pki.intermediate,
        key_type="ed25519",
        dns_names=(),
        ip_addresses=(),
        client=True,
        now=now,
    )
    s, c = write_pem_files(directory, server), write_pem_files(directory, client)
    return {
        "server_chain": s.chain,
        "server_key": s.key,
        "client_chain": c.chain,
        "client_key": c.key,
    }


def _specs(
    pki_files: PkiFiles, files: dict[str, Path], group: int, *, client_auth: bool
) -> tuple[Spec, Spec]:
    # The client offers TLS 1.3 and 1.2 (the default); the server speaks TLS 1.2 alone.
    client: Spec = {
        "role": "client",
        "trust": str(pki_files.root_ca),
        "supported_groups": [group],
        "key_share_groups": [group],
        "alpn": ["h2", "http/1.1"],
    }
    server: Spec = {
        "role": "server",
        "credential": {"chain": str(files["server_chain"]), "key": str(files["server_key"])},
        "supported_groups": [group],
        "alpn": ["http/1.1"],
        "max_version": TLS12,
    }
    if client_auth:
        client["credential"] = {
            "chain": str(files["client_chain"]),
            "key": str(files["client_key"]),
        }
        server["client_auth"] = "required"
        server["client_trust"] = str(pki_files.root_ca)
    return client, server


def _pump(client: Any, server: Any) -> list[bytes]:
    wire: list[bytes] = []
    for _ in range(10):
        moved = False
        for source, sink in ((client, server), (server, client)):
            data = source.data_to_send()
            if data and sink.state is ConnectionState.HANDSHAKING:
                wire.append(data)
                sink.receive_data(data)
                moved = True
        if not moved:
            break
    return wire


def _result(endpoint: Any) -> HandshakeResult:
    events = list(endpoint.events())
    assert len(events) == 1 and isinstance(events[0], HandshakeComplete), events
    return events[0].result


@pytest.mark.parametrize("client_auth", [False, True], ids=["server-auth", "mutual"])
@pytest.mark.parametrize(
    "group", [NamedGroup.X25519, NamedGroup.SECP384R1, NamedGroup.X448], ids=lambda g: g.name
)
@pytest.mark.parametrize("role", ["client", "server"])
def test_a_tls_1_2_handshake_restored_across_processes_is_the_uninterrupted_one(
    *,
    worker: Worker,
    pki_files: PkiFiles,
    ed25519_files: dict[str, Path],
    role: str,
    group: int,
    client_auth: bool,
) -> None:
    client_spec, server_spec = _specs(pki_files, ed25519_files, group, client_auth=client_auth)
    seeds = {"client": f"c12/{group}/{client_auth}", "server": f"s12/{group}/{client_auth}"}
    plain_client = new_connection(client_spec, SeededRandom(seeds["client"]))
    plain_server = new_connection(server_spec, SeededRandom(seeds["server"]))
    plain_wire = _pump(plain_client, plain_server)
    expected = (_result(plain_client), _result(plain_server))
    assert expected[0].version == TLS12

    subject = RemoteConnection(
        worker, client_spec if role == "client" else server_spec, SeededRandom(seeds[role])
    )
    peer_role = "server" if role == "client" else "client"
    peer = new_connection(
        server_spec if role == "client" else client_spec, SeededRandom(seeds[peer_role])
    )
    client, server = (subject, peer) if role == "client" else (peer, subject)
    wire = _pump(client, server)
    assert "worker" in subject.hops
    assert wire == plain_wire
    assert (_result(client), _result(server)) == expected


def _one_message_per_record(flight: bytes) -> bytes:
    """The same flight with every plaintext handshake message in a record of its own
    (records after the change_cipher_spec are protected and stay whole)."""
    reader = RecordReader()
    reader.feed(flight)
    out = bytearray()
    protected = False
    for content_type, record in reader.records():
        protected = protected or content_type == ContentType.CHANGE_CIPHER_SPEC
        if content_type != ContentType.HANDSHAKE or protected:
            out += record
            continue
        body = record[5:]
        pos = 0
        while pos < len(body):
            end = pos + 4 + int.from_bytes(body[pos + 1 : pos + 4], "big")
            out += bytes((22, 3, 3)) + (end - pos).to_bytes(2, "big") + body[pos:end]
            pos = end
    return bytes(out)


def _records(data: bytes) -> list[bytes]:
    reader = RecordReader()
    reader.feed(data)
    return [record for _, record in reader.records()]


def test_every_tls_1_2_waiting_state_snapshots_and_restores(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    client_spec, server_spec = _specs(pki_files, ed25519_files, NamedGroup.X25519, client_auth=True)
    randoms = {"client": SeededRandom("c12-states"), "server": SeededRandom("s12-states")}
    specs = {"client": client_spec, "server": server_spec}
    plain = {r: new_connection(specs[r], SeededRandom(randoms[r].seed)) for r in specs}
    plain_wire = _pump(plain["client"], plain["server"])
    expected = (_result(plain["client"]), _result(plain["server"]))

    live: dict[str, Any] = {r: new_connection(specs[r], randoms[r]) for r in specs}
    seen: dict[str, set[str]] = {"client": set(), "server": set()}
    protocols: dict[str, set[int]] = {"client": set(), "server": set()}
    wire: list[bytes] = []
    for _ in range(10):
        moved = False
        for sender, receiver in (("client", "server"), ("server", "client")):
            data = live[sender].data_to_send()
            if not data or live[receiver].state is not ConnectionState.HANDSHAKING:
                continue
            wire.append(data)
            moved = True
            for record in _records(_one_message_per_record(data)):
                conn = live[receiver]
                seen[receiver].add(type(conn._state).__name__)
                snapshot = conn.snapshot()
                protocols[receiver].add(int.from_bytes(snapshot[6:8], "big"))
                restored = restore(specs[receiver], snapshot, randoms[receiver])
                restored.receive_data(record)
                live[receiver] = restored
                if restored.state is not ConnectionState.HANDSHAKING:
                    break
        if not moved:
            break
    assert seen["client"] == CLIENT_STATES
    assert seen["server"] == SERVER_STATES
    # Protocol 0 before a version is chosen, 0x0303 in every TLS 1.2 state.
    assert protocols["client"] == protocols["server"] == {0, TLS12}
    assert wire == plain_wire
    assert (_result(live["client"]), _result(live["server"])) == expected


def test_a_tls_1_2_snapshot_does_not_restore_with_an_unknown_suite(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    client_spec, server_spec = _specs(
        pki_files, ed25519_files, NamedGroup.X25519, client_auth=False
    )
    client = new_connection(client_spec)
    server = new_connection(server_spec)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert isinstance(client, ClientConnection) and isinstance(server, ServerConnection)
    snapshot = bytearray(server.snapshot())
    assert snapshot[6:8] == b"\x03\x03"
    # Truncations are refused cleanly, never with another exception.
    for cut in range(0, len(snapshot), 97):
        with pytest.raises(SnapshotError):
            restore(server_spec, bytes(snapshot[:cut]))


def test_one_pre_server_hello_snapshot_continues_as_either_version(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    client_spec, server12_spec = _specs(
        pki_files, ed25519_files, NamedGroup.X25519, client_auth=False
    )
    server13_spec = {k: v for k, v in server12_spec.items() if k != "max_version"}
    first = new_connection(client_spec, SeededRandom("either"))
    hello = first.data_to_send()
    snapshot = first.snapshot()
    assert snapshot[6:8] == b"\x00\x00"  # no version chosen yet
    versions = []
    for server_spec in (server13_spec, server12_spec):
        client = restore(client_spec, snapshot, SeededRandom("either", 10**6))
        server = new_connection(server_spec, SeededRandom("either-server"))
        server.receive_data(hello)
        _pump(client, server)
        versions.append(_result(client).version)
        assert _result(server).version == versions[-1]
    assert versions == [ProtocolVersion.TLS1_3, TLS12]


@pytest.fixture(scope="module")
def rsa_files(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An RSA server leaf (with keyEncipherment) for the opt-in key exchanges."""
    directory = tmp_path_factory.mktemp("tls12-snapshot-rsa")
    now = datetime.datetime.now(datetime.UTC)
    leaf = issue_leaf("snapshot rsa server", pki.intermediate, key_type="rsa-2048", now=now)
    files = write_pem_files(directory, leaf)
    return {"server_chain": files.chain, "server_key": files.key}


@pytest.mark.parametrize(
    ("suite", "group"),
    [(0x009C, NamedGroup.X25519), (0x009F, NamedGroup.FFDHE2048)],
    ids=["RSA", "DHE_RSA"],
)
@pytest.mark.parametrize("role", ["client", "server"])
def test_the_opt_in_key_exchanges_restore_at_every_step_in_a_fresh_process(
    *, worker: Worker, pki_files: PkiFiles, rsa_files: dict[str, Path], role: str, suite: int,
    group: int,
) -> None:
    client_spec, server_spec = _specs(pki_files, rsa_files, group, client_auth=False)
    for spec in (client_spec, server_spec):
        spec["tls12_cipher_suites"] = [suite]
        spec["max_version"] = TLS12
    # RSA-PSS signatures and PKCS#1 encryption are randomized inside OpenSSL, so the
    # flights cannot be compared with an uninterrupted run: the two sides' keys must agree.
    seeds = {"client": f"c12/{suite}", "server": f"s12/{suite}"}
    subject = RemoteConnection(
        worker, client_spec if role == "client" else server_spec, SeededRandom(seeds[role])
    )
    peer_role = "server" if role == "client" else "client"
    peer = new_connection(
        server_spec if role == "client" else client_spec, SeededRandom(seeds[peer_role])
    )
    client, server = (subject, peer) if role == "client" else (peer, subject)
    _pump(client, server)
    assert "worker" in subject.hops
    client_result, server_result = _result(client), _result(server)
    assert client_result.cipher_suite == server_result.cipher_suite == suite
    assert client_result.write == server_result.read
    assert client_result.read == server_result.write
    assert client_result.group == server_result.group == (group if suite == 0x009F else 0)
