#!/usr/bin/env bash
# Regenerates the gRPC stubs from protos/ with the protoc bundled in grpcio-tools.
#
#   scripts/gen_protos.sh                    Python stubs into service/handshaker/v1 (committed)
#   scripts/gen_protos.sh --python-out DIR   Python stubs into DIR/handshaker/v1 (the staleness test)
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
# PYTHON selects the interpreter (default: the project venv). The Python output
# imports as `from handshaker.v1 import handshaker_pb2`, because protos/ is the
# include root and service/ is the package root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
python_out=$root/service
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
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gen_protos.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$root"
protos=$(find protos -name '*.proto' | sort)
protoc=("$python" -m grpc_tools.protoc -I protos)

mkdir -p "$python_out"
"${protoc[@]}" \
  --python_out="$python_out" \
  --pyi_out="$python_out" \
  --grpc_python_out="$python_out" \
  $protos

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
