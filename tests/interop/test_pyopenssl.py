"""The engine against OpenSSL 4 through pyOpenSSL: the hybrid post-quantum groups
X25519MLKEM768, SecP256r1MLKEM768 and SecP384r1MLKEM1024, and the pure ML-KEM groups."""

from __future__ import annotations

import pytest
from handshaker.tls import ClientAuth, NamedGroup
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

HYBRID = "X25519MLKEM768"
# OpenSSL's names for the hybrids (draft-ietf-tls-ecdhe-mlkem), as set and as reported.
HYBRIDS = {
    NamedGroup.X25519MLKEM768: "X25519MLKEM768",
    NamedGroup.SECP256R1MLKEM768: "SecP256r1MLKEM768",
    NamedGroup.SECP384R1MLKEM1024: "SecP384r1MLKEM1024",
}


def _name(group: int) -> str:
    return HYBRIDS[group]


@pytest.mark.parametrize("group", tuple(HYBRIDS), ids=_name)
def test_engine_client_shares_each_hybrid_with_pyopenssl_server(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-groups", HYBRIDS[group]]
    with echo_server(pyopenssl_peer, *flags) as (peer, port):
        config = client_config(pki, key_share_groups=(group,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert not result.hello_retry
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve"] == HYBRIDS[group]


@pytest.mark.parametrize("group", tuple(HYBRIDS), ids=_name)
def test_engine_client_retries_hello_for_each_hybrid_of_pyopenssl_server(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    # The engine's default first ClientHello shares X25519MLKEM768 and X25519 only.
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-groups", HYBRIDS[group]]
    with echo_server(pyopenssl_peer, *flags) as (peer, port):
        config = client_config(pki, key_share_groups=(NamedGroup.X25519,))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == group
            assert result.hello_retry
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve"] == HYBRIDS[group]


@pytest.mark.parametrize("group", tuple(HYBRIDS), ids=_name)
def test_engine_server_takes_each_hybrid_from_pyopenssl_client(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost", "-groups", HYBRIDS[group]]
    message = f"hello over {HYBRIDS[group]}"
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
        engine_server(listener, server_config(pki.servers["ecdsa-p256"])) as session,
    ):
        result = session.outcome.result
        assert result.group == group
        assert not result.hello_retry
        negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["curve"] == HYBRIDS[group]


@pytest.mark.parametrize(
    ("key_share_groups", "hello_retry"),
    [
        ((NamedGroup.X25519MLKEM768, NamedGroup.X25519), False),
        # Only a classical share in the first ClientHello: the server asks for the hybrid one.
        ((NamedGroup.X25519,), True),
    ],
    ids=["hybrid-share", "retry-for-hybrid"],
)
def test_engine_client_negotiates_x25519mlkem768_with_pyopenssl_server(
    pyopenssl_peer: list[str],
    pki: TestPKI,
    pki_files: PkiFiles,
    key_share_groups: tuple[int, ...],
    hello_retry: bool,
) -> None:
    leaf = pki.servers["ecdsa-p384"]
    files = pki_files[leaf]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-groups", HYBRID, "-alpn", "h2"]
    with echo_server(pyopenssl_peer, *flags) as (peer, port):
        config = client_config(pki, key_share_groups=key_share_groups, alpn_protocols=(b"h2",))
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == NamedGroup.X25519MLKEM768
            assert result.hello_retry == hello_retry
            assert result.alpn_protocol == b"h2"
            assert result.peer_signature_scheme == SCHEME_FOR_KEY_TYPE["ecdsa-p384"]
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve"] == HYBRID
    assert negotiated["version"] == "TLSv1.3"
    assert negotiated["alpn"] == "h2"


def test_engine_server_negotiates_x25519mlkem768_with_pyopenssl_client(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost", "-groups", HYBRID]
    message = "hello from pyopenssl"
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
        engine_server(listener, server_config(pki.servers["ed448"])) as session,
    ):
        result = session.outcome.result
        assert result.group == NamedGroup.X25519MLKEM768
        assert not result.hello_retry
        assert result.signature_scheme == SCHEME_FOR_KEY_TYPE["ed448"]
        negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["curve"] == HYBRID
    assert negotiated["peer_certificates"] == ["server ed448", "handshaker test intermediate"]


# draft-ietf-tls-mlkem: opt-in in the engine, so both sides name them.
PURE_MLKEM = {NamedGroup.MLKEM768: "MLKEM768", NamedGroup.MLKEM1024: "MLKEM1024"}


@pytest.mark.parametrize("group", tuple(PURE_MLKEM), ids=PURE_MLKEM.get)
def test_engine_client_negotiates_pure_mlkem_with_pyopenssl_server(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = ["-cert", str(files.chain), "-key", str(files.key), "-groups", PURE_MLKEM[group]]
    with echo_server(pyopenssl_peer, *flags) as (peer, port):
        config = client_config(pki, supported_groups=(group,), key_share_groups=(group,))
        with engine_client(port, config) as session:
            assert session.outcome.result.group == group
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["curve"] == PURE_MLKEM[group]


@pytest.mark.parametrize("group", tuple(PURE_MLKEM), ids=PURE_MLKEM.get)
def test_engine_server_negotiates_pure_mlkem_with_pyopenssl_client(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles, group: int
) -> None:
    flags = ["-ca", str(pki_files.root_ca), "-servername", "localhost"]
    message = f"hello over {PURE_MLKEM[group]}"
    with (
        listen_localhost() as listener,
        echo_client(
            pyopenssl_peer, listener, *flags, "-groups", PURE_MLKEM[group], "-message", message
        ) as peer,
    ):
        config = server_config(pki.servers["ecdsa-p256"], supported_groups=(group,))
        with engine_server(listener, config) as session:
            assert session.outcome.result.group == group
            negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["curve"] == PURE_MLKEM[group]


def test_engine_server_retries_hello_for_x25519mlkem768(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    # The client's first share is X25519; the engine, preferring its own order,
    # asks for the hybrid group it also offered.
    flags = [
        "-ca", str(pki_files.root_ca), "-servername", "localhost",
        "-groups", f"X25519:{HYBRID}",
    ]  # fmt: skip
    message = "retried into the hybrid group"
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
    ):
        config = server_config(pki.servers["ecdsa-p256"], prefer_own_group_order=True)
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.hello_retry
            assert result.group == NamedGroup.X25519MLKEM768
            negotiated = exchange_with_echo_client(session, peer, message)
    assert negotiated["curve"] == HYBRID


def test_pyopenssl_client_authenticates_to_engine_server_over_x25519mlkem768(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    client_leaf = pki.clients["ecdsa-p256"]
    files = pki_files[client_leaf]
    flags = [
        "-ca", str(pki_files.root_ca), "-servername", "localhost", "-groups", HYBRID,
        "-cert", str(files.chain), "-key", str(files.key),
    ]  # fmt: skip
    message = "mutual and post-quantum"
    with (
        listen_localhost() as listener,
        echo_client(pyopenssl_peer, listener, *flags, "-message", message) as peer,
    ):
        config = server_config(
            pki.servers["rsa-pss"],
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
        with engine_server(listener, config) as session:
            result = session.outcome.result
            assert result.group == NamedGroup.X25519MLKEM768
            assert result.peer_certificates == client_leaf.credential().chain_der
            assert result.signature_scheme == SCHEME_FOR_KEY_TYPE["rsa-pss"]
            exchange_with_echo_client(session, peer, message)


def test_engine_client_authenticates_to_pyopenssl_server(
    pyopenssl_peer: list[str], pki: TestPKI, pki_files: PkiFiles
) -> None:
    files = pki_files[pki.servers["ecdsa-p256"]]
    flags = [
        "-cert", str(files.chain), "-key", str(files.key), "-groups", HYBRID,
        "-clientauth", "require", "-ca", str(pki_files.root_ca),
    ]  # fmt: skip
    with echo_server(pyopenssl_peer, *flags) as (peer, port):
        config = client_config(pki, credential=pki.clients["rsa-2048"].credential())
        with engine_client(port, config) as session:
            result = session.outcome.result
            assert result.group == NamedGroup.X25519MLKEM768
            assert result.signature_scheme == SCHEME_FOR_KEY_TYPE["rsa-2048"]
            negotiated = exchange_with_echo_server(session, peer)
    assert negotiated["peer_certificates"] == ["client rsa-2048", "handshaker test intermediate"]
