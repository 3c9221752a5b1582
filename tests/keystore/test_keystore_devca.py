"""The development CA bootstraps a keystore that serves at once, and issues credentials."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from handshaker.keystore import (
    KEY_TYPES,
    DirectoryKeyStore,
    InvalidCredential,
    MemoryKeyStore,
    ensure_development_ca,
    key_type,
)
from handshaker.keystore.devca import CA_COMMON_NAME
from keystore_helpers import IssueLeaf


def _verify(store: DirectoryKeyStore, name: str, subject: x509.verification.Subject) -> None:
    chain = store.credential(name).certificate_chain
    verifier = (
        PolicyBuilder()
        .store(Store(list(store.trust_bundle("default"))))
        .build_server_verifier(subject)
    )
    verifier.verify(chain[0], list(chain[1:]))


def test_first_use_creates_a_ca_and_a_localhost_credential(tmp_path: Path) -> None:
    ca_path = ensure_development_ca(tmp_path / "keystore")

    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == CA_COMMON_NAME
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3650) <= lifetime <= datetime.timedelta(days=3660)

    store = DirectoryKeyStore(tmp_path / "keystore")
    assert store.names() == ["localhost"]
    assert store.default_name() == "localhost"
    assert store.trust_bundle("default") == (ca,)
    _verify(store, "localhost", x509.DNSName("localhost"))
    _verify(store, "localhost", x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_a_second_use_changes_nothing(tmp_path: Path) -> None:
    ca_path = ensure_development_ca(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    assert ensure_development_ca(tmp_path) == ca_path

    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_keystore_with_credentials_is_left_alone(tmp_path: Path, issue_leaf: IssueLeaf) -> None:
    leaf = issue_leaf("DNS:mine.example")
    DirectoryKeyStore(tmp_path).import_credential("mine", leaf.chain_pem, leaf.key_pem())
    before = sorted(p.name for p in tmp_path.rglob("*"))

    ca_path = ensure_development_ca(tmp_path)

    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not ca_path.exists()
    assert DirectoryKeyStore(tmp_path).names() == ["mine"]


@pytest.mark.parametrize("requested", KEY_TYPES)
def test_generate_issues_each_key_type_from_the_development_ca(
    tmp_path: Path, requested: str
) -> None:
    store = DirectoryKeyStore(tmp_path)

    credential = store.generate("svc", ["DNS:svc.example", "IP:10.1.2.3"], requested)

    assert key_type(credential.certificate_chain[0]) == requested
    assert store.credential("svc").certificate_chain == credential.certificate_chain
    _verify(store, "svc", x509.DNSName("svc.example"))
    _verify(store, "svc", x509.IPAddress(ipaddress.ip_address("10.1.2.3")))


def test_generate_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    first = store.generate("svc", ["DNS:svc.example"])

    with pytest.raises(FileExistsError):
        store.generate("svc", ["DNS:svc.example"])
    second = store.generate("svc", ["DNS:svc.example"], replace=True)

    assert second.certificate_chain != first.certificate_chain
    assert store.credential("svc").certificate_chain == second.certificate_chain


@pytest.mark.parametrize("san", ["DNS:bad..name", "IP:300.1.1.1", "URI:no-scheme", "DNS:"])
def test_generate_refuses_a_malformed_san(tmp_path: Path, san: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        DirectoryKeyStore(tmp_path).generate("svc", [san])
    assert not (tmp_path / "svc").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "trust", "dev-ca"])
def test_names_that_are_not_plain_folder_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid name"):
        DirectoryKeyStore(tmp_path / "ks").generate(name, ["DNS:a.example"])
    assert not (tmp_path / "escape").exists()


def test_importing_a_key_that_does_not_match_the_leaf_is_refused(
    tmp_path: Path, issue_leaf: IssueLeaf
) -> None:
    leaf, other = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    store = DirectoryKeyStore(tmp_path)

    with pytest.raises(InvalidCredential, match="does not match"):
        store.import_credential("a", leaf.chain_pem, other.key_pem())
    with pytest.raises(InvalidCredential, match="does not match"):
        MemoryKeyStore().import_credential("a", leaf.chain_pem, other.key_pem())

    assert not (tmp_path / "a").exists()


def test_an_imported_credential_round_trips(tmp_path: Path, issue_leaf: IssueLeaf) -> None:
    leaf = issue_leaf("DNS:a.example", key_type="ed25519")
    DirectoryKeyStore(tmp_path).import_credential(
        "a", leaf.chain_pem, leaf.key_pem(), ca_pem=leaf.ca.public_bytes(serialization.Encoding.PEM)
    )

    store = DirectoryKeyStore(tmp_path)

    assert store.credential("a").certificate_chain == (leaf.certificate,)
    assert store.trust_bundle("a") == (leaf.ca,)
    assert store.default_name() == "a", "the first credential stored becomes the default"


@pytest.fixture
def permissive_umask() -> object:
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_keys_are_written_0600_and_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "keystore"
    ensure_development_ca(root)
    DirectoryKeyStore(root).generate("svc", ["DNS:svc.example"])

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    folders = [root, root / "dev-ca", root / "localhost", root / "svc"]
    keys = [root / "dev-ca" / "ca.key", root / "localhost" / "tls.key", root / "svc" / "tls.key"]
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    assert {str(p): mode(p) for p in keys} == {str(p): 0o600 for p in keys}
    leftovers = [p.name for p in root.rglob(".*")]
    assert leftovers == [], "no temporary files are left behind"
