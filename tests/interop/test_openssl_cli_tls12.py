"""The engine in TLS 1.2 against the OpenSSL 3 command line: `s_server -tls1_2`, `s_client -tls1_2`.

Every suite each way, with application data both ways and close_notify; client
authentication each way; RFC 7507 fallback and the RFC 8446 downgrade sentinel.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from handshaker.tls import AlertDescription, ClientAuth, NamedGroup, ProtocolVersion
from handshaker.tls.codepoints import Tls12CipherSuite
from pki import Leaf, PkiFiles, TestPKI

from .driver import listen_localhost
from .harness import client_config, engine_client, engine_server, server_config
from .peers import PeerProcess
from .test_openssl_cli import OPENSSL_GROUP, exchange_with_s_client, exchange_with_s_server

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
_S = Tls12CipherSuite
# (suite, OpenSSL's name, the leaf key type, the group): every suite, every group at least once.
SUITES = [
    (_S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", "ecdsa-p256",
     NamedGroup.X25519),
    (_S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", "ecdsa-p256",
     NamedGroup.SECP384R1),
    (_S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305",
     "ecdsa-p256", NamedGroup.X448),
    (_S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256", "rsa-2048",
     NamedGroup.SECP256R1),
    (_S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384", "rsa-2048",
     NamedGroup.SECP521R1),
    (_S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305", "rsa-2048",
     NamedGroup.X25519),
]  # fmt: skip


@contextmanager
def s_server_tls12(
    openssl: str, pki_files: PkiFiles, leaf: Leaf, *options: str | Path
) -> Iterator[tuple[PeerProcess, int]]:
    files = pki_files[leaf]
    args = [
        openssl, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_2",
        "-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key, *options,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True) as peer:
        port = int(peer.wait_for(r"^ACCEPT .*:(\d+)\s*$")[1])
        yield peer, port


@contextmanager
def s_client_tls12(
    openssl: str, pki_files: PkiFiles, *options: str | Path
) -> Iterator[tuple[PeerProcess, socket.socket]]:
    with listen_localhost() as listener:
        port = listener.getsockname()[1]
        args = [
            openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-nocommands",
            "-servername", "localhost", "-CAfile", pki_files.root_ca,
            "-verify_return_error", "-verify_hostname", "localhost", *options,
        ]  # fmt: skip
        with PeerProcess(args, merge_stderr=True) as peer:
            yield peer, listener


Case = tuple[int, str, str, int]


def _case_id(case: Case) -> str:
    return f"{case[1]}-{OPENSSL_GROUP[case[3]]}"


@pytest.mark.parametrize("case", SUITES, ids=_case_id)
def test_engine_client_completes_each_suite_with_s_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, case: Case
) -> None:
    suite, name, key_type, group = case
    options = ("-cipher", name, "-groups", OPENSSL_GROUP[group])
    # The default client: it offers TLS 1.3 and 1.2, and meets s_server in 1.2.
    with (
        s_server_tls12(openssl_cli, pki_files, pki.servers[key_type], *options) as (peer, port),
        engine_client(port, client_config(pki, keylog=True)) as session,
    ):
        result = session.outcome.result
        assert result.version == TLS12
        assert result.cipher_suite == suite
        assert result.group == group
        assert result.extended_master_secret
        exchange_with_s_server(session.channel(), peer)
    assert f"CIPHER is {name}" in peer.stdout


@pytest.mark.parametrize("case", SUITES, ids=_case_id)
def test_engine_server_completes_each_suite_with_s_client(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, case: Case
) -> None:
    suite, name, key_type, group = case
    # P-256 too: the ECDSA certificate's curve must be one the client supports (RFC 8422
    # section 5.1); the engine takes `group` alone for ECDHE.
    groups = ":".join(dict.fromkeys((OPENSSL_GROUP[group], "P-256")))
    options = ("-cipher", name, "-groups", groups)
    config = server_config(pki.servers[key_type], supported_groups=(group,))
    with (
        s_client_tls12(openssl_cli, pki_files, *options) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        assert result.version == TLS12
        assert result.cipher_suite == suite
        assert result.group == group
        exchange_with_s_client(session.channel(), peer)
    assert f"New, TLSv1.2, Cipher is {name}" in peer.stdout
    assert "Secure Renegotiation IS supported" in peer.stdout
    assert "Extended master secret: yes" in peer.stdout
    assert "Verification: OK" in peer.stdout


def test_engine_client_authenticates_to_s_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    client_leaf = pki.clients["ecdsa-p256"]
    options = ("-Verify", "2", "-verify_return_error", "-CAfile", pki_files.root_ca)
    with s_server_tls12(openssl_cli, pki_files, pki.servers["rsa-2048"], *options) as (peer, port):
        config = client_config(pki, credential=client_leaf.credential())
        with engine_client(port, config) as session:
            assert session.outcome.result.version == TLS12
            assert session.outcome.result.signature_scheme is not None
            exchange_with_s_server(session.channel(), peer)
    assert "CN = client ecdsa-p256" in peer.stdout


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_server_verifies_the_certificate_of_s_client(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    files = pki_files[client_leaf]
    options = ("-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key)
    config = server_config(
        pki.servers["ecdsa-p256"],
        client_auth=ClientAuth.REQUIRED,
        client_trust_anchors=(pki.root.certificate,),
    )
    with (
        s_client_tls12(openssl_cli, pki_files, *options) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        assert result.version == TLS12
        assert result.peer_certificates == client_leaf.credential().chain_der
        exchange_with_s_client(session.channel(), peer)


def test_engine_server_refuses_a_fallback_below_tls_1_3(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    with (
        s_client_tls12(openssl_cli, pki_files, "-fallback_scsv") as (peer, listener),
        engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
    ):
        failed = session.outcome.failed
        assert failed is not None, "the handshake completed"
        assert failed.alert == AlertDescription.INAPPROPRIATE_FALLBACK
        peer.wait_for(
            rf"alert number {int(AlertDescription.INAPPROPRIATE_FALLBACK)}\b|inappropriate fallback"
        )


def test_a_tls_1_3_client_refuses_a_tls_1_2_server_only_when_the_sentinel_is_there(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    # OpenSSL's s_server with -tls1_2 alone is not TLS 1.3-capable: no sentinel, so the
    # default client completes in TLS 1.2 (the sentinel check is in test_tls12_engine.py).
    with (
        s_server_tls12(openssl_cli, pki_files, pki.servers["ecdsa-p256"]) as (peer, port),
        engine_client(port, client_config(pki)) as session,
    ):
        assert session.outcome.result.version == TLS12
        exchange_with_s_server(session.channel(), peer)


# --- a peer without the extended master secret (RFC 7627) ------------------------------------


@pytest.fixture(scope="module")
def no_ems_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An OPENSSL_CONF that switches the extended master secret off in s_client/s_server."""
    conf = tmp_path_factory.mktemp("no-ems") / "openssl.cnf"
    conf.write_text(
        "openssl_conf = default_conf\n"
        "[default_conf]\nssl_conf = ssl_sect\n"
        "[ssl_sect]\nsystem_default = system_default_sect\n"
        "[system_default_sect]\nOptions = -ExtendedMasterSecret\n"
    )
    return {**os.environ, "OPENSSL_CONF": str(conf)}


