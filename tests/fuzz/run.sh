#!/usr/bin/env bash
# Runs one fuzz target for SECONDS on a copy of its committed corpus (new inputs stay in
# the copy; a crash reproducer lands in tests/fuzz/crashes/). Usage: run.sh TARGET SECONDS
set -euo pipefail
cd "$(dirname "$0")"
target=$1 seconds=$2
python=${PYTHON:-../../.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "corpus/$target" "$work/corpus"
mkdir -p crashes
"$python" targets.py "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=crashes/"$target"- -print_final_stats=1 "$work/corpus" 2>&1 \
  | grep -E "^(#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb|==|Traceback|  File|[A-Za-z]*Error)" || true
# libFuzzer exits non-zero on a finding; pipefail is off for grep above, so check the artifacts.
if compgen -G "crashes/$target-*" >/dev/null; then
  echo "fuzz $target: finding in $(ls crashes/$target-* | head -1)" >&2
  exit 1
fi
echo "fuzz $target: no finding in ${seconds}s"
