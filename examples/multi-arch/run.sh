#!/usr/bin/env bash
# Build a two-platform image (linux/amd64, linux/arm64) of examples/sample-app with
# Go's cross-compiler and crane — no Docker, no buildx, no QEMU, no base image —
# push it, and show both platforms with `idpbuilder registry list`.
# Needs: go, crane (go install github.com/google/go-containerregistry/cmd/crane@v0.22.1),
# idpbuilder on PATH (or IDPBUILDER). REGISTRY (localhost:5001) and TAG may be set.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
idpbuilder=${IDPBUILDER:-idpbuilder}
registry=${REGISTRY:-localhost:5001}
tag=${TAG:-v1}
repo=$registry/multi-arch/sample-app
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

manifests=()
for arch in amd64 arm64; do
  # One static binary per platform, as the only file of the image's only layer.
  mkdir -p "$work/$arch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -C "$here/../sample-app" -trimpath -ldflags '-s -w' \
    -o "$work/$arch/sample-app" .
  tar -C "$work/$arch" --owner=0 --group=0 --numeric-owner -cf "$work/$arch.tar" sample-app
  # An empty OCI base plus that layer, then the image config a runtime needs.
  crane append --oci-empty-base -f "$work/$arch.tar" -t "$repo:$tag-$arch" >/dev/null
  crane mutate "$repo:$tag-$arch" --set-platform "linux/$arch" --entrypoint /sample-app \
    --exposed-ports 8080 --user 65534:65534 -t "$repo:$tag-$arch" >/dev/null
  manifests+=(-m "$repo:$tag-$arch")
done
# The index that makes it one multi-platform image.
crane index append "${manifests[@]}" -t "$repo:$tag" >/dev/null
echo "pushed $repo:$tag@$(crane digest "$repo:$tag")"

"$idpbuilder" registry list multi-arch/sample-app --registry-addr "$registry"
