"""No repr, error message or log line of the keystore carries private key material."""

from __future__ import annotations

import base64
import logging
import traceback
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from handshaker.keystore import (
    DirectoryKeyStore,
    InvalidCredential,
    MemoryKeyStore,
    describe,
    load_credential,
)
from keystore_helpers import IssueLeaf, Leaf, WriteCredential, replace_file


def _secret_fragments(leaf: Leaf) -> list[str]:
    """Strings that would betray the key: its PEM body lines and its private numbers."""
    fragments: list[str] = []
    for traditional in (False, True):
        pem = leaf.key_pem(traditional).decode()
        fragments += [line for line in pem.splitlines() if line and not line.startswith("-----")]
    key = leaf.key
    raw: list[int] = []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = [key.private_numbers().private_value]
    elif isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        raw = [numbers.d, numbers.p, numbers.q]
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        private = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        fragments += [private.hex(), base64.b64encode(private).decode()]
    for number in raw:
        fragments += [str(number), f"{number:x}"]
    # Long fragments only: a short one could appear by chance in unrelated text.
    return [f[:32] for f in fragments if len(f) >= 16]


def _assert_clean(text: str, leaf: Leaf) -> None:
    leaked = [f for f in _secret_fragments(leaf) if f in text]
    assert not leaked, f"key material in output: {leaked[:1]}"


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "ed25519"])
def test_reprs_of_credentials_and_stores_show_no_key(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential, key_type: str
) -> None:
    leaf = issue_leaf("DNS:a.example", key_type=key_type)
    write(tmp_path, "a", leaf)
    directory = DirectoryKeyStore(tmp_path)
    memory = MemoryKeyStore()
    memory.import_credential("a", leaf.chain_pem, leaf.key_pem())
    credential = directory.credential("a")

    texts = [
        repr(credential),
        str(credential),
        repr(credential.signer),
        repr(directory),
        repr(memory),
        repr(memory.credential("a")),
        repr(describe("a", credential)),
    ]

    _assert_clean("\n".join(texts), leaf)
    assert "PrivateKeySigner" in repr(credential), "the repr still says what the key is"


def test_errors_about_bad_keys_quote_no_key_bytes(issue_leaf: IssueLeaf) -> None:
    leaf, other = issue_leaf("DNS:a.example"), issue_leaf("DNS:b.example")
    truncated = leaf.key_pem()[:-40]
    cases = [
        (leaf.chain_pem, other.key_pem()),  # a real key for the wrong certificate
        (leaf.chain_pem, truncated),  # a half-written key file
        (leaf.key_pem(), leaf.key_pem()),  # a key where the chain belongs
    ]
    for chain_pem, key_pem in cases:
        with pytest.raises(InvalidCredential) as raised:
            load_credential(chain_pem, key_pem)
        text = "".join(traceback.format_exception(raised.value))
        _assert_clean(text, leaf)
        _assert_clean(text, other)


def test_reload_warnings_quote_no_key_bytes(
    tmp_path: Path,
    issue_leaf: IssueLeaf,
    write: WriteCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaf, other = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    folder = write(tmp_path, "a", leaf)
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    store.credential("a")

    with caplog.at_level(logging.DEBUG):
        replace_file(folder / "tls.key", other.key_pem())  # mismatch
        store.credential("a")
        replace_file(folder / "tls.key", other.key_pem()[:-30])  # half-written
        store.credential("a")
        replace_file(folder / "tls.crt", leaf.key_pem())  # key bytes where the chain belongs
        store.credential("a")

    assert len(caplog.records) >= 3
    log_text = "\n".join(
        r.getMessage() + ("".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in caplog.records
    )
    _assert_clean(log_text, leaf)
    _assert_clean(log_text, other)


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "ed25519"])
def test_the_leak_detector_finds_a_leaked_key(issue_leaf: IssueLeaf, key_type: str) -> None:
    leaf = issue_leaf(key_type=key_type)
    pem_line = leaf.key_pem().decode().splitlines()[1]

    with pytest.raises(AssertionError, match="key material"):
        _assert_clean(f"oops: {pem_line}", leaf)
