#!/usr/bin/env bash
# End-to-end check of docker-compose.yml: builds the image (deploy/Dockerfile), starts
# redis, the service and `web`, and exits with `caller`'s status: 0 once caller read
# web's HTTP/1.1 200 OK over TLS, both handshakes run in the service. Then removes the
# containers, network and volumes again (also on failure or Ctrl-C).
#
#   deploy/compose-smoke.sh            # needs a Docker daemon and `docker compose`
#                                      # (v2 plugin) or `docker-compose` (v1.27+)
#
# It runs under a project name of its own (handshaker-smoke-PID), so `down -v` never
# touches the volumes (the development keystore) of your own `docker compose up`.
# Without a reachable Docker daemon or a compose command it says so and exits 0
# (skipped); it is not part of scripts/test, which runs where there is no daemon.
# SMOKE_TIMEOUT (seconds, default 600) bounds the whole `up`, first build included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1; then
  echo "compose-smoke: skipped: no docker command" >&2
  exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "compose-smoke: skipped: no Docker daemon reachable (docker info failed)" >&2
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose-smoke: skipped: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
  exit 0
fi

project="handshaker-smoke-$$"
compose+=(--project-name "$project" --file docker-compose.yml)
cleanup() {
  "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "compose-smoke: ${compose[*]} up --build --exit-code-from caller" >&2
status=0
if command -v timeout >/dev/null 2>&1; then
  timeout --foreground "${SMOKE_TIMEOUT:-600}" \
    "${compose[@]}" up --build --exit-code-from caller || status=$?
else
  "${compose[@]}" up --build --exit-code-from caller || status=$?
fi
if [ "$status" -eq 0 ]; then
  echo "compose-smoke: ok: caller read HTTP/1.1 200 OK from web through the service" >&2
elif [ "$status" -eq 124 ]; then
  echo "compose-smoke: FAILED: no result within ${SMOKE_TIMEOUT:-600} s" >&2
else
  echo "compose-smoke: FAILED: exit status $status (caller's, or compose's own)" >&2
fi
exit "$status"