def test_engine_client_refuses_a_server_without_extended_master_secret_by_default(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, no_ems_env: dict[str, str]
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    args = [
        openssl_cli, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_2",
        "-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True, env=no_ems_env) as peer:
        port = int(peer.wait_for(r"^ACCEPT .*:(\d+)\s*$")[1])
        with engine_client(port, client_config(pki)) as session:
            failed = session.outcome.failed
            assert failed is not None and failed.alert == AlertDescription.HANDSHAKE_FAILURE


def test_engine_client_allowing_it_uses_the_legacy_master_secret(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, no_ems_env: dict[str, str]
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    args = [
        openssl_cli, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_2",
        "-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True, env=no_ems_env) as peer:
        port = int(peer.wait_for(r"^ACCEPT .*:(\d+)\s*$")[1])
        config = client_config(pki, require_extended_master_secret=False)
        with engine_client(port, config) as session:
            assert not session.outcome.result.extended_master_secret
            exchange_with_s_server(session.channel(), peer)


def _s_client_without_ems(
    openssl: str, pki_files: PkiFiles, port: int, env: dict[str, str]
) -> PeerProcess:
    args = [
        openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-nocommands",
        "-servername", "localhost", "-CAfile", pki_files.root_ca,
        "-verify_return_error", "-verify_hostname", "localhost",
    ]  # fmt: skip
    return PeerProcess(args, merge_stderr=True, env=env)


def test_engine_server_refuses_a_client_without_extended_master_secret_by_default(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, no_ems_env: dict[str, str]
) -> None:
    with listen_localhost() as listener:
        port = listener.getsockname()[1]
        with (
            _s_client_without_ems(openssl_cli, pki_files, port, no_ems_env),
            engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
        ):
            failed = session.outcome.failed
            assert failed is not None and failed.alert == AlertDescription.HANDSHAKE_FAILURE


def test_engine_server_allowing_it_uses_the_legacy_master_secret(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, no_ems_env: dict[str, str]
) -> None:
    config = server_config(pki.servers["ecdsa-p256"], require_extended_master_secret=False)
    with listen_localhost() as listener:
        port = listener.getsockname()[1]
        with (
            _s_client_without_ems(openssl_cli, pki_files, port, no_ems_env) as peer,
            engine_server(listener, config) as session,
        ):
            assert not session.outcome.result.extended_master_secret
            exchange_with_s_client(session.channel(), peer)
    assert "Extended master secret: no" in peer.stdout


# --- key log: the same CLIENT_RANDOM line as OpenSSL's ------------------------------------------


def test_engine_server_keylog_line_is_the_one_s_client_writes(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, tmp_path: Path
) -> None:
    keylog = tmp_path / "s_client.keys"
    config = server_config(pki.servers["rsa-2048"], keylog=True)
    with (
        s_client_tls12(openssl_cli, pki_files, "-keylogfile", keylog) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        exchange_with_s_client(session.channel(), peer)
    assert result.keylog[0] in keylog.read_text().splitlines()
    assert result.keylog[0].startswith(f"CLIENT_RANDOM {result.client_random.hex()} ")


def test_engine_client_keylog_line_is_the_one_s_server_writes(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, tmp_path: Path
) -> None:
    keylog = tmp_path / "s_server.keys"
    leaf = pki.servers["ecdsa-p256"]
    with (
        s_server_tls12(openssl_cli, pki_files, leaf, "-keylogfile", keylog) as (peer, port),
        engine_client(port, client_config(pki, keylog=True)) as session,
    ):
        result = session.outcome.result
        exchange_with_s_server(session.channel(), peer)
    assert result.keylog[0] in keylog.read_text().splitlines()


def test_engine_exporter_matches_s_client_keying_material(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    # RFC 5705 without a context (s_client exports with use_context = 0).
    options = ("-keymatexport", "EXPERIMENTAL-handshaker", "-keymatexportlen", "20")
    with (
        s_client_tls12(openssl_cli, pki_files, *options) as (peer, listener),
        engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
    ):
        result = session.outcome.result
        exchange_with_s_client(session.channel(), peer)
    ours = result.export_keying_material(b"EXPERIMENTAL-handshaker", None, 20)
    assert f"Keying material: {ours.hex().upper()}" in peer.stdout


# --- the opt-in key exchanges: RSA (no forward secrecy) and DHE_RSA over RFC 7919 groups ---

OPT_IN = [
    (_S.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", 0),
    (_S.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", 0),
    (_S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, "DHE-RSA-AES128-GCM-SHA256", NamedGroup.FFDHE2048),
    (_S.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, "DHE-RSA-AES256-GCM-SHA384", NamedGroup.FFDHE3072),
    (_S.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "DHE-RSA-CHACHA20-POLY1305",
     NamedGroup.FFDHE2048),
]  # fmt: skip
OptIn = tuple[int, str, int]


def _groups_for(group: int) -> tuple[int, ...]:
    return (group,) if group else (NamedGroup.X25519,)


def _rfc7919_dhparam(openssl: str, group: int, folder: Path) -> Path:
    """s_server's -dhparam file for an RFC 7919 group (OpenSSL 3.0's automatic DH
    parameters for TLS 1.2 are not RFC 7919 primes, which the engine refuses)."""
    path = folder / f"{NamedGroup(group).name.lower()}.pem"
    subprocess.run(
        [openssl, "genpkey", "-genparam", "-algorithm", "DH",
         "-pkeyopt", f"group:{NamedGroup(group).name.lower()}", "-out", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("case", OPT_IN, ids=lambda c: c[1])
def test_engine_client_opt_in_key_exchange_with_s_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, case: OptIn, tmp_path: Path
) -> None:
    suite, name, group = case
    options: tuple[str | Path, ...] = ("-cipher", name)
    if group:
        options += ("-dhparam", _rfc7919_dhparam(openssl_cli, group, tmp_path))
    config = client_config(pki, tls12_cipher_suites=(suite,), max_version=TLS12,
                           supported_groups=_groups_for(group),
                           key_share_groups=_groups_for(group))  # fmt: skip
    with (
        s_server_tls12(openssl_cli, pki_files, pki.servers["rsa-2048"], *options) as (peer, port),
        engine_client(port, config) as session,
    ):
        result = session.outcome.result
        assert (result.version, result.cipher_suite, result.group) == (TLS12, suite, group)
        exchange_with_s_server(session.channel(), peer)
    assert f"CIPHER is {name}" in peer.stdout


@pytest.mark.parametrize("case", OPT_IN, ids=lambda c: c[1])
def test_engine_server_opt_in_key_exchange_with_s_client(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, case: OptIn
) -> None:
    suite, name, group = case
    config = server_config(pki.servers["rsa-2048"], tls12_cipher_suites=(suite,))
    with (
        s_client_tls12(openssl_cli, pki_files, "-cipher", name) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        # OpenSSL 3.0 names no FFDHE group in a TLS 1.2 ClientHello (a legacy client in
        # RFC 7919's terms): the server takes its first RFC 7919 group, ffdhe2048.
        expected_group = NamedGroup.FFDHE2048 if group else 0
        assert (result.version, result.cipher_suite, result.group) == (TLS12, suite, expected_group)
        exchange_with_s_client(session.channel(), peer)
    assert f"New, TLSv1.2, Cipher is {name}" in peer.stdout
    assert "Extended master secret: yes" in peer.stdout


def test_engine_client_refuses_openssl_automatic_dh_parameters(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    suite = _S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
    config = client_config(pki, tls12_cipher_suites=(suite,), max_version=TLS12)
    options = ("-cipher", "DHE-RSA-AES128-GCM-SHA256")
    with (
        s_server_tls12(openssl_cli, pki_files, pki.servers["rsa-2048"], *options) as (_peer, port),
        engine_client(port, config) as session,
    ):
        failed = session.outcome.failed
    assert failed is not None and failed.alert == AlertDescription.INSUFFICIENT_SECURITY
