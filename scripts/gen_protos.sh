#!/usr/bin/env bash
# Regenerates the gRPC stubs from protos/ with the protoc bundled in grpcio-tools.
#
#   scripts/gen_protos.sh                    Python stubs into clients/python/handshaker_wire/v1
#                                            (committed)
#   scripts/gen_protos.sh --python-out DIR   Python stubs into DIR/handshaker_wire/v1 (the staleness test)
#   scripts/gen_protos.sh --go [--go-out D]  also Go stubs into clients/go/gen/handshaker/v1
#                                            (D replaces clients/go, the Go module root)
#                                            (needs protoc-gen-go and protoc-gen-go-grpc on PATH:
#                                             go install google.golang.org/protobuf/cmd/protoc-gen-go@latest
#                                             go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest)
#   scripts/gen_protos.sh --java [--java-out D]
#                                            also Java messages into clients/java/src/main/java (or D)
#                                            (needs PROTOC=/path/to/protoc, a full protoc; gRPC service
#                                             classes also need PROTOC_GEN_GRPC_JAVA=/path/to/plugin)
#
# PYTHON selects the interpreter (default: the project venv). The Python stubs live in
# handshaker_wire, the package that the service and the client distribution
# (handshaker-client) both depend on: they import as
# `from handshaker_wire.v1 import handshaker_pb2`. protoc names modules after the
# proto's path (handshaker/v1/...), so the stubs are generated into a scratch
# directory and their imports rewritten; the descriptors keep the proto names.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
python_out=$root/clients/python
go=0
go_out=$root/clients/go
java=0
java_out=$root/clients/java/src/main/java

while [ $# -gt 0 ]; do
  case $1 in
    --python-out) python_out=$2; shift 2 ;;
    --go) go=1; shift ;;
    --go-out) go=1; go_out=$2; shift 2 ;;
    --java) java=1; shift ;;
    --java-out) java=1; java_out=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gen_protos.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$root"
protos=$(find protos -name '*.proto' | sort)
protoc=("$python" -m grpc_tools.protoc -I protos)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${protoc[@]}" \
  --python_out="$scratch" \
  --pyi_out="$scratch" \
  --grpc_python_out="$scratch" \
  $protos
wire=$python_out/handshaker_wire/v1
mkdir -p "$wire"
for generated in "$scratch"/handshaker/v1/*; do
  sed -e 's/^from handshaker\.v1 import /from handshaker_wire.v1 import /' \
    "$generated" >"$wire/$(basename "$generated")"
done

if [ "$go" = 1 ]; then
  for plugin in protoc-gen-go protoc-gen-go-grpc; do
    command -v "$plugin" >/dev/null || { echo "gen_protos.sh: $plugin not on PATH" >&2; exit 1; }
  done
  # go_package is github.com/handshaker/handshaker/clients/go/gen/handshaker/v1;
  # module= strips the module path so files land under clients/go/gen/.
  module=github.com/handshaker/handshaker/clients/go
  mkdir -p "$go_out"
  "${protoc[@]}" \
    --plugin=protoc-gen-go="$(command -v protoc-gen-go)" \
    --plugin=protoc-gen-go-grpc="$(command -v protoc-gen-go-grpc)" \
    --go_out="$go_out" --go_opt=module=$module \
    --go-grpc_out="$go_out" --go-grpc_opt=module=$module \
    $protos
fi

if [ "$java" = 1 ]; then
  # grpcio-tools' protoc has no Java generator: a full protoc is needed, e.g. the
  # com.google.protobuf:protoc:<version>:exe:linux-x86_64 artifact from Maven Central
  # (or let clients/java's Maven build run protobuf-maven-plugin on protos/).
  if [ -z "${PROTOC:-}" ]; then
    echo "gen_protos.sh: --java needs PROTOC=/path/to/protoc (a full protoc with --java_out)" >&2
    exit 1
  fi
  mkdir -p "$java_out"
  grpc_java=()
  if [ -n "${PROTOC_GEN_GRPC_JAVA:-}" ]; then
    grpc_java=(--plugin=protoc-gen-grpc-java="$PROTOC_GEN_GRPC_JAVA" --grpc-java_out="$java_out")
  fi
  "$PROTOC" -I protos --java_out="$java_out" "${grpc_java[@]}" $protos
fi
