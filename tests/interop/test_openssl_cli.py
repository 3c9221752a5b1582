"""The engine against the OpenSSL 3 command line: `openssl s_server` and `openssl s_client`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from handshaker.tls import (
    AlertDescription,
    CipherSuite,
    ClientAuth,
    NamedGroup,
    SignatureScheme,
)
from pki import SERVER_KEY_TYPES, Leaf, PkiFiles, TestPKI

from .driver import ApplicationChannel, listen_localhost
from .harness import (
    PING,
    SCHEME_FOR_KEY_TYPE,
    client_config,
    engine_client,
    engine_server,
    server_config,
)
from .peers import PeerProcess

pytestmark = pytest.mark.interop

PONG = b"pong from openssl\n"

OPENSSL_GROUP: dict[int, str] = {
    NamedGroup.X25519: "X25519",
    NamedGroup.SECP256R1: "P-256",
    NamedGroup.SECP384R1: "P-384",
    NamedGroup.SECP521R1: "P-521",
    NamedGroup.X448: "X448",
}
# How `s_client` reports the server's key share ("Server Temp Key: ...").
S_CLIENT_TEMP_KEY: dict[int, str] = {
    NamedGroup.X25519: "X25519, 253 bits",
    NamedGroup.SECP256R1: "ECDH, prime256v1, 256 bits",
    NamedGroup.SECP384R1: "ECDH, secp384r1, 384 bits",
    NamedGroup.SECP521R1: "ECDH, secp521r1, 521 bits",
    NamedGroup.X448: "X448, 448 bits",
}
# s_server's names in "Shared groups: ...".
S_SERVER_GROUP_NAME: dict[int, str] = {
    NamedGroup.X25519: "x25519",
    NamedGroup.SECP256R1: "secp256r1",
    NamedGroup.SECP384R1: "secp384r1",
    NamedGroup.SECP521R1: "secp521r1",
    NamedGroup.X448: "x448",
}
# How OpenSSL names the signature of a peer's CertificateVerify ("Peer signature type").
OPENSSL_SIGNATURE_TYPE = {
    "ecdsa-p256": "ECDSA",
    "ecdsa-p384": "ECDSA",
    "ecdsa-p521": "ECDSA",
    "rsa-2048": "RSA-PSS",
    "rsa-pss": "RSA-PSS",
    "ed25519": "ed25519",
    "ed448": "ed448",
}

# Every group and every suite at least once, without the full cross product.
GROUP_AND_SUITE = [
    (NamedGroup.X25519, CipherSuite.TLS_AES_128_GCM_SHA256),
    (NamedGroup.SECP256R1, CipherSuite.TLS_AES_256_GCM_SHA384),
    (NamedGroup.SECP384R1, CipherSuite.TLS_CHACHA20_POLY1305_SHA256),
    (NamedGroup.SECP521R1, CipherSuite.TLS_AES_128_GCM_SHA256),
    (NamedGroup.X448, CipherSuite.TLS_AES_256_GCM_SHA384),
]


# RFC 7919 groups: (OpenSSL's name in -groups and "Shared groups", s_client's "Server Temp Key").
FFDHE_GROUPS: dict[int, tuple[str, str]] = {
    NamedGroup.FFDHE2048: ("ffdhe2048", "DH, 2048 bits"),
    NamedGroup.FFDHE3072: ("ffdhe3072", "DH, 3072 bits"),
    NamedGroup.FFDHE4096: ("ffdhe4096", "DH, 4096 bits"),
}


def _ids(param: object) -> str:
    return getattr(param, "name", str(param))


# --- the engine as client, against s_server ---------------------------------------


@contextmanager
def s_server(
    openssl: str, pki_files: PkiFiles, leaf: Leaf, *options: str | Path
) -> Iterator[tuple[PeerProcess, int]]:
    """`openssl s_server` for one connection on 127.0.0.1, presenting `leaf` and its chain."""
    files = pki_files[leaf]
    args = [
        openssl, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_3",
        "-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key, *options,
    ]  # fmt: skip
    with PeerProcess(args, merge_stderr=True) as peer:
        port = int(peer.wait_for(r"^ACCEPT .*:(\d+)\s*$")[1])
        yield peer, port


def exchange_with_s_server(channel: ApplicationChannel, peer: PeerProcess) -> None:
    """A line each way, then close_notify; s_server prints what it got and sends its stdin."""
    channel.send(PING)
    peer.wait_for(r"^ping from the engine$")
    peer.write(PONG)
    assert channel.receive_line() == PONG
    channel.close()
    assert peer.wait() == 0, peer.describe()


@pytest.mark.parametrize(("group", "suite"), GROUP_AND_SUITE, ids=_ids)
def test_engine_client_negotiates_each_group_and_suite(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, group: int, suite: int
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    options = ("-groups", OPENSSL_GROUP[group], "-ciphersuites", CipherSuite(suite).name)
    with s_server(openssl_cli, pki_files, leaf, *options) as (peer, port):
        config = client_config(pki, key_share_groups=(group,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert result.cipher_suite == suite
            assert not result.hello_retry
            exchange_with_s_server(session.channel(), peer)
    assert f"CIPHER is {CipherSuite(suite).name}" in peer.stdout
    assert f"Shared groups: {S_SERVER_GROUP_NAME[group]}" in peer.stdout


@pytest.mark.parametrize("group", tuple(FFDHE_GROUPS), ids=_ids)
def test_engine_client_offering_only_ffdhe_completes_with_s_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    name, _ = FFDHE_GROUPS[group]
    leaf = pki.servers["ecdsa-p256"]
    with s_server(openssl_cli, pki_files, leaf, "-groups", name) as (peer, port):
        config = client_config(pki, supported_groups=(group,), key_share_groups=(group,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert not result.hello_retry
            exchange_with_s_server(session.channel(), peer)
    assert f"Shared groups: {name}" in peer.stdout


def test_engine_client_retries_hello_for_ffdhe_of_s_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    # The default client shares X25519MLKEM768 and X25519 and lists FFDHE last.
    leaf = pki.servers["ecdsa-p256"]
    with s_server(openssl_cli, pki_files, leaf, "-groups", "ffdhe3072") as (peer, port):
        config = client_config(pki)
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == NamedGroup.FFDHE3072
            assert result.hello_retry
            exchange_with_s_server(session.channel(), peer)
    assert "Shared groups: ffdhe3072" in peer.stdout


@pytest.mark.parametrize("key_type", SERVER_KEY_TYPES)
def test_engine_client_verifies_each_server_key_type(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    leaf = pki.servers[key_type]
    with (
        s_server(openssl_cli, pki_files, leaf) as (peer, port),
        engine_client(port, client_config(pki)) as session,
    ):
        result = session.outcome.result
        assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
        assert result.peer_certificates == leaf.credential().chain_der
        assert result.signature_scheme is None
        exchange_with_s_server(session.channel(), peer)


def test_engine_client_retries_hello_for_the_servers_group(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    # The engine offers a share for X25519 only; s_server takes only P-384, so it
    # must answer with a HelloRetryRequest for P-384.
    with s_server(openssl_cli, pki_files, pki.servers["ecdsa-p384"], "-groups", "P-384") as (
        peer,
        port,
    ):
        config = client_config(pki, key_share_groups=(NamedGroup.X25519,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.hello_retry
            assert result.group == NamedGroup.SECP384R1
            exchange_with_s_server(session.channel(), peer)


def test_engine_client_negotiates_alpn(openssl_cli: str, pki: TestPKI, pki_files: PkiFiles) -> None:
    leaf = pki.servers["ecdsa-p256"]
    with s_server(openssl_cli, pki_files, leaf, "-alpn", "http/1.1") as (peer, port):
        config = client_config(pki, alpn_protocols=(b"h2", b"http/1.1"))
        with engine_client(port, config) as session:
            assert session.outcome.result.alpn_protocol == b"http/1.1"
            exchange_with_s_server(session.channel(), peer)
    assert "ALPN protocols advertised by the client: h2, http/1.1" in peer.stdout
    assert "ALPN protocols selected: http/1.1" in peer.stdout


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_client_authenticates_with_its_certificate(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    options = ("-Verify", "2", "-verify_return_error", "-CAfile", pki_files.root_ca)
    with s_server(openssl_cli, pki_files, pki.servers["ecdsa-p256"], *options) as (peer, port):
        config = client_config(pki, credential=client_leaf.credential())
        with engine_client(port, config) as session:
            assert session.outcome.result.signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            exchange_with_s_server(session.channel(), peer)
    assert f"CN = client {key_type}" in peer.stdout
    assert f"Peer signature type: {OPENSSL_SIGNATURE_TYPE[key_type]}" in peer.stdout


@pytest.mark.parametrize(
    ("leaf_name", "alert"),
    [
        ("untrusted", AlertDescription.UNKNOWN_CA),
        ("wrong_name", AlertDescription.BAD_CERTIFICATE),
        ("expired", AlertDescription.CERTIFICATE_EXPIRED),
    ],
)
def test_engine_client_rejects_a_bad_server_certificate(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, leaf_name: str, alert: int
) -> None:
    leaf: Leaf = getattr(pki, leaf_name)
    with (
        s_server(openssl_cli, pki_files, leaf) as (peer, port),
        engine_client(port, client_config(pki)) as session,
    ):
        failed = session.outcome.failed
        assert failed is not None, "the handshake completed"
        assert failed.alert == alert
        assert not failed.sent_by_peer
        # The alert reached s_server, protected with our handshake keys.
        peer.wait_for(rf"SSL alert number {int(alert)}\b")


def test_engine_client_gets_no_application_protocol_from_the_server(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    with (
        s_server(openssl_cli, pki_files, leaf, "-alpn", "h2") as (_peer, port),
        engine_client(port, client_config(pki, alpn_protocols=(b"http/1.1",))) as session,
    ):
        failed = session.outcome.failed
        assert failed is not None, "the handshake completed"
        assert failed.alert == AlertDescription.NO_APPLICATION_PROTOCOL
        assert failed.sent_by_peer


# --- the engine as server, against s_client ---------------------------------------


@contextmanager
def s_client(
    openssl: str, pki_files: PkiFiles, *options: str | Path
) -> Iterator[tuple[PeerProcess, socket.socket]]:
    """`openssl s_client` connecting to a fresh listener, verifying "localhost" by the test root."""
    with listen_localhost() as listener:
        port = listener.getsockname()[1]
        args = [
            openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-nocommands",
            "-servername", "localhost", "-CAfile", pki_files.root_ca,
            "-verify_return_error", "-verify_hostname", "localhost", *options,
        ]  # fmt: skip
        with PeerProcess(args, merge_stderr=True) as peer:
            yield peer, listener


def exchange_with_s_client(channel: ApplicationChannel, peer: PeerProcess) -> None:
    """A line each way; closing s_client's stdin makes it send close_notify and exit."""
    channel.send(PING)
    peer.wait_for(r"^ping from the engine$")
    peer.write(PONG)
    assert channel.receive_line() == PONG
    peer.close_stdin()
    assert channel.receive_until_closed() == b""
    assert channel.peer_closed
    assert peer.wait() == 0, peer.describe()


