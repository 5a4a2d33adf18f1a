#!/usr/bin/env bash
# Runs every idpbuilder test on a Debian/Ubuntu machine, setting the machine up first:
#   1. installs what the tests use, if missing (docker.io, containerd, skopeo, iptables, make, gcc,
#      chromium for the web UI's browser tests; oras and regctl from their Go modules),
#   2. starts containerd and dockerd if they are not running,
#   3. applies the egress guard (nothing a test container sends may leave the machine),
#   4. runs `make test-all`: lint, benchmarks once, unit tests, end-to-end tests.
# Run it as root (CI does), or as a user with sudo for steps 1-3 and access to the
# Docker and containerd sockets.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

log() { printf '\n==> %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

command -v go >/dev/null || { echo "Go 1.26 or newer is required: https://go.dev/doc/install" >&2; exit 1; }

log "checking packages"
pkgs=()
command -v dockerd >/dev/null || pkgs+=(docker.io)
command -v containerd >/dev/null || pkgs+=(containerd)
command -v ctr >/dev/null || pkgs+=(containerd)
command -v skopeo >/dev/null || pkgs+=(skopeo)
command -v iptables >/dev/null || pkgs+=(iptables)
command -v make >/dev/null || pkgs+=(make)
command -v gcc >/dev/null || pkgs+=(gcc) # go test -race needs cgo; runc (containerd 2 node image) too
command -v pkg-config >/dev/null || pkgs+=(pkg-config) # runc's libseccomp binding
dpkg -s libseccomp-dev >/dev/null 2>&1 || pkgs+=(libseccomp-dev)
command -v git >/dev/null || pkgs+=(git)
command -v debootstrap >/dev/null || pkgs+=(debootstrap) # builds the offline Kind node image
command -v chromium >/dev/null || pkgs+=(chromium)       # the web UI's tests in a real browser
if ((${#pkgs[@]})); then
  log "installing: ${pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

# Client CLIs the e2e tests drive, built from their Go modules at pinned versions.
log "installing oras and regctl into bin/tools"
tools=$repo/bin/tools
mkdir -p "$tools"
GOBIN=$tools go install oras.land/oras/cmd/oras@v1.3.6
GOBIN=$tools go install github.com/regclient/regclient/cmd/regctl@v0.11.7
export PATH=$tools:$PATH

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "$what did not come up within ${secs}s" >&2
  return 1
}

logs=${IDPBUILDER_DAEMON_LOGS:-/var/log}
ctrd_sock=/run/containerd/containerd.sock
if ! docker info >/dev/null 2>&1; then
  if ! ctr --address "$ctrd_sock" version >/dev/null 2>&1; then
    log "starting containerd (log: $logs/idpbuilder-containerd.log)"
    $SUDO sh -c "nohup setsid containerd >'$logs/idpbuilder-containerd.log' 2>&1 &"
    wait_for 60 containerd ctr --address "$ctrd_sock" version || { tail -50 "$logs/idpbuilder-containerd.log" >&2; exit 1; }
  fi
  log "starting dockerd (log: $logs/idpbuilder-dockerd.log)"
  $SUDO sh -c "nohup setsid dockerd --containerd='$ctrd_sock' >'$logs/idpbuilder-dockerd.log' 2>&1 &"
  wait_for 90 dockerd docker info || { tail -50 "$logs/idpbuilder-dockerd.log" >&2; exit 1; }
fi
docker version --format 'docker engine {{.Server.Version}}, client {{.Client.Version}}'

guard=${IDPBUILDER_EGRESS_GUARD:-$repo/../shared/kind-node/egress-guard.sh}
if [ -f "$guard" ]; then
  log "egress guard"
  $SUDO bash "$guard"
else
  echo "note: no egress guard at $guard; test containers keep this machine's normal network access"
fi

# The Kind end-to-end tests run on two node images: containerd 1.6, and
# containerd 2.x as current kind releases ship. No registry is reachable here, so
# they are built from Debian packages and Go modules when missing (the 1.6 one
# first, about 20 minutes cold; the containerd 2 one reuses its stages, about 2
# minutes more). With internet, set IDPBUILDER_NODE_IMAGES=kindest/node:<version>
# (comma-separated for several) instead; IDPBUILDER_NODE_IMAGE (one image) still works.
node_builder=$repo/../shared/kind-node/build-node-image.sh
build_node_image() { # build_node_image IMAGE [CONTAINERD]
  local image=$1 containerd=${2:-}
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  if [ ! -f "$node_builder" ]; then
    echo "Kind node image $image is missing: pull one (docker pull kindest/node:v1.34.0) and set IDPBUILDER_NODE_IMAGES" >&2
    exit 1
  fi
  log "building Kind node image $image"
  local node_start
  node_start=$(date +%s)
  $SUDO env IMAGE="$image" ${containerd:+CONTAINERD=$containerd} bash "$node_builder"
  echo "node image $image built in $(( $(date +%s) - node_start ))s"
}
if [ -z "${IDPBUILDER_NODE_IMAGES:-}" ]; then
  if [ -n "${IDPBUILDER_NODE_IMAGE:-}" ]; then
    IDPBUILDER_NODE_IMAGES=$IDPBUILDER_NODE_IMAGE
  else # the 1.6 image first: the containerd 2 one reuses its cached stages
    IDPBUILDER_NODE_IMAGES=kind-offline/node:v1.34.4,kind-offline/node:v1.34.4-containerd2
  fi
fi
IFS=, read -ra node_images <<<"$IDPBUILDER_NODE_IMAGES"
for image in "${node_images[@]}"; do
  case $image in
    kind-offline/*-containerd2) build_node_image "$image" 2 ;;
    kind-offline/*) build_node_image "$image" ;;
    *) docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image" ;;
  esac
done
export IDPBUILDER_NODE_IMAGES
unset IDPBUILDER_NODE_IMAGE
# Here a missing browser fails the UI's browser tests instead of skipping them.
export IDPBUILDER_REQUIRE_BROWSER=1

log "make test-all"
start=$(date +%s)
make test-all
echo "all tests passed in $(( $(date +%s) - start ))s"
