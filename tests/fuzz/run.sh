#!/usr/bin/env bash
# Runs one fuzz target for SECONDS on a copy of its committed corpus (new inputs stay in
# the copy; a crash reproducer lands in tests/fuzz/crashes/). Usage: run.sh TARGET SECONDS
set -euo pipefail
cd "$(dirname "$0")"
target=$1 seconds=$2
python=${PYTHON:-../../.venv/bin/python}
# atheris instruments Python bytecode: the engine's sources, not its compiled build.
export HANDSHAKER_ENGINE=python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "corpus/$target" "$work/corpus"
mkdir -p crashes
status=0
"$python" targets.py "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=crashes/"$target"- -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1 \
  || status=$?
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/log" || true
if [ "$status" -ne 0 ]; then
  # A finding (libFuzzer exits non-zero) or a target that does not start.
  tail -40 "$work/log" >&2
  echo "fuzz $target: failed (exit $status); reproducer, if any: crashes/$target-*" >&2
  exit 1
fi
echo "fuzz $target: no finding in ${seconds}s"
