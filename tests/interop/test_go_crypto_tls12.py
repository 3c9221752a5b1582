"""The engine in TLS 1.2 against Go's crypto/tls (tests/interop/gopeer -tls12), both roles.

A Go client offering only X25519 to an ECDSA P-256 server is refused with
handshake_failure, as RFC 8422 section 5.1 asks (test_openssl_cli_tls12 checks it).

Go pinned to MaxVersion TLS 1.2: every ECDHE suite Go has (the suite is chosen by
the engine's or Go's preference, the key type picks ECDSA or RSA), the curves
both support, client authentication each way, application data both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from handshaker.tls import ClientAuth, NamedGroup, ProtocolVersion
from handshaker.tls.codepoints import Tls12CipherSuite
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

TLS12 = ProtocolVersion.TLS1_2
_S = Tls12CipherSuite
# (the engine's single TLS 1.2 suite, the leaf's key type, Go's curve, the group)
CASES = [
    (_S.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa-p256", "X25519", NamedGroup.X25519),
    (_S.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ecdsa-p256", "P384", NamedGroup.SECP384R1),
    (_S.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ecdsa-p256", "P256",
     NamedGroup.SECP256R1),
    (_S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa-2048", "P521", NamedGroup.SECP521R1),
    (_S.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "rsa-2048", "X25519", NamedGroup.X25519),
    (_S.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "rsa-2048", "P256", NamedGroup.SECP256R1),
]  # fmt: skip
IDS = [f"{suite.name}-{curve}" for suite, _, curve, _ in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_engine_client_with_go_tls12_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, case: tuple[int, str, str, int]
) -> None:
    suite, key_type, curve, group = case
    files = pki_files[pki.servers[key_type]]
    flags = ["-tls12", "-cert", str(files.chain), "-key", str(files.key), "-curves", curve,
             "-alpn", "http/1.1"]  # fmt: skip
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, tls12_cipher_suites=(suite,), alpn_protocols=(b"http/1.1",))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert (result.version, result.cipher_suite, result.group) == (TLS12, suite, group)
            assert result.extended_master_secret
            assert result.alpn_protocol == b"http/1.1"
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["version"] == "TLS 1.2"
    assert negotiated["cipher_suite_id"] == suite
    assert negotiated["curve_id"] == group
    assert negotiated["server_name"] == "localhost"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_go_tls12_client_with_engine_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, case: tuple[int, str, str, int]
) -> None:
    suite, key_type, curve, group = case
    # RFC 8422 section 5.1: a client's supported_groups also bounds the curve of an
    # ECDSA server certificate, so P-256 must be among them for the ECDSA leaf.
    curves = curve if key_type.startswith("rsa") or curve == "P256" else f"{curve},P256"
    flags = ["-tls12", "-ca", str(pki_files.root_ca), "-servername", "localhost",
             "-curves", curves]  # fmt: skip
    message = f"go over TLS 1.2 with {suite:#06x}"
    with (
        listen_localhost() as listener,
        echo_client([str(go_peer)], listener, *flags, "-message", message) as peer,
    ):
        config = server_config(pki.servers[key_type], tls12_cipher_suites=(suite,))
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert (result.version, result.cipher_suite) == (TLS12, suite)
            assert result.group in (group, NamedGroup.SECP256R1)
            assert result.server_name == "localhost"
            negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["version"] == "TLS 1.2"
    assert negotiated["cipher_suite_id"] == suite
    assert negotiated["curve_id"] == result.group


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_engine_client_authenticates_to_go_tls12_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = [
        "-tls12", "-cert", str(files.chain), "-key", str(files.key),
        "-clientauth", "require", "-ca", str(pki_files.root_ca),
    ]  # fmt: skip
    with echo_server([str(go_peer)], *flags) as (peer, port):
        config = client_config(pki, credential=pki.clients[key_type].credential())
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.version == TLS12
            assert result.signature_scheme is not None
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["peer_certificates"] == [
        f"client {key_type}",
        "handshaker test intermediate",
    ]
    assert negotiated["verified_chains"] >= 1


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_go_tls12_client_authenticates_to_engine_server(
    go_peer: Path, pki: TestPKI, pki_files: PkiFiles, key_type: str
) -> None:
    client_leaf = pki.clients[key_type]
    files = pki_files[client_leaf]
    flags = [
        "-tls12", "-ca", str(pki_files.root_ca), "-servername", "localhost",
        "-cert", str(files.chain), "-key", str(files.key),
    ]  # fmt: skip
    message = "authenticated go client over TLS 1.2"
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
            assert result.version == TLS12
            assert result.peer_certificates == client_leaf.credential().chain_der
            assert result.peer_signature_scheme in (
                SCHEME_FOR_KEY_TYPE[key_type],
                0x0401,  # rsa_pkcs1_sha256, which Go may pick in TLS 1.2
            )
            exchange_with_echo_client(session, peer, message)
