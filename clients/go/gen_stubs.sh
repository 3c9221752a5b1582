#!/usr/bin/env bash
# Regenerates the committed Go stubs (gen/handshaker/v1) with scripts/gen_protos.sh --go,
# using the protoc-gen-go and protoc-gen-go-grpc versions pinned by go.mod's tool directive.
#
#   clients/go/gen_stubs.sh           rewrite gen/handshaker/v1
#   clients/go/gen_stubs.sh --check   exit 1 if the committed stubs differ from the protos
#
# The Python stubs this run also produces go to a temporary directory; scripts/gen_protos.sh
# alone regenerates the committed Python ones.
set -euo pipefail

module=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$module/../.." && pwd)
check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  *) echo "gen_stubs.sh: unknown argument: $1" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
(cd "$module" && go build -o "$tmp/bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc)

out=$module
[ "$check" = 1 ] && out=$tmp/go
PATH=$tmp/bin:$PATH "$root/scripts/gen_protos.sh" --python-out "$tmp/python" --go-out "$out"

if [ "$check" = 1 ]; then
  # The protoc version line follows grpcio-tools, not the protos.
  if ! diff -r -I '^//.*protoc  *v[0-9]' "$module/gen" "$out/gen"; then
    echo "gen_stubs.sh: clients/go/gen is stale; run clients/go/gen_stubs.sh" >&2
    exit 1
  fi
fi
