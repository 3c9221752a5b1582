#!/usr/bin/env python3
"""Run a fuzz target with atheris for a chosen time: `tests/fuzz/run.py TARGET SECONDS`.

TARGET is server_receive, client_receive, options, or all (the time is split
between them). The committed corpus (tests/fuzz/corpus/TARGET) seeds the run;
new inputs go to a scratch copy, so a run never changes the repository. A crash
leaves its input as crash-* in the working directory and exits non-zero.
`--make-corpus` rewrites the committed seeds from real handshakes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run_one(target: str, seconds: int) -> int:
    """Each target in its own process: atheris owns the process while it fuzzes."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as scratch:
        corpus = Path(scratch) / "corpus"
        shutil.copytree(HERE / "corpus" / target, corpus)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            target,
            str(corpus),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            "-print_final_stats=1",
        ]
        print(f"== fuzz {target} for {seconds} s", flush=True)
        return subprocess.run(command, check=False).returncode


def _child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris  # only the fuzzing process needs it

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["handshaker"]):
        import fuzz_targets as targets  # instrumented as it is imported

    function = targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *libfuzzer_args], function)
    atheris.Fuzz()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "target",
        nargs="?",
        default="all",
        choices=("server_receive", "client_receive", "options", "all"),
        help="what to fuzz (default all)",
    )
    parser.add_argument(
        "seconds", nargs="?", type=int, default=60, help="how long in all (default 60)"
    )
    parser.add_argument(
        "--make-corpus", action="store_true", help="rewrite the committed seeds and exit"
    )
    args = parser.parse_args()
    if args.make_corpus:
        sys.path.insert(0, str(HERE))
        import fuzz_targets as targets  # beside this script, not a package

        targets.make_corpus()
        return 0
    names = (
        ["server_receive", "client_receive", "options"] if args.target == "all" else [args.target]
    )
    share = max(1, args.seconds // len(names))
    status = 0
    for name in names:
        status = status or _run_one(name, share)
    return status


if __name__ == "__main__":
    sys.exit(main())
