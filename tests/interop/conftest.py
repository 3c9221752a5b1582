"""Fixtures for the interop tests: the peers' programs, found or built once per session."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GO_PEER_SOURCE = Path(__file__).parent / "gopeer"
PYOPENSSL_PEER = Path(__file__).parent / "pyopenssl_peer.py"
# The Go peer reads ConnectionState.HelloRetryRequest and names the SecP256r1MLKEM768 and
# SecP384r1MLKEM1024 curves, all new in Go 1.26.
GO_MINIMUM = (1, 26)


@pytest.fixture(scope="session")
def openssl_cli() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("the openssl command is missing: apt-get install openssl")
    version = subprocess.run([path, "version"], capture_output=True, text=True, check=True)
    if not re.match(r"OpenSSL [3-9]\.", version.stdout):
        pytest.skip(f"needs the OpenSSL 3 command line, found {version.stdout.strip()}")
    return path


@pytest.fixture(scope="session")
def go_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go crypto/tls peer, built from tests/interop/gopeer."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the go toolchain is missing: install Go >= 1.26 (https://go.dev/dl/)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    version = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, env=env, check=False
    )
    match = re.match(r"go(\d+)\.(\d+)", version.stdout.strip())
    if match is None or (int(match[1]), int(match[2])) < GO_MINIMUM:
        pytest.skip(f"the Go peer needs Go >= 1.26, found {version.stdout.strip() or 'none'}")
    binary = tmp_path_factory.mktemp("gopeer") / "gopeer"
    build = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GO_PEER_SOURCE,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


@pytest.fixture(scope="session")
def pyopenssl_peer() -> list[str]:
    """The command that runs the pyOpenSSL peer script."""
    ssl = pytest.importorskip(
        "OpenSSL.SSL", reason="pyOpenSSL is missing: pip install -e '.[test]'"
    )
    version = ssl.OpenSSL_version(ssl.OPENSSL_VERSION).decode()
    found = re.match(r"OpenSSL (\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < (3, 5):
        pytest.skip(f"X25519MLKEM768 needs OpenSSL >= 3.5 under pyOpenSSL, found {version}")
    return [sys.executable, str(PYOPENSSL_PEER)]
