"""The engine against Go's crypto/tls (tests/interop/gopeer), in both roles."""

from __future__ import annotations

from pathlib import Path

import pytest
from handshaker.tls import ClientAuth, NamedGroup, ProtocolVersion
from pki import PkiFiles, TestPKI

from .driver import listen_localhost
from .harness import (
    SCHEME_FOR_KEY_TYPE,
    client_config,
    echo_client,
    echo_server,
    engine_client,
    engine_server,
    exchange_with_echo_client,
    exchange_with_echo_server,
    server_config,
)

pytestmark = pytest.mark.interop

# Go's CurvePreferences ("" keeps Go's default, which puts X25519MLKEM768 first).
CURVE_CASES = [
    ("", NamedGroup.X25519MLKEM768),
    ("SecP256r1MLKEM768", NamedGroup.SECP256R1MLKEM768),
    ("SecP384r1MLKEM1024", NamedGroup.SECP384R1MLKEM1024),
    ("X25519", NamedGroup.X25519),
    ("P256", NamedGroup.SECP256R1),
]
CURVE_IDS = ["default", "SecP256r1MLKEM768", "SecP384r1MLKEM1024", "X25519", "P256"]
# Go's names for the draft-ietf-tls-ecdhe-mlkem hybrids (tls.CurveID, Go >= 1.26).
GO_HYBRIDS = {
    NamedGroup.X25519MLKEM768: "X25519MLKEM768",
    NamedGroup.SECP256R1MLKEM768: "SecP256r1MLKEM768",
    NamedGroup.SECP384R1MLKEM1024: "SecP384r1MLKEM1024",
}


@pytest.mark.parametrize("group", tuple(GO_HYBRIDS), ids=GO_HYBRIDS.get)
def test_engine_client_shares_each_hybrid_with_go_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-curves", GO_HYBRIDS[group]]
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, key_share_groups=(group,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert not result.hello_retry
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve_id"] == group
    assert negotiated["curve"] == GO_HYBRIDS[group]
    assert not negotiated["hello_retry"]


@pytest.mark.parametrize(("curves", "group"), CURVE_CASES, ids=CURVE_IDS)
def test_engine_client_with_go_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, curves: str, group: int
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    files = pki_files[leaf]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-alpn", "h2,http/1.1"]
    if curves:
        flags += ["-curves", curves]
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, alpn_protocols=(b"http/1.1",))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.version == ProtocolVersion.TLS1_3
            assert result.group == group
            # The engine's first ClientHello carries shares for X25519MLKEM768 and
            # X25519 only, so P-256 is reached through a HelloRetryRequest.
            retried = group not in (NamedGroup.X25519MLKEM768, NamedGroup.X25519)
            assert result.hello_retry == retried
            assert result.alpn_protocol == b"http/1.1"
            assert result.peer_certificates == leaf.credential().chain_der
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve_id"] == group
    assert negotiated["hello_retry"] == retried
    assert negotiated["cipher_suite_id"] == result.cipher_suite
    assert negotiated["alpn"] == "http/1.1"
    assert negotiated["server_name"] == "localhost"


@pytest.mark.parametrize(("curves", "group"), CURVE_CASES, ids=CURVE_IDS)
def test_engine_server_with_go_client(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, curves: str, group: int
) -> None:
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost", "-alpn", "h2"]
    if curves:
        flags += ["-curves", curves]
    message = "hello from go"
    with (
        listen_localhost() as listener,
        echo_client([str(go_peer)], listener, *flags, "-message", message) as peer,
    ):
        config = server_config(pki.servers["ecdsa-p256"], alpn_protocols=(b"h2",))
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert not result.hello_retry
            assert result.alpn_protocol == b"h2"
            assert result.server_name == "localhost"
            negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["curve_id"] == group
    assert not negotiated["hello_retry"]
    assert negotiated["cipher_suite_id"] == result.cipher_suite
    assert negotiated["peer_certificates"] == ["server ecdsa-p256", "handshaker test intermediate"]


def test_engine_client_retries_hello_to_reach_go_hybrid_group(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-curves", "X25519MLKEM768"]
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, key_share_groups=(NamedGroup.X25519,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.hello_retry
            assert result.group == NamedGroup.X25519MLKEM768
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["hello_retry"]


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_client_authenticates_to_go_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    files = pki_files[pki.servers["ed25519"]]
    flags = [
        "-cert", str(files.chain), "-key", str(files.key),
        "-clientauth", "require", "-ca", str(pki_files.root_ca),
    ]  # fmt: skip
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, credential=pki.clients[key_type].credential())
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE["ed25519"]
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["peer_certificates"] == [
        f"client {key_type}",
        "handshaker test intermediate",
    ]
    assert negotiated["verified_chains"] >= 1


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_go_client_authenticates_to_engine_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    files = pki_files[client_leaf]
    flags = [
        "-ca", str(pki_files.root_ca), "-servername", "localhost",
        "-cert", str(files.chain), "-key", str(files.key),
    ]  # fmt: skip
    message = "authenticated go client"
    with (
        listen_localhost() as listener,
        echo_client([str(go_peer)], listener, *flags, "-message", message) as peer,
    ):
        config = server_config(
            pki.servers["rsa-2048"],
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.peer_certificates == client_leaf.credential().chain_der
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            assert result.signature_scheme == SCHEME_FOR_KEY_TYPE["rsa-2048"]
            exchange_with_echo_client(session, peer, message)


@pytest.mark.parametrize("key_type", ["ecdsa-p384", "ecdsa-p521", "ed25519"])
def test_go_client_verifies_engine_server_key_type(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost"]
    message = f"go checks {key_type}"
    with (
        listen_localhost() as listener,
        echo_client([str(go_peer)], listener, *flags, "-message", message) as peer,
        engine_server(listener, server_config(pki.servers[key_type])) as session,
    ):
        assert session.outcome.result.signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
        negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["verified_chains"] >= 1
