"""A credential is chosen by SNI: exact DNS SAN, then wildcard, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from handshaker.keystore import DirectoryKeyStore, KeyStore, MemoryKeyStore
from handshaker.tls import ServerConfig, SignatureScheme
from keystore_helpers import IssueLeaf, WriteCredential

ANY: tuple[int, ...] = ()
ECDSA = (SignatureScheme.ECDSA_SECP256R1_SHA256,)


def _build(kind: str, tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential) -> KeyStore:
    leaves = {
        "exact": issue_leaf("DNS:api.example.com"),
        "wildcard": issue_leaf("DNS:*.example.com", "DNS:example.org"),
        "fallback": issue_leaf("DNS:fallback.test"),
        "rsa": issue_leaf("DNS:rsa.example.net", key_type="rsa-2048"),
    }
    if kind == "memory":
        memory = MemoryKeyStore()
        for name, leaf in leaves.items():
            memory.add_credential(name, leaf.credential())
        memory.set_default("fallback")
        return memory
    for name, leaf in leaves.items():
        write(tmp_path, name, leaf)
    (tmp_path / "default").write_text("fallback\n")
    return DirectoryKeyStore(tmp_path)


@pytest.fixture(params=["memory", "directory"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> KeyStore:
    return _build(request.param, tmp_path, issue_leaf, write)


def test_an_exact_dns_san_wins_over_a_wildcard(store: KeyStore) -> None:
    assert store.select("api.example.com", ANY) is store.credential("exact")


def test_a_wildcard_covers_one_left_most_label(store: KeyStore) -> None:
    assert store.select("www.example.com", ANY) is store.credential("wildcard")


@pytest.mark.parametrize("server_name", ["example.com", "a.b.example.com"])
def test_a_wildcard_covers_neither_the_parent_nor_two_labels(
    store: KeyStore, server_name: str
) -> None:
    assert store.select(server_name, ANY) is store.credential("fallback")


def test_names_compare_case_insensitively_and_ignore_a_trailing_dot(store: KeyStore) -> None:
    assert store.select("API.Example.COM.", ANY) is store.credential("exact")


def test_no_match_and_no_server_name_get_the_default(store: KeyStore) -> None:
    assert store.select("unknown.test", ANY) is store.credential("fallback")
    assert store.select(None, ANY) is store.credential("fallback")


def test_a_credential_that_cannot_sign_with_the_offered_schemes_is_passed_over(
    store: KeyStore,
) -> None:
    assert store.select("rsa.example.net", ECDSA) is store.credential("fallback")
    assert store.select("rsa.example.net", ANY) is store.credential("rsa")


def test_without_a_default_an_unmatched_name_gets_none(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    write(tmp_path, "b", issue_leaf("DNS:b.example"))
    store = DirectoryKeyStore(tmp_path)

    assert store.select("c.example", ANY) is None
    assert store.select("b.example", ANY) is store.credential("b")


def test_select_fits_the_engine_credential_selector(store: KeyStore) -> None:
    config = ServerConfig(credential_selector=store.select)

    assert config.credential_selector is not None
    assert config.credential_selector("api.example.com", ECDSA) is store.credential("exact")


def test_both_backends_satisfy_the_keystore_protocol(store: KeyStore) -> None:
    assert isinstance(store, KeyStore)
