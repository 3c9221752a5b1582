"""The directory keystore notices changed files without a restart and survives half-written ones."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from handshaker.keystore import DirectoryKeyStore, KeyNotFound
from keystore_helpers import IssueLeaf, WriteCredential, replace_file


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_replaced_credential_is_served_without_a_restart(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    old, new = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    write(tmp_path, "a", old)
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    assert store.credential("a").certificate_chain == (old.certificate,)

    write(tmp_path, "a", new)

    assert store.credential("a").certificate_chain == (new.certificate,)
    assert store.select("a.example", ()) is store.credential("a")


def test_a_file_rewritten_in_place_is_noticed(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    old = issue_leaf("DNS:a.example", key_type="ecdsa-p256")
    new = issue_leaf("DNS:a.example", key_type="ecdsa-p384")
    folder = write(tmp_path, "a", old)
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    store.credential("a")

    (folder / "tls.key").write_bytes(new.key_pem())
    (folder / "tls.crt").write_bytes(new.chain_pem)

    assert store.credential("a").certificate_chain == (new.certificate,)


def test_a_half_written_certificate_keeps_the_last_good_credential(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    folder = write(tmp_path, "a", old)
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    store.credential("a")

    with caplog.at_level(logging.WARNING, logger="handshaker.keystore"):
        replace_file(folder / "tls.crt", new.chain_pem[: len(new.chain_pem) // 2])
        for _ in range(3):
            assert store.credential("a").certificate_chain == (old.certificate,)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per broken version, not one per access"
    assert "tls.crt" in warnings[0].getMessage()

    replace_file(folder / "tls.key", new.key_pem())
    replace_file(folder / "tls.crt", new.chain_pem)
    assert store.credential("a").certificate_chain == (new.certificate,)


def test_a_new_key_next_to_the_old_certificate_keeps_the_old_pair(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    folder = write(tmp_path, "a", old)
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    before = store.credential("a")

    with caplog.at_level(logging.WARNING, logger="handshaker.keystore"):
        replace_file(folder / "tls.key", new.key_pem())
        assert store.credential("a") is before

    assert "does not match" in caplog.text


def test_credentials_appear_and_disappear_with_their_folders(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    assert store.names() == ["a"]

    write(tmp_path, "b", issue_leaf("DNS:b.example"))
    assert store.names() == ["a", "b"]

    shutil.rmtree(tmp_path / "a")
    assert store.names() == ["b"]
    with pytest.raises(KeyNotFound):
        store.credential("a")


def test_files_are_checked_at_most_once_per_interval(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    clock = FakeClock()
    old, new = issue_leaf("DNS:a.example"), issue_leaf("DNS:a.example")
    write(tmp_path, "a", old)
    store = DirectoryKeyStore(tmp_path, reload_interval=2.0, clock=clock)
    store.credential("a")

    write(tmp_path, "a", new)
    clock.now += 1.0
    assert store.credential("a").certificate_chain == (old.certificate,)

    clock.now += 1.5
    assert store.credential("a").certificate_chain == (new.certificate,)


def test_a_credential_that_never_loaded_is_absent_and_reported_once(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write(tmp_path, "a", issue_leaf("DNS:a.example"))
    (folder / "tls.key").unlink()
    store = DirectoryKeyStore(tmp_path, reload_interval=0)

    with caplog.at_level(logging.WARNING, logger="handshaker.keystore"):
        assert store.names() == []
        assert store.names() == []

    assert len([r for r in caplog.records if "'a'" in r.getMessage()]) == 1
