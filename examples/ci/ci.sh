#!/usr/bin/env bash
# The CI job of examples/ci, called by github-actions.yml and gitlab-ci.yml (and by
# TestExampleCI): run `idpbuilder registry serve` as a background service on a free
# port with a throwaway data dir, build and push the sample app, test the pushed
# image, show what the registry holds, stop it. Needs: idpbuilder on PATH (or
# IDPBUILDER), go, docker, curl. With a Docker daemon in another container (GitLab's
# docker:dind), set REGISTRY_LISTEN=0.0.0.0 and REGISTRY_HOST to this job's address,
# so that the daemon can reach the registry, and APP_HOST to the daemon's host.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
idpbuilder=${IDPBUILDER:-idpbuilder}
state=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT

# The service: port 0 lets the kernel pick a free port; the log line tells which.
"$idpbuilder" registry serve --addr "${REGISTRY_LISTEN:-127.0.0.1}:0" --data-dir "$state/data" --access-log off >"$state/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'Registry listening' "$state/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's|^Registry listening on http://\([^ ]*\).*|\1|p' "$state/serve.log")
[ -n "$addr" ] || { cat "$state/serve.log" >&2; exit 1; }
registry="${REGISTRY_HOST:-localhost}:${addr##*:}"
curl -fsS "http://$registry/health" >/dev/null
echo "registry service at $registry"

# The job: build, push, test the pushed image (examples/sample-app/run.sh).
REGISTRY=$registry TAG=${CI_COMMIT_SHORT_SHA:-${GITHUB_SHA:-local}} "$here/../sample-app/run.sh"

# What the job left in the registry.
"$idpbuilder" registry list --registry-addr "$registry"
