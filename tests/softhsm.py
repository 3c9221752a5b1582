"""A real SoftHSM2 token in a temporary directory, for the PKCS#11 tests (never a mock).

Each test session gets its own token directory and configuration file; the
module reads SOFTHSM2_CONF when it is initialised, so a process sees one token
directory for its whole life: in-process tests share one session-wide token,
and subprocesses get the environment from `SoftHsm.env`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Distinctive, so a test can look for it in logs and output and be sure it is absent.
USER_PIN = "pin-5a9c31e7"
SO_PIN = "so-pin-0b4d2f"


@dataclass(frozen=True)
class SoftHsm:
    conf: Path
    token_dir: Path
    label: str
    module: str

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use the token: the config and the PIN."""
        return {"SOFTHSM2_CONF": str(self.conf), "HANDSHAKER_PKCS11_PIN": USER_PIN}

    @property
    def uri(self) -> str:
        return f"pkcs11:token={self.label}"


def require_softhsm() -> tuple[str, str]:
    """softhsm2-util and the module, or a skip that says what to install."""
    util = shutil.which("softhsm2-util")
    from handshaker.keystore.pkcs11 import default_module_path

    module = default_module_path()
    if util is None or module is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        pytest.skip("python-pkcs11 is not installed (pip install -e '.[pkcs11]')")
    return util, module


def make_token(directory: Path, label: str) -> SoftHsm:
    """Initialises a fresh token called `label` in its own token directory."""
    util, module = require_softhsm()
    token_dir = directory / "tokens"
    token_dir.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", USER_PIN],
        check=True,
        capture_output=True,
        env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
    )
    return SoftHsm(conf, token_dir, label, module)
