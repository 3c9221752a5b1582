"""`handshaker keys ...` end to end, through the installed console script."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from keystore_helpers import IssueLeaf

HANDSHAKER = Path(sys.executable).parent / "handshaker"

pytestmark = pytest.mark.skipif(
    not HANDSHAKER.exists(),
    reason=f"the console script {HANDSHAKER} is not installed (pip install -e '.[test]')",
)


def run(
    *args: str, keystore: Path | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(HANDSHAKER), *args]
    if keystore is not None:
        command += ["--keystore", str(keystore)]
    environment = {k: v for k, v in os.environ.items() if k != "HANDSHAKER_KEYSTORE"}
    environment.update(env or {})
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=60, check=False
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_generate_list_and_ca(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"

    generated = run(
        "keys", "generate", "web", "--san", "DNS:web.example", "--san", "IP:10.0.0.7",
        "--key-type", "ecdsa-p384", keystore=keystore,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert "web" in generated.stdout

    listed = run("keys", "list", keystore=keystore)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["NAME", "KEY"]
    assert row.split()[:4] == ["web", "(default)", "ecdsa-p384", row.split()[3]]
    assert "DNS:web.example,IP:10.0.0.7" in row

    rows = json.loads(run("keys", "list", "--json", keystore=keystore).stdout)
    assert [(r["name"], r["default"], r["key_type"]) for r in rows] == [("web", True, "ecdsa-p384")]
    assert rows[0]["sans"] == ["DNS:web.example", "IP:10.0.0.7"]
    assert rows[0]["not_after"] in row

    ca_output = run("keys", "ca", keystore=keystore)
    assert ca_output.returncode == 0, ca_output.stderr
    ca = x509.load_pem_x509_certificate(ca_output.stdout.encode())
    leaf = x509.load_pem_x509_certificate((keystore / "web" / "tls.crt").read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("web.example"))
    verifier.verify(leaf, [])
    assert stat.S_IMODE((keystore / "web" / "tls.key").stat().st_mode) == 0o600


def test_import_stores_a_matching_pair_and_refuses_a_mismatched_one(
    tmp_path: Path, issue_leaf: IssueLeaf
) -> None:
    keystore = tmp_path / "keystore"
    leaf, other = issue_leaf("DNS:imported.example"), issue_leaf("DNS:other.example")
    (tmp_path / "chain.pem").write_bytes(leaf.chain_pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem(traditional=True))
    (tmp_path / "other.pem").write_bytes(other.key_pem())

    mismatched = run(
        "keys", "import", "imp", "--cert", str(tmp_path / "chain.pem"),
        "--key", str(tmp_path / "other.pem"), keystore=keystore,
    )  # fmt: skip
    assert_clean_failure(mismatched, "does not match")
    assert not (keystore / "imp").exists()

    imported = run(
        "keys", "import", "imp", "--cert", str(tmp_path / "chain.pem"),
        "--key", str(tmp_path / "key.pem"), keystore=keystore,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    rows = json.loads(run("keys", "list", "--json", keystore=keystore).stdout)
    assert [(r["name"], r["sans"]) for r in rows] == [("imp", ["DNS:imported.example"])]
    assert stat.S_IMODE((keystore / "imp" / "tls.key").stat().st_mode) == 0o600

    again = run(
        "keys", "import", "imp", "--cert", str(tmp_path / "chain.pem"),
        "--key", str(tmp_path / "key.pem"), keystore=keystore,
    )  # fmt: skip
    assert_clean_failure(again, "already exists")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "generate", "x", "--san", "IP:not-an-ip"], "not an IP address"),
        (["keys", "generate", "../x", "--san", "DNS:a.example"], "invalid name"),
        (["keys", "import", "x", "--cert", "/nonexistent.pem", "--key", "/k.pem"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    assert_clean_failure(run(*args, keystore=tmp_path / "keystore"), message)


def test_the_keystore_comes_from_the_environment(tmp_path: Path) -> None:
    from_env = tmp_path / "from-env"
    generated = run(
        "keys", "generate", "a", "--san", "DNS:a.example", keystore=None,
        env={"HANDSHAKER_KEYSTORE": str(from_env)},
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert (from_env / "a" / "tls.crt").exists()

    listed = run("keys", "list", keystore=None, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert listed.returncode == 0
    assert str(tmp_path / "xdg" / "handshaker" / "keystore") in listed.stderr


# --- the policy: --allow, keys allow|deny|policy -------------------------------------------


def ok(keystore: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(*args, keystore=keystore)
    assert result.returncode == 0, result.stderr
    return result


def _policy(keystore: Path) -> dict[str, object]:
    import tomllib

    return tomllib.loads((keystore / "policy.toml").read_text())


def test_generate_with_allow_grants_the_new_credential_in_both_tls_roles(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    result = run(
        "keys", "generate", "web", "--san", "DNS:web.test",
        "--allow", "local", "--allow", "spiffe://prod/web", keystore=keystore,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _policy(keystore)["credentials"] == {
        "web": {"server": ["local", "spiffe://prod/web"], "client": ["local", "spiffe://prod/web"]}
    }


def test_generate_without_allow_grants_nothing(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    ok(keystore, "keys", "generate", "web", "--san", "DNS:web.test")
    assert not (keystore / "policy.toml").exists()


def test_import_with_allow_grants_the_imported_credential(
    tmp_path: Path, issue_leaf: IssueLeaf
) -> None:
    keystore = tmp_path / "keystore"
    leaf = issue_leaf("DNS:imported.example")
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem())
    result = run(
        "keys", "import", "imported", "--cert", str(cert), "--key", str(key),
        "--allow", "unix:uid=1000", keystore=keystore,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _policy(keystore)["credentials"] == {
        "imported": {"server": ["unix:uid=1000"], "client": ["unix:uid=1000"]}
    }


def test_allow_and_deny_edit_the_policy_file(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    ok(keystore, "keys", "generate", "web", "--san", "DNS:web.test")

    allowed = run("keys", "allow", "web", "dns:batch.internal", "--role", "client", "--role",
                  "sign", keystore=keystore)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert "dns:batch.internal" in allowed.stdout
    ok(keystore, "keys", "allow", "web", "local")
    assert _policy(keystore)["credentials"] == {
        "web": {
            "server": ["local"],
            "client": ["dns:batch.internal", "local"],
            "sign": ["dns:batch.internal"],
        }
    }

    ok(keystore, "keys", "deny", "web", "local", "--role", "server")
    ok(keystore, "keys", "deny", "web", "dns:batch.internal")
    assert _policy(keystore)["credentials"] == {"web": {"client": ["local"]}}

    ok(keystore, "keys", "allow", "dev-ca", "local", "--trust-bundle")
    assert _policy(keystore)["trust_bundles"] == {"dev-ca": ["local"]}
    ok(keystore, "keys", "deny", "dev-ca", "local", "--trust-bundle")
    assert _policy(keystore)["trust_bundles"] == {"dev-ca": []}

    printed = run("keys", "policy", keystore=keystore)
    assert printed.returncode == 0
    assert printed.stdout == (keystore / "policy.toml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("allow", "web", "x509:alice"), "'x509:alice' is not a principal"),
        (("allow", "web", "dns:spiffe://test/a"), "is not a DNS name"),
        (("allow", "nope", "local"), "no credential named 'nope'"),
        (("allow", "nope", "local", "--trust-bundle"), "no trust bundle named 'nope'"),
        (("allow", "dev-ca", "local", "--trust-bundle", "--role", "server"), "--role is for"),
    ],
)
def test_a_bad_allow_is_one_line_and_changes_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    keystore = tmp_path / "keystore"
    ok(keystore, "keys", "generate", "web", "--san", "DNS:web.test", "--allow", "local")
    before = (keystore / "policy.toml").read_text()
    assert_clean_failure(run("keys", *args, keystore=keystore), message)
    assert (keystore / "policy.toml").read_text() == before


def test_a_broken_policy_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    ok(keystore, "keys", "generate", "web", "--san", "DNS:web.test")
    (keystore / "policy.toml").write_text("version = 1\nextra = true\n")
    refused = run("keys", "allow", "web", "local", keystore=keystore)
    assert_clean_failure(refused, "unknown key 'extra'")
    assert_clean_failure(
        run("keys", "generate", "api", "--san", "DNS:api.test", "--allow", "local",
            keystore=keystore),
        "unknown key 'extra'",
    )  # fmt: skip
    assert not (keystore / "api").exists()  # refused before the credential was stored
    assert (keystore / "policy.toml").read_text() == "version = 1\nextra = true\n"
