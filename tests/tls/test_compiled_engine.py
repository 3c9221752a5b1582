"""The compiled engine is used only when it was built from exactly the sources beside it.

Each case runs a fresh interpreter on a copy of the package (the engine's choice is
made once, at import), so editing a source in the copy cannot touch the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from handshaker.tls import compiled

PACKAGE = Path(compiled.__file__).resolve().parent
PROBE = (
    "import handshaker.tls as t, handshaker.tls.core as core; "
    "print(t.compiled.ENGINE, core.__file__.endswith('.py'))"
)
needs_build = pytest.mark.skipif(
    not (compiled.BUILD_DIR / compiled.STAMP_NAME).is_file(),
    reason="no compiled build here (scripts/build_engine.py makes one; it needs a C compiler)",
)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PACKAGE.parent, root / "handshaker", ignore=skip)
    return root


def _probe(root: Path, engine: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HANDSHAKER_ENGINE"}
    if engine is not None:
        env["HANDSHAKER_ENGINE"] = engine
    # The copy first, the installed dependencies (cryptography, handshaker_wire) after it.
    env["PYTHONPATH"] = os.pathsep.join([str(root), *sys.path])
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _runs(root: Path, engine: str | None, chosen: str) -> None:
    """The probe imports, with `chosen` as the engine (and core.py as a .py file or not)."""
    result = _probe(root, engine)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [chosen, str(chosen == "python")]


def _refused(root: Path, engine: str, message: str) -> None:
    refused = _probe(root, engine)
    assert refused.returncode != 0
    assert message in refused.stderr


@needs_build
def test_a_fresh_build_is_used(tmp_path: Path) -> None:
    _runs(_copy(tmp_path), None, "compiled")


@needs_build
def test_an_edited_source_runs_as_python_and_compiled_refuses_to_import(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    core = root / "handshaker" / "tls" / "core.py"
    core.write_text(core.read_text() + "\n# edited after the build\n")
    _runs(root, None, "python")
    _refused(root, "compiled", "HANDSHAKER_ENGINE=compiled, but the compiled build is of other")


def test_python_is_chosen_when_asked_and_an_unknown_choice_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _runs(root, "python", "python")
    _refused(root, "fast", "HANDSHAKER_ENGINE='fast': use python or compiled")


def test_without_a_build_the_engine_is_python(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    shutil.rmtree(root / "handshaker" / "tls" / "_compiled", ignore_errors=True)
    _runs(root, None, "python")
    _refused(root, "compiled", "HANDSHAKER_ENGINE=compiled, but no compiled build")
