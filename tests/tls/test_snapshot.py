"""Snapshot and restore: a handshake continued from bytes in another process is the same one.

Every scenario runs twice with the same seeded RNGs: once uninterrupted, and once
with the subject restored from its last snapshot for every flight it receives,
alternately in a fresh worker process and in this one. The wire bytes and both
results must be identical; for groups with ML-KEM (whose encapsulation draws
randomness the seeded RNG cannot replay) both sides' keys must agree instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from handshaker.tls import (
    AlertDescription,
    ClientConnection,
    ConnectionState,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    NamedGroup,
    ServerConnection,
    SnapshotError,
    StateError,
)
from pki import PkiFiles, TestPKI, issue_leaf, write_pem_files
from snapshot_kit import (
    RemoteConnection,
    SeededRandom,
    Spec,
    Worker,
    build_config,
    new_connection,
    restore,
)

GROUPS = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.X25519MLKEM768,
    NamedGroup.SECP256R1MLKEM768,
    NamedGroup.SECP384R1MLKEM1024,
    NamedGroup.MLKEM768,
    NamedGroup.MLKEM1024,
)
# ML-KEM encapsulation draws randomness inside OpenSSL, which the seeded RNG cannot replay.
RANDOMIZED_GROUPS = frozenset(
    {
        NamedGroup.X25519MLKEM768,
        NamedGroup.SECP256R1MLKEM768,
        NamedGroup.SECP384R1MLKEM1024,
        NamedGroup.MLKEM768,
        NamedGroup.MLKEM1024,
    }
)


class Endpoint(Protocol):
    state: Any

    def receive_data(self, data: bytes) -> None: ...
    def data_to_send(self) -> bytes: ...


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker()
    yield process
    process.close()


@pytest.fixture(scope="module")
def ed25519_files(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ed25519 leaves (deterministic signatures, so reruns give the same bytes)."""
    directory = tmp_path_factory.mktemp("snapshot-pki")
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
    files = {
        "server": write_pem_files(directory, server),
        "client": write_pem_files(directory, client),
    }
    return {
        "server_chain": files["server"].chain,
        "server_key": files["server"].key,
        "client_chain": files["client"].chain,
        "client_key": files["client"].key,
    }


def _specs(
    pki_files: PkiFiles, files: dict[str, Path], group: int, *, hrr: bool, client_auth: bool
) -> tuple[Spec, Spec]:
    other = NamedGroup.SECP256R1 if group == NamedGroup.X25519 else NamedGroup.X25519
    client: Spec = {
        "role": "client",
        "trust": str(pki_files.root_ca),
        "supported_groups": [group, other] if hrr else [group],
        # With hrr the first ClientHello carries a share the server will not take.
        "key_share_groups": [other] if hrr else [group],
        "alpn": ["h2", "http/1.1"],
    }
    server: Spec = {
        "role": "server",
        "credential": {"chain": str(files["server_chain"]), "key": str(files["server_key"])},
        "supported_groups": [group],
        "alpn": ["http/1.1"],
        "cookie": hrr,
    }
    if client_auth:
        client["credential"] = {
            "chain": str(files["client_chain"]),
            "key": str(files["client_key"]),
        }
        server["client_auth"] = "required"
        server["client_trust"] = str(pki_files.root_ca)
    return client, server