@pytest.mark.parametrize(("group", "suite"), GROUP_AND_SUITE, ids=_ids)
def test_engine_server_negotiates_each_group_and_suite(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, group: int, suite: int
) -> None:
    options = ("-groups", OPENSSL_GROUP[group], "-ciphersuites", CipherSuite(suite).name)
    with (
        s_client(openssl_cli, pki_files, *options) as (peer, listener),
        engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
    ):
        result = session.outcome.result
        assert result.group == group
        assert result.cipher_suite == suite
        assert not result.hello_retry
        exchange_with_s_client(session.channel(), peer)
    assert f"Server Temp Key: {S_CLIENT_TEMP_KEY[group]}" in peer.stdout
    assert f"New, TLSv1.3, Cipher is {CipherSuite(suite).name}" in peer.stdout


@pytest.mark.parametrize("group", tuple(FFDHE_GROUPS), ids=_ids)
def test_engine_server_with_default_groups_answers_s_client_offering_only_ffdhe(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    name, temp_key = FFDHE_GROUPS[group]
    with (
        s_client(openssl_cli, pki_files, "-groups", name) as (peer, listener),
        engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
    ):
        result = session.outcome.result
        assert result.group == group
        assert not result.hello_retry
        exchange_with_s_client(session.channel(), peer)
    assert f"Server Temp Key: {temp_key}" in peer.stdout


@pytest.mark.parametrize("key_type", SERVER_KEY_TYPES)
def test_engine_server_signs_with_each_key_type(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    with (
        s_client(openssl_cli, pki_files) as (peer, listener),
        engine_server(listener, server_config(pki.servers[key_type])) as session,
    ):
        result = session.outcome.result
        assert result.signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
        assert result.server_name == "localhost"
        exchange_with_s_client(session.channel(), peer)
    assert "Verification: OK" in peer.stdout
    assert f"Peer signature type: {OPENSSL_SIGNATURE_TYPE[key_type]}" in peer.stdout


@pytest.mark.parametrize(
    "case",
    [
        # s_client sends a share for its first group only; the engine takes only the second.
        ("X25519:P-384", (NamedGroup.SECP384R1,), False),
        # The share is acceptable, but the engine insists on its own first choice.
        ("X25519:P-256", (NamedGroup.SECP256R1, NamedGroup.X25519), True),
    ],
    ids=["unsupported-share", "server-preference"],
)
def test_engine_server_retries_hello_for_its_group(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, case: tuple[str, tuple[int, ...], bool]
) -> None:
    # (s_client -groups, the engine's supported_groups, prefer_own_group_order)
    client_groups, server_groups, prefer_own_group_order = case
    config = server_config(
        pki.servers["ecdsa-p256"],
        supported_groups=server_groups,
        prefer_own_group_order=prefer_own_group_order,
    )
    with (
        s_client(openssl_cli, pki_files, "-groups", client_groups) as (peer, listener),
        engine_server(listener, config) as session,
    ):
        result = session.outcome.result
        assert result.hello_retry
        assert result.group == server_groups[0]
        exchange_with_s_client(session.channel(), peer)
    assert f"Server Temp Key: {S_CLIENT_TEMP_KEY[server_groups[0]]}" in peer.stdout


def test_engine_server_selects_alpn(openssl_cli: str, pki: TestPKI, pki_files: PkiFiles) -> None:
    with s_client(openssl_cli, pki_files, "-alpn", "h2,http/1.1") as (peer, listener):
        config = server_config(pki.servers["ecdsa-p256"], alpn_protocols=(b"http/1.1",))
        with engine_server(listener, config) as session:
            assert session.outcome.result.alpn_protocol == b"http/1.1"
            exchange_with_s_client(session.channel(), peer)
    assert "ALPN protocol: http/1.1" in peer.stdout


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_server_verifies_a_client_certificate(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    files = pki_files[client_leaf]
    options = ("-cert", files.leaf, "-cert_chain", files.intermediates, "-key", files.key)
    with s_client(openssl_cli, pki_files, *options) as (peer, listener):
        config = server_config(
            pki.servers["ecdsa-p256"],
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.peer_certificates == client_leaf.credential().chain_der
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE[key_type]
            exchange_with_s_client(session.channel(), peer)


def test_engine_server_requires_a_client_certificate(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    with s_client(openssl_cli, pki_files) as (peer, listener):
        config = server_config(
            pki.servers["ecdsa-p256"],
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
        with engine_server(listener, config) as session:
            failed = session.outcome.failed
            assert failed is not None, "the handshake completed"
            assert failed.alert == AlertDescription.CERTIFICATE_REQUIRED
            assert not failed.sent_by_peer
            peer.wait_for(rf"SSL alert number {int(AlertDescription.CERTIFICATE_REQUIRED)}\b")


def test_engine_server_refuses_a_client_without_a_common_protocol(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    with s_client(openssl_cli, pki_files, "-alpn", "http/1.1") as (peer, listener):
        config = server_config(pki.servers["ecdsa-p256"], alpn_protocols=(b"h2",))
        with engine_server(listener, config) as session:
            failed = session.outcome.failed
            assert failed is not None, "the handshake completed"
            assert failed.alert == AlertDescription.NO_APPLICATION_PROTOCOL
            assert not failed.sent_by_peer
            peer.wait_for(rf"SSL alert number {int(AlertDescription.NO_APPLICATION_PROTOCOL)}\b")


def test_engine_server_hears_unknown_ca_from_a_client_that_distrusts_it(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    with (
        s_client(openssl_cli, pki_files) as (_peer, listener),
        engine_server(listener, server_config(pki.untrusted)) as session,
    ):
        failed = session.outcome.failed
        assert failed is not None, "the handshake completed"
        assert failed.alert == AlertDescription.UNKNOWN_CA
        assert failed.sent_by_peer


def test_engine_server_signature_schemes_are_what_s_client_asked_for(
    openssl_cli: str, pki: TestPKI, pki_files: PkiFiles
) -> None:
    # s_client restricted to SHA-384 PSS: the engine's RSA key must sign with it.
    with (
        s_client(openssl_cli, pki_files, "-sigalgs", "rsa_pss_rsae_sha384") as (peer, listener),
        engine_server(listener, server_config(pki.servers["rsa-2048"])) as session,
    ):
        result = session.outcome.result
        assert result.signature_scheme == SignatureScheme.RSA_PSS_RSAE_SHA384
        exchange_with_s_client(session.channel(), peer)
    assert "Peer signing digest: SHA384" in peer.stdout
