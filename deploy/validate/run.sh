#!/usr/bin/env bash
# Checks deploy/ offline (no cluster, no Docker): gofmt and go vet on the validator, its
# tests (including the cases it must reject), then the validator on the tree: every
# kustomization under deploy/kubernetes rendered and strictly decoded into the
# Kubernetes API types, the deployment policies, deploy/Dockerfile, docker-compose.yml.
# The first run fetches the Go modules (go.sum pins them); later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
# The tests are cached while nothing they read changed; the run below is never cached.
go test ./...
# Built into .bin/ (ignored by git), which go build relinks only when the code changed.
go build -o .bin/validate .
.bin/validate -root ../..