def _pump(client: Endpoint, server: Endpoint, split: bool = False) -> list[bytes]:
    wire: list[bytes] = []
    for _ in range(10):
        moved = False
        for source, sink in ((client, server), (server, client)):
            data = source.data_to_send()
            if data and sink.state is ConnectionState.HANDSHAKING:
                wire.append(data)
                if split and len(data) > 10:
                    # Half a record at a time: the reader's partial record is in the snapshot.
                    sink.receive_data(data[: len(data) // 2])
                    sink.receive_data(data[len(data) // 2 :])
                else:
                    sink.receive_data(data)
                moved = True
        if not moved:
            break
    return wire


def _result(endpoint: Any) -> HandshakeResult:
    events = list(endpoint.events())
    assert len(events) == 1, events
    assert isinstance(events[0], HandshakeComplete), events[0]
    return events[0].result


SIZES: dict[str, list[int]] = {}


@pytest.mark.parametrize("client_auth", [False, True], ids=["server-auth", "mutual"])
@pytest.mark.parametrize("hrr", [False, True], ids=["1rtt", "hrr"])
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name.lower())
@pytest.mark.parametrize("role", ["client", "server"])
def test_a_restored_handshake_is_the_uninterrupted_one(
    *,
    worker: Worker,
    pki_files: PkiFiles,
    ed25519_files: dict[str, Path],
    role: str,
    group: int,
    hrr: bool,
    client_auth: bool,
) -> None:
    client_spec, server_spec = _specs(
        pki_files, ed25519_files, group, hrr=hrr, client_auth=client_auth
    )
    seeds = {"client": f"c/{group}/{hrr}/{client_auth}", "server": f"s/{group}/{hrr}/{client_auth}"}
    plain_client = new_connection(client_spec, SeededRandom(seeds["client"]))
    plain_server = new_connection(server_spec, SeededRandom(seeds["server"]))
    plain_wire = _pump(plain_client, plain_server)
    expected = (_result(plain_client), _result(plain_server))

    subject = RemoteConnection(
        worker, client_spec if role == "client" else server_spec, SeededRandom(seeds[role])
    )
    peer_role = "server" if role == "client" else "client"
    peer = new_connection(
        server_spec if role == "client" else client_spec, SeededRandom(seeds[peer_role])
    )
    client, server = (subject, peer) if role == "client" else (peer, subject)
    wire = _pump(client, server)
    results = (_result(client), _result(server))
    assert "worker" in subject.hops
    SIZES.setdefault(role, []).extend(subject.sizes)

    assert results[0].hello_retry is hrr and results[1].hello_retry is hrr
    assert results[0].group == group
    assert results[0].write == results[1].read and results[0].read == results[1].write
    if client_auth:
        assert results[1].peer_certificates
    if group not in RANDOMIZED_GROUPS:
        assert wire == plain_wire
        assert results == expected


@pytest.mark.parametrize("role", ["client", "server"])
def test_a_snapshot_keeps_half_a_record(
    worker: Worker, pki_files: PkiFiles, ed25519_files: dict[str, Path], role: str
) -> None:
    client_spec, server_spec = _specs(
        pki_files, ed25519_files, NamedGroup.X25519, hrr=False, client_auth=True
    )
    subject = RemoteConnection(worker, client_spec if role == "client" else server_spec)
    peer = new_connection(server_spec if role == "client" else client_spec)
    client, server = (subject, peer) if role == "client" else (peer, subject)
    _pump(client, server, split=True)
    first, second = _result(client), _result(server)
    assert first.write == second.read
    # Each flight came in two halves, each taken by a connection restored from bytes.
    assert len(subject.hops) == (2 if role == "client" else 4)


# --- refusing what cannot be restored -------------------------------------------------------


def _client_snapshot(pki_files: PkiFiles, files: dict[str, Path]) -> tuple[Spec, bytes]:
    client_spec, _ = _specs(pki_files, files, NamedGroup.X25519, hrr=False, client_auth=False)
    connection = new_connection(client_spec)
    return client_spec, connection.snapshot()


def test_another_format_version_is_refused_naming_both_versions(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    spec, snapshot = _client_snapshot(pki_files, ed25519_files)
    future = snapshot[:4] + bytes((2,)) + snapshot[5:]
    with pytest.raises(SnapshotError, match=r"format version 2 is not supported .*reads 1"):
        restore(spec, future)


def test_bytes_that_are_not_a_snapshot_are_refused(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    spec, _ = _client_snapshot(pki_files, ed25519_files)
    for junk in (b"", b"HSnp", b"\x16\x03\x01\x00\x05hello", bytes(100)):
        with pytest.raises(SnapshotError):
            restore(spec, junk)


def test_a_client_snapshot_does_not_restore_as_a_server(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    _, snapshot = _client_snapshot(pki_files, ed25519_files)
    _, server_spec = _specs(
        pki_files, ed25519_files, NamedGroup.X25519, hrr=False, client_auth=False
    )
    config = build_config(server_spec)
    assert not isinstance(config, type(None))
    with pytest.raises(SnapshotError, match="client connection, not a server one"):
        ServerConnection.restore(snapshot, config)  # type: ignore[arg-type]


def _snapshots_of_every_state(
    pki_files: PkiFiles, files: dict[str, Path]
) -> list[tuple[Spec, bytes]]:
    """A snapshot of each waiting state of both roles, with client auth and a retry."""
    client_spec, server_spec = _specs(
        pki_files, files, NamedGroup.X25519MLKEM768, hrr=True, client_auth=True
    )
    client = new_connection(client_spec)
    server = new_connection(server_spec)
    found = [(client_spec, client.snapshot()), (server_spec, server.snapshot())]
    for _ in range(6):
        for source, sink, spec in ((client, server, server_spec), (server, client, client_spec)):
            data = source.data_to_send()
            if data and sink.state is ConnectionState.HANDSHAKING:
                # Message by message, so every waiting state is passed through.
                for piece in [data[i : i + 64] for i in range(0, len(data), 64)]:
                    sink.receive_data(piece)
                    if sink.state is ConnectionState.HANDSHAKING:
                        found.append((spec, sink.snapshot()))
    return found


def test_every_truncation_and_many_corruptions_give_a_snapshot_error_or_a_connection(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    for spec, snapshot in _snapshots_of_every_state(pki_files, ed25519_files)[::7]:
        for end in range(0, len(snapshot), 3):
            with pytest.raises(SnapshotError):
                restore(spec, snapshot[:end])
        with pytest.raises(SnapshotError, match="trailing bytes"):
            restore(spec, snapshot + b"\x00")
        for position in range(0, len(snapshot), 5):
            corrupted = bytearray(snapshot)
            corrupted[position] ^= 0xFF
            try:
                restored = restore(spec, bytes(corrupted))
            except SnapshotError:
                continue
            # Whatever a corrupted snapshot gave, bytes in end in an alert, never a raise.
            restored.receive_data(b"\x16\x03\x03\x00\x05\x14\x00\x00\x01\x00")


def test_a_snapshot_is_refused_after_the_handshake_and_while_a_key_operation_is_out(
    pki: TestPKI,
) -> None:
    from handshaker.tls import ClientConfig, Credential, DeferredKey, PrivateKeySigner, ServerConfig

    leaf = pki.servers["ed25519"]
    signer = PrivateKeySigner(leaf.key)
    client = ClientConnection(
        ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
    )
    server = ServerConnection(
        ServerConfig(credential=Credential(leaf.chain, DeferredKey("k", signer.signature_schemes)))
    )
    server.receive_data(client.data_to_send())
    with pytest.raises(StateError, match="private-key operation"):
        server.snapshot()
    operation = server.pending_operation
    assert operation is not None
    server.complete_private_key_operation(signer.sign(operation.scheme, operation.data))
    client.receive_data(server.data_to_send())
    assert client.state is ConnectionState.COMPLETE
    with pytest.raises(StateError, match="COMPLETE"):
        client.snapshot()


def test_a_restored_connection_still_answers_bad_input_with_the_rfc_alert(
    pki_files: PkiFiles, ed25519_files: dict[str, Path]
) -> None:
    client_spec, server_spec = _specs(
        pki_files, ed25519_files, NamedGroup.X25519, hrr=False, client_auth=False
    )
    client = new_connection(client_spec)
    server = new_connection(server_spec)
    server.receive_data(client.data_to_send())
    restored = restore(server_spec, server.snapshot())
    # A handshake record in the clear after the key change: unexpected_message.
    restored.receive_data(b"\x16\x03\x03\x00\x04\x14\x00\x00\x00")
    events = list(restored.events())
    assert isinstance(events[0], HandshakeFailed)
    assert events[0].alert == AlertDescription.UNEXPECTED_MESSAGE
