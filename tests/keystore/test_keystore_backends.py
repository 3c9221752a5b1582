"""Keystore backends by URI: a plugin found through the `handshaker.keystores` entry-point group.

The plugin here is a real distribution on sys.path (a dist-info folder with its
entry_points.txt), found by importlib.metadata as an installed package would be,
both in this process and by `handshaker serve` in a subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handshaker.keystore import KeyStore, MemoryKeyStore
from handshaker.keystore.backends import (
    ENTRY_POINT_GROUP,
    UnknownKeystore,
    keystore_scheme,
    open_keystore,
)

HANDSHAKER = Path(sys.executable).parent / "handshaker"

# The README's plugin, with the secret store replaced by a development CA.
PLUGIN = '''
"""A keystore plugin for the tests: the README's example."""

from handshaker.keystore import MemoryKeyStore, devca, load_credential, parse_policy
from handshaker.keystore.pem import certificates_pem, private_key_pem

CALLS = []


def fetch_from_vault(uri):
    ca, ca_key = devca.create_ca()
    key = devca.generate_private_key("ecdsa-p256")
    leaf = devca.issue(ca, ca_key, key, [devca.parse_san("DNS:vault.test")])
    return certificates_pem([leaf]), private_key_pem(key)


def open_keystore(uri):
    CALLS.append(uri)
    chain_pem, key_pem = fetch_from_vault(uri)
    policy = parse_policy('version = 1\\n[credentials."web"]\\nserver = ["local"]\\n')
    credentials = {"web": load_credential(chain_pem, key_pem)}
    return MemoryKeyStore(credentials, default="web", policy=policy)
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    (tmp_path / "handshaker_vault_test.py").write_text(PLUGIN)
    info = tmp_path / "handshaker_vault_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: handshaker-vault-test\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nvaulttest = handshaker_vault_test:open_keystore\n"
    )
    return tmp_path


def test_a_plugin_registered_by_entry_point_opens_its_uri(
    plugin_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(plugin_path))
    store = open_keystore("vaulttest://kv/tls")
    assert isinstance(store, MemoryKeyStore)
    assert isinstance(store, KeyStore)
    assert store.names() == ["web"]
    import handshaker_vault_test  # type: ignore[import-not-found]

    assert handshaker_vault_test.CALLS == ["vaulttest://kv/tls"]


def test_without_the_plugin_the_scheme_is_unknown() -> None:
    with pytest.raises(UnknownKeystore, match=r"no keystore backend for vaulttest: \(known: dir,"):
        open_keystore("vaulttest://kv/tls")


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [("dir:/x", "dir"), ("/x/y", "dir"), ("relative/dir", "dir"), ("memory:", "memory"),
     ("Vault://a", "vault"), ("C:/windows/path", "dir")],
)
def test_schemes(uri: str, scheme: str) -> None:
    assert keystore_scheme(uri) == scheme


def _serve(uri: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(HANDSHAKER), "serve", "--listen", f"127.0.0.1:{port}", "--keystore", uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate()
                raise AssertionError(err.decode()) from None
            time.sleep(0.05)


@pytest.mark.parametrize("uri", ["memory:", "vaulttest://kv/tls"])
def test_serve_takes_a_keystore_uri(uri: str, plugin_path: Path) -> None:
    import handshaker_client as hc

    env = {**os.environ, "PYTHONPATH": f"{plugin_path}:{os.environ.get('PYTHONPATH', '')}"}
    process, address = _serve(uri, env)
    try:
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The keystore's credential serves a handshake for a `local` caller.
        name = "localhost" if uri == "memory:" else "web"
        with hc.HandshakerClient(address) as client:
            step = client.start_server(hc.server_options(credential=name))
            assert step.session_id
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    # stderr is not a terminal here: only JSON lines, the keystore named in "keystore ready".
    assert f'"message": "keystore ready", "keystore": "{uri}"'.encode() in err
    assert b"Traceback" not in err


def test_serve_refuses_an_unknown_keystore_in_one_line() -> None:
    result = subprocess.run(
        [str(HANDSHAKER), "serve", "--listen", "127.0.0.1:0", "--keystore", "nosuch://x"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert "handshaker serve: --keystore nosuch://x: no keystore backend for nosuch:" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
