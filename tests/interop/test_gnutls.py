"""The engine against GnuTLS (`gnutls-serv`, `gnutls-cli`), TLS 1.3 and TLS 1.2, both roles.

GnuTLS is a TLS stack independent of OpenSSL, Go and the engine. TLS 1.2 is
forced with the priority string NORMAL:-VERS-ALL:+VERS-TLS1.2; each TLS 1.2
AEAD cipher is forced in turn; client certificates each way; application data
both ways and close_notify.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest
from handshaker.tls import ClientAuth, NamedGroup, ProtocolVersion
from handshaker.tls.codepoints import Tls12CipherSuite
from pki import Leaf, PkiFiles, TestPKI

from .driver import listen_localhost
from .harness import PING, client_config, engine_client, engine_server, server_config
from .peers import PeerProcess

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3
ONLY_TLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
ONLY_TLS13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3"
PONG = b"pong from gnutls\n"
_S = Tls12CipherSuite
# (suite, GnuTLS cipher, key type of the server leaf)
TLS12_SUITES = [
    (_S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "AES-128-GCM", "ecdsa-p256"),
    (_S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "AES-256-GCM", "ecdsa-p256"),
    (_S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "CHACHA20-POLY1305", "ecdsa-p256"),
    (_S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "AES-128-GCM", "rsa-2048"),
    (_S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "AES-256-GCM", "rsa-2048"),
    (_S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "CHACHA20-POLY1305", "rsa-2048"),
]
IDS = [suite.name for suite, _, _ in TLS12_SUITES]


@pytest.fixture(scope="module")
def gnutls() -> tuple[str, str]:
    cli, serv = shutil.which("gnutls-cli"), shutil.which("gnutls-serv")
    if cli is None or serv is None:
        pytest.skip("gnutls-cli/gnutls-serv not installed (Debian package gnutls-bin)")
    return cli, serv


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gnutls_serv(
    binary: str, pki_files: PkiFiles, leaf: Leaf, priority: str, *options: str
) -> Iterator[tuple[PeerProcess, int]]:
    """`gnutls-serv --echo` on 127.0.0.1, presenting `leaf` and its chain."""
    files = pki_files[leaf]
    port = _free_port()
    args = [
        binary, "--echo", "-p", str(port), "--priority", priority,
        "--x509certfile", str(files.chain), "--x509keyfile", str(files.key), *options,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True) as peer:
        peer.wait_for(r"listening on IPv4 .* port \d+")
        yield peer, port  # PeerProcess stops the server, which never exits by itself


@contextmanager
def gnutls_cli(
    binary: str, pki_files: PkiFiles, priority: str, *options: str
) -> Iterator[tuple[PeerProcess, socket.socket]]:
    """`gnutls-cli` to a fresh listener, verifying "localhost" against the test root."""
    with listen_localhost() as listener:
        port = listener.getsockname()[1]
        args = [
            binary, "-p", str(port), "127.0.0.1", "--priority", priority,
            "--x509cafile", str(pki_files.root_ca), "--verify-hostname", "localhost",
            "--sni-hostname", "localhost", *options,
        ]  # fmt: skip
        with PeerProcess(args, merge_stderr=True) as peer:
            yield peer, listener


def _exchange_with_serv(session: object, peer: PeerProcess) -> None:
    channel = session.channel()  # type: ignore[attr-defined]
    channel.send(PING)
    assert channel.receive_line() == PING  # --echo sends it back
    channel.close()


def _exchange_with_cli(session: object, peer: PeerProcess) -> None:
    channel = session.channel()  # type: ignore[attr-defined]
    peer.write(PONG)
    assert channel.receive_line() == PONG
    channel.send(PING)
    peer.wait_for(r"^ping from the engine$")
    peer.close_stdin()  # gnutls-cli says bye (close_notify) at the end of its input
    assert channel.receive_until_closed() == b""
    assert channel.peer_closed


@pytest.mark.parametrize("case", TLS12_SUITES, ids=IDS)
def test_engine_client_with_gnutls_serv_tls12(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles, case: tuple[int, str, str]
) -> None:
    suite, cipher, key_type = case
    priority = f"{ONLY_TLS12}:-CIPHER-ALL:+{cipher}"
    with gnutls_serv(gnutls[1], pki_files, pki.servers[key_type], priority) as (peer, port):
        with engine_client(port, client_config(pki)) as session:
            result = session.outcome.result
            assert (result.version, result.cipher_suite) == (TLS12, suite)
            assert result.extended_master_secret
            _exchange_with_serv(session, peer)
        peer.wait_for(rf"\(TLS1\.2-X\.509\)-\(ECDHE-[^)]+\)-\([^)]+\)-\({cipher}\)")


@pytest.mark.parametrize("case", TLS12_SUITES, ids=IDS)
def test_gnutls_cli_tls12_with_engine_server(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles, case: tuple[int, str, str]
) -> None:
    suite, cipher, key_type = case
    priority = f"{ONLY_TLS12}:-CIPHER-ALL:+{cipher}"
    with (
        gnutls_cli(gnutls[0], pki_files, priority) as (peer, listener),
        engine_server(listener, server_config(pki.servers[key_type])) as session,
    ):
        result = session.outcome.result
        assert (result.version, result.cipher_suite) == (TLS12, suite)
        assert result.server_name == "localhost"
        _exchange_with_cli(session, peer)
    assert "(TLS1.2-X.509)" in peer.stdout
    assert "extended master secret" in peer.stdout


def test_engine_client_with_gnutls_serv_tls13(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    with gnutls_serv(gnutls[1], pki_files, leaf, ONLY_TLS13) as (peer, port):
        with engine_client(port, client_config(pki)) as session:
            assert session.outcome.result.version == TLS13
            _exchange_with_serv(session, peer)
        peer.wait_for(r"\(TLS1\.3-X\.509\)")


def test_gnutls_cli_tls13_with_engine_server(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    with (
        gnutls_cli(gnutls[0], pki_files, ONLY_TLS13) as (peer, listener),
        engine_server(listener, server_config(pki.servers["rsa-2048"])) as session,
    ):
        result = session.outcome.result
        assert result.version == TLS13
        assert result.group in (NamedGroup.X25519, NamedGroup.SECP256R1)
        _exchange_with_cli(session, peer)
    assert "(TLS1.3-X.509)" in peer.stdout


@pytest.mark.parametrize("priority", [ONLY_TLS12, ONLY_TLS13], ids=["tls12", "tls13"])
def test_engine_client_authenticates_to_gnutls_serv(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles, priority: str
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    options = ("--require-client-cert", "--verify-client-cert",
               "--x509cafile", str(pki_files.root_ca))  # fmt: skip
    with gnutls_serv(gnutls[1], pki_files, leaf, priority, *options) as (peer, port):
        config = client_config(pki, credential=pki.clients["ecdsa-p256"].credential())
        with engine_client(port, config) as session:
            assert session.outcome.result.signature_scheme is not None
            _exchange_with_serv(session, peer)
        peer.wait_for(r"client ecdsa-p256")


@pytest.mark.parametrize("priority", [ONLY_TLS12, ONLY_TLS13], ids=["tls12", "tls13"])
def test_gnutls_cli_authenticates_to_engine_server(
    gnutls: tuple[str, str], pki: TestPKI, pki_files: PkiFiles, priority: str
) -> None:
    client_leaf = pki.clients["rsa-2048"]
    files = pki_files[client_leaf]
    options = ("--x509certfile", str(files.chain), "--x509keyfile", str(files.key))
    config = server_config(
        pki.servers["ecdsa-p256"],
        client_auth=ClientAuth.REQUIRED,
        client_trust_anchors=(pki.root.certificate,),
    )
    with (
        gnutls_cli(gnutls[0], pki_files, priority, *options) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        assert result.peer_certificates == client_leaf.credential().chain_der
        _exchange_with_cli(session, peer)
