"""Which engine runs: the mypyc-compiled build of these sources, or the sources themselves.

scripts/build_engine.py compiles the engine's modules with mypyc into _compiled/
(beside this file, never committed) and writes there a stamp: the mypyc version,
the interpreter's cache tag and a SHA-256 over every .py file of the package. At
import, the package's __path__ (and each subpackage's) puts _compiled/ first only
when that stamp matches the sources exactly, so an edited source is never shadowed
by a stale build: it runs as Python until the build is made again. Either way the
behaviour is the same (one test suite runs against both); the build is faster.

HANDSHAKER_ENGINE=python forces the sources (fuzzing, debugging, patching a module
in a test); HANDSHAKER_ENGINE=compiled refuses to import without a fresh build
(CI, images); unset, the build is used when it is fresh.

This module is never compiled itself, and reads no more than the package's files.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR / "_compiled"
STAMP_NAME = "STAMP"
# The modules the build leaves as Python: package __init__s (they set __path__), this
# module, and the record layers that subclass handshaker_wire's interpreted classes.
NOT_COMPILED = frozenset({"compiled.py", "record.py", "tls12/record.py"})


def engine_sources() -> list[Path]:
    """Every .py file of the engine, in a fixed order (what the stamp covers)."""
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if BUILD_DIR not in p.parents)


def compiled_sources() -> list[Path]:
    """The modules the build compiles."""
    return [
        p
        for p in engine_sources()
        if p.name != "__init__.py" and p.relative_to(PACKAGE_DIR).as_posix() not in NOT_COMPILED
    ]


def stamp(mypyc_version: str) -> str:
    """What a build from these sources with this mypyc, for this interpreter, records."""
    digest = hashlib.sha256()
    for path in engine_sources():
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    tag = sys.implementation.cache_tag
    return f"mypyc {mypyc_version}\ncache_tag {tag}\nsources {digest.hexdigest()}\n"


def recorded_stamp() -> str | None:
    """The stamp the build in _compiled/ was made with; None when there is no build."""
    try:
        return (BUILD_DIR / STAMP_NAME).read_text()
    except OSError:
        return None


def _recorded_mypyc(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first.removeprefix("mypyc ") if first.startswith("mypyc ") else ""


def _choose() -> tuple[str, str]:
    """(engine, why): "compiled" when the build is fresh and wanted, else "python"."""
    wanted = os.environ.get("HANDSHAKER_ENGINE", "")
    if wanted not in ("", "python", "compiled"):
        raise ImportError(f"HANDSHAKER_ENGINE={wanted!r}: use python or compiled")
    if wanted == "python":
        return "python", "HANDSHAKER_ENGINE=python"
    recorded = recorded_stamp()
    if recorded is None:
        why = "no compiled build (scripts/build_engine.py makes one)"
    elif recorded == stamp(_recorded_mypyc(recorded)):
        return "compiled", f"mypyc {_recorded_mypyc(recorded)}"
    else:
        why = "the compiled build is of other sources or another interpreter"
    if wanted == "compiled":
        raise ImportError(f"HANDSHAKER_ENGINE=compiled, but {why}")
    return "python", why


ENGINE, ENGINE_DETAIL = _choose()
# What the listening line and the benches report: "compiled (mypyc 2.4.1)", "python (why)".
DESCRIPTION = f"{ENGINE} ({ENGINE_DETAIL})"


def search_path(path: list[str], subpackage: str) -> list[str]:
    """A package's __path__ with the build's directory for it first, when it is used."""
    if ENGINE != "compiled":
        return path
    return [str(BUILD_DIR / subpackage), *path]
