"""Compile the TLS engine (service/handshaker/tls) with mypyc into its _compiled/ directory.

The build goes beside the sources, in handshaker/tls/_compiled/, with a stamp of what
it was made from (handshaker/tls/compiled.py says how the package picks it up). Made
again only when the stamp no longer matches the sources, unless --force. A machine
without a C compiler or Python headers keeps the pure-Python engine: the build fails
with a clear line, and --optional turns that into a warning and exit 0.

    .venv/bin/python scripts/build_engine.py [--force] [--optional] [--check]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "service"
# mypyc's group: one shared library for every compiled module, inside the package.
GROUP = "handshaker.tls._engine"


def _load_compiled_module() -> ModuleType:
    """handshaker/tls/compiled.py by its path: importing the package would load the engine."""
    path = SERVICE / "handshaker" / "tls" / "compiled.py"
    spec = importlib.util.spec_from_file_location("_handshaker_engine_compiled", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    os.environ.setdefault("HANDSHAKER_ENGINE", "python")
    spec.loader.exec_module(module)
    return module


def _build(compiled: ModuleType, mypyc_version: str) -> None:
    # Imported here: a machine without mypyc still gets --check and a clear failure.
    from mypyc.build import mypycify  # noqa: PLC0415
    from setuptools import Distribution  # type: ignore[import-untyped]  # noqa: PLC0415

    sources = [p.relative_to(SERVICE).as_posix() for p in compiled.compiled_sources()]
    with tempfile.TemporaryDirectory(prefix="handshaker-engine-") as scratch:
        work = Path(scratch)
        previous = Path.cwd()
        os.chdir(SERVICE)
        # mypy resolves handshaker_wire (the record layer the engine shares) from here.
        os.environ["MYPYPATH"] = str(ROOT / "clients" / "python")
        try:
            extensions = mypycify(
                sources, opt_level="3", group_name=GROUP, target_dir=str(work / "c")
            )
            distribution = Distribution({"name": "handshaker-engine", "ext_modules": extensions})
            command = distribution.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            command.parallel = os.cpu_count() or 1
            distribution.run_command("build_ext")
        finally:
            os.chdir(previous)
        built = work / "lib" / "handshaker" / "tls"
        staging = compiled.BUILD_DIR.with_name("_compiled.new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(built, staging)
        (staging / compiled.STAMP_NAME).write_text(compiled.stamp(mypyc_version))
        shutil.rmtree(compiled.BUILD_DIR, ignore_errors=True)
        staging.rename(compiled.BUILD_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when the build is fresh")
    parser.add_argument(
        "--optional", action="store_true", help="a failed build is a warning, not an error"
    )
    parser.add_argument(
        "--check", action="store_true", help="only say whether the build is fresh (exit 1 if not)"
    )
    args = parser.parse_args(argv)
    compiled = _load_compiled_module()
    try:
        from mypy.version import __version__ as mypyc_version  # noqa: PLC0415
    except ImportError:
        mypyc_version = ""
    # Fresh for the mypyc installed now: a newer mypyc builds again.
    fresh = bool(mypyc_version) and compiled.recorded_stamp() == compiled.stamp(mypyc_version)
    if args.check:
        print("compiled engine: " + ("fresh" if fresh else "missing or stale"))
        return 0 if fresh else 1
    if fresh and not args.force:
        print("compiled engine: fresh, nothing to do")
        return 0
    if not mypyc_version:
        return _failed("mypyc is not installed (it comes with mypy)", args.optional)
    started = time.monotonic()
    try:
        _build(compiled, mypyc_version)
    except (Exception, SystemExit) as error:  # setuptools reports a compiler failure as exit
        return _failed(f"{type(error).__name__}: {error}", args.optional)
    count = len(compiled.compiled_sources())
    print(f"compiled engine: {count} modules with mypyc {mypyc_version}", end="")
    print(f" in {time.monotonic() - started:.0f} s")
    return 0


def _failed(why: str, optional: bool) -> int:
    print(f"compiled engine: not built ({why}); the engine runs as Python", file=sys.stderr)
    return 0 if optional else 1


if __name__ == "__main__":
    sys.exit(main())
