"""The directory keystore reads cert-manager's Secret layout and its trust bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from handshaker.keystore import (
    DirectoryKeyStore,
    InvalidCredential,
    KeyNotFound,
    KeystoreUnavailable,
    MemoryKeyStore,
    load_private_key,
)
from handshaker.tls import SignatureScheme
from keystore_helpers import IssueLeaf, WriteCredential, replace_file

PEM = serialization.Encoding.PEM


@pytest.mark.parametrize(
    "case",
    [
        ("ecdsa-p256", False, SignatureScheme.ECDSA_SECP256R1_SHA256),
        ("ecdsa-p256", True, SignatureScheme.ECDSA_SECP256R1_SHA256),
        ("ecdsa-p384", True, SignatureScheme.ECDSA_SECP384R1_SHA384),
        ("ecdsa-p521", False, SignatureScheme.ECDSA_SECP521R1_SHA512),
        ("rsa-2048", False, SignatureScheme.RSA_PSS_RSAE_SHA256),
        ("rsa-2048", True, SignatureScheme.RSA_PSS_RSAE_SHA256),
        ("ed25519", False, SignatureScheme.ED25519),
        ("ed448", False, SignatureScheme.ED448),
    ],
)
def test_a_credential_folder_loads_each_key_type_and_format(
    tmp_path: Path,
    issue_leaf: IssueLeaf,
    write: WriteCredential,
    case: tuple[str, bool, int],
) -> None:
    key_type, traditional, scheme = case
    leaf = issue_leaf("DNS:svc.example", key_type=key_type)
    write(tmp_path, "svc", leaf, traditional=traditional)

    credential = DirectoryKeyStore(tmp_path).credential("svc")

    assert credential.certificate_chain == (leaf.certificate,)
    assert scheme in credential.signer.signature_schemes


def test_traditional_key_files_really_are_traditional(issue_leaf: IssueLeaf) -> None:
    leaf = issue_leaf(key_type="rsa-2048")
    assert leaf.key_pem(traditional=True).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert load_private_key(leaf.key_pem(traditional=True)).public_key().public_numbers() == (
        leaf.key.public_key().public_numbers()
    )


def test_the_chain_keeps_its_order_leaf_first(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    leaf = issue_leaf("DNS:a.example")
    write(tmp_path, "a", leaf, extra_chain=[leaf.ca])

    chain = DirectoryKeyStore(tmp_path).credential("a").certificate_chain

    assert chain == (leaf.certificate, leaf.ca)


def test_trust_bundles_come_from_trust_dir_and_from_ca_crt(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    leaf = issue_leaf("DNS:a.example")
    write(tmp_path, "a", leaf, ca=True)
    other = issue_leaf("DNS:b.example")
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "partners.pem").write_bytes(
        other.certificate.public_bytes(PEM) + leaf.ca.public_bytes(PEM)
    )

    store = DirectoryKeyStore(tmp_path)

    assert store.trust_bundle("a") == (leaf.ca,)
    assert store.trust_bundle("partners") == (other.certificate, leaf.ca)
    # "system", the host's CA store, is in every keystore (system_bundle.py).
    assert store.trust_bundle_names() == ["a", "partners", "system"]
    assert store.names() == ["a"]


def test_trust_dir_wins_over_a_folder_ca_crt_of_the_same_name(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    leaf = issue_leaf("DNS:a.example")
    write(tmp_path, "a", leaf, ca=True)
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "a.pem").write_bytes(leaf.certificate.public_bytes(PEM))

    assert DirectoryKeyStore(tmp_path).trust_bundle("a") == (leaf.certificate,)


def test_hidden_entries_and_kubernetes_data_links_are_not_credentials(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    leaf = issue_leaf("DNS:a.example")
    # A Secret volume: the files are links through ..data into a timestamped folder.
    write(tmp_path / "a", "..2026_01_01_00_00_00.000000001", leaf)
    (tmp_path / "a" / "..data").symlink_to("..2026_01_01_00_00_00.000000001")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "a" / name).symlink_to(f"..data/{name}")
    write(tmp_path, ".staging", issue_leaf("DNS:b.example"))

    store = DirectoryKeyStore(tmp_path)

    assert store.names() == ["a"]
    assert store.credential("a").certificate_chain == (leaf.certificate,)


def test_the_default_file_names_the_default_credential(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    write(tmp_path, "b", issue_leaf("DNS:b.example"))
    store = DirectoryKeyStore(tmp_path)
    assert store.default_name() is None

    (tmp_path / "default").write_text("b\n")
    store.reload()

    assert store.default_name() == "b"


def test_a_lone_credential_is_the_default(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "only", issue_leaf("DNS:a.example"))

    assert DirectoryKeyStore(tmp_path).default_name() == "only"


def test_unknown_names_raise_key_not_found(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path)

    with pytest.raises(KeyNotFound):
        store.credential("nope")
    with pytest.raises(KeyNotFound):
        store.trust_bundle("nope")


def test_a_missing_keystore_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KeystoreUnavailable):
        DirectoryKeyStore(tmp_path / "absent").names()


def test_a_broken_credential_is_skipped_and_the_rest_load(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "good", issue_leaf("DNS:a.example"))
    broken = write(tmp_path, "broken", issue_leaf("DNS:b.example"))
    replace_file(broken / "tls.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n")

    store = DirectoryKeyStore(tmp_path)

    assert store.names() == ["good"]


def test_an_encrypted_key_is_refused_with_a_clear_reason(issue_leaf: IssueLeaf) -> None:
    leaf = issue_leaf()
    encrypted = leaf.key.private_bytes(
        PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )

    with pytest.raises(InvalidCredential, match="encrypted"):
        MemoryKeyStore().import_credential("x", leaf.chain_pem, encrypted)


def test_a_chain_without_certificates_is_refused(issue_leaf: IssueLeaf) -> None:
    leaf = issue_leaf()

    with pytest.raises(InvalidCredential, match="no PEM certificate"):
        MemoryKeyStore().import_credential("x", b"", leaf.key_pem())
