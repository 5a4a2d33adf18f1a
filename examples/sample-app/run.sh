#!/usr/bin/env bash
# Build the sample app, push it to the registry, and check it answers:
#   ./run.sh           build, push to $REGISTRY (localhost:5001), run the pushed image with docker, curl it
#   ./run.sh --deploy  build, push, deploy to the current kubectl context (an `idpbuilder create` cluster), curl it
# Needs: go, docker; kubectl for --deploy. REGISTRY, TAG and KUBECTL may be set; APP_HOST
# names the Docker daemon's host when it is not this one (a docker:dind service).
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
registry=${REGISTRY:-localhost:5001}
tag=${TAG:-v1}
kubectl=${KUBECTL:-kubectl}
image=$registry/sample-app:$tag
work=$(mktemp -d)
cid=""
pf=""
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1
  [ -n "${digest:-}" ] && docker rmi "$registry/sample-app@$digest" >/dev/null 2>&1
  [ -n "$pf" ] && kill "$pf" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build: a static binary, then an image FROM scratch around it.
CGO_ENABLED=0 go build -C "$here" -trimpath -ldflags '-s -w' -o "$work/sample-app" .
cp "$here/Dockerfile" "$work/"
docker build -q -t "$image" "$work" >/dev/null

# 2. Push, and keep the digest: what runs is exactly what was pushed.
digest=$(docker push "$image" | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p')
[ -n "$digest" ] || { echo "push of $image reported no digest" >&2; exit 1; }
echo "pushed $image@$digest"

check() { # check URL: the app must greet
  local out
  for _ in $(seq 100); do
    out=$(curl -fsS "$1" 2>/dev/null) && break
    sleep 0.2
  done
  case "$out" in
    hello\ from\ sample-app*) echo "sample-app answered: $out" ;;
    *) echo "sample-app did not answer at $1 (got: ${out:-nothing})" >&2; exit 1 ;;
  esac
}

if [ "${1:-}" != "--deploy" ]; then
  # 3a. Run the pushed image (pulled back by digest) with docker.
  docker rmi "$image" >/dev/null
  if [ -n "${APP_HOST:-}" ]; then publish=8080; else publish=127.0.0.1::8080; fi
  cid=$(docker run -d --rm -p "$publish" "$registry/sample-app@$digest")
  port=$(docker port "$cid" 8080/tcp | head -1 | sed 's/.*://')
  check "http://${APP_HOST:-127.0.0.1}:$port/"
  exit 0
fi

# 3b. Deploy to the cluster. Nodes pull localhost:5001/... from the registry too.
sed "s|IMAGE|$registry/sample-app@$digest|" "$here/k8s/app.yaml" | $kubectl apply -f -
$kubectl rollout status deployment/sample-app --timeout=180s
# A free local port, chosen by kubectl: "Forwarding from 127.0.0.1:PORT -> 8080".
$kubectl port-forward service/sample-app :80 >"$work/pf.log" 2>&1 &
pf=$!
for _ in $(seq 100); do grep -q 'Forwarding from 127.0.0.1:' "$work/pf.log" && break; sleep 0.2; done
local_port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\).*/\1/p' "$work/pf.log" | head -1)
[ -n "$local_port" ] || { cat "$work/pf.log" >&2; exit 1; }
check "http://127.0.0.1:$local_port/"
