#!/usr/bin/env bash
# Example: a throwaway registry for a CI job. Starts `idpbuilder registry serve` on a
# free port with a temp data dir, pushes a locally built image, pulls it back by
# digest, and stops the registry. Needs: idpbuilder on PATH (or IDPBUILDER), docker.
set -Eeuo pipefail
idpbuilder=${IDPBUILDER:-idpbuilder}
data=$(mktemp -d)
out=$(mktemp)
reg=""
cleanup() {
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$reg" ] && docker rmi -f "$reg/ci-example/app:v1" ci-example/app:build >/dev/null 2>&1
  rm -rf "$data" "$out"
}
trap cleanup EXIT

"$idpbuilder" registry serve --addr 127.0.0.1:0 --data-dir "$data" >"$out" &
pid=$!
for _ in $(seq 50); do grep -q 'listening' "$out" && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$out")
reg="localhost:${addr##*:}"
echo "registry at $reg"

tar cf - -C "$(dirname "$0")" run.sh | docker import - ci-example/app:build
docker tag ci-example/app:build "$reg/ci-example/app:v1"
digest=$(docker push "$reg/ci-example/app:v1" | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p')
docker pull "$reg/ci-example/app@$digest"
echo "pushed and pulled $reg/ci-example/app@$digest"
