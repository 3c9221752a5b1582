#!/usr/bin/env bash
# Runs the Java client's tests: JUnit 5 against a real handshaker service that the tests start
# (HANDSHAKER_BIN, default the project venv's .venv/bin/handshaker; scripts/setup creates it).
# Maven downloads its plugins and dependencies into ~/.m2 on the first run and reuses them after.
set -euo pipefail
cd "$(dirname "$0")"
export HANDSHAKER_BIN=${HANDSHAKER_BIN:-$(cd ../.. && pwd)/.venv/bin/handshaker}

if [ ! -x "$HANDSHAKER_BIN" ]; then
  # The service tests abort in @BeforeAll, which Surefire does not count as skipped: say so here.
  echo "java: tests that need the service will be skipped: no handshaker binary at $HANDSHAKER_BIN" \
    "(run scripts/setup, or set HANDSHAKER_BIN)" >&2
fi

rm -rf target/surefire-reports
status=0
# Debian's mvn wrapper prints bare ANSI resets even in batch mode; strip them.
mvn -q -B test "$@" 2>&1 | sed 's/\x1b\[0m//g' || status=$?

# -q hides Surefire's summary: print one closing line from its reports.
tests=0 failed=0 skipped=0
for report in target/surefire-reports/TEST-*.xml; do
  [ -e "$report" ] || continue
  line=$(grep -m1 '<testsuite ' "$report")
  attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$line"; }
  [ "$(attr tests)" = 0 ] && echo "java: $(basename "$report" .xml | sed 's/^TEST-//') ran no test (skipped)"
  tests=$((tests + $(attr tests)))
  failed=$((failed + $(attr failures) + $(attr errors)))
  skipped=$((skipped + $(attr skipped)))
done
echo "java: $((tests - failed - skipped)) passed, $failed failed, $skipped skipped"
if [ "$status" -eq 0 ] && [ "$tests" -eq 0 ]; then
  echo "java: no test ran" >&2
  exit 1
fi
exit "$status"
