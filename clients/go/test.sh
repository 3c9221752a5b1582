#!/usr/bin/env bash
# Checks and tests the Go client: gofmt, go vet, build, stub freshness, go test.
# The tests start a real service from $HANDSHAKER_BIN (default: the project
# venv's handshaker, which scripts/setup creates).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
export HANDSHAKER_BIN=${HANDSHAKER_BIN:-$root/.venv/bin/handshaker}
if [ ! -x "$HANDSHAKER_BIN" ]; then
  echo "clients/go/test.sh: no service at $HANDSHAKER_BIN (run scripts/setup first)" >&2
  exit 1
fi

echo "== go: gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "== go: vet"
go vet ./...
echo "== go: build"
go build ./...
echo "== go: stubs"
./gen_stubs.sh --check
echo "== go: test"
go test -count=1 "$@" ./...
