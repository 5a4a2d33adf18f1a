#!/usr/bin/env bash
# Sign an image and attach an SBOM through the OCI referrers API, then verify both
# by listing the image's referrers and checking every digest and the signature.
# Needs: docker, oras (>= 1.2), openssl (>= 3), jq. REGISTRY (localhost:5001) and TAG may be set.
set -Eeuo pipefail
registry=${REGISTRY:-localhost:5001}
repo=$registry/signing-demo/app
tag=${TAG:-v1}
oras_flags=${ORAS_FLAGS:---plain-http}
work=$(mktemp -d)
trap 'rm -rf "$work"; docker rmi "$repo:$tag" >/dev/null 2>&1 || true' EXIT
cd "$work"

# 1. An image to sign (made from a file: nothing is pulled).
echo "an image signed by examples/signing" > hello.txt
tar cf - hello.txt | docker import - "$repo:$tag" >/dev/null
digest=$(docker push "$repo:$tag" | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p')
ref=$repo@$digest
echo "image:     $ref"

# 2. A signing key (ed25519). Keep the private half secret; publish key.pub.
openssl genpkey -algorithm ed25519 -out key.pem
openssl pkey -in key.pem -pubout -out key.pub

# 3. The SBOM: a minimal SPDX 2.3 document naming the image by digest.
cat > sbom.spdx.json <<JSON
{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "signing-demo-app",
  "documentNamespace": "https://example.invalid/spdx/signing-demo-app-${digest#sha256:}",
  "creationInfo": {"created": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "creators": ["Tool: examples/signing"]},
  "packages": [{"SPDXID": "SPDXRef-image", "name": "signing-demo/app", "downloadLocation": "NOASSERTION",
    "checksums": [{"algorithm": "SHA256", "checksumValue": "${digest#sha256:}"}]}]
}
JSON
oras attach $oras_flags --artifact-type application/spdx+json "$ref" sbom.spdx.json:application/spdx+json >/dev/null

# 4. The signature: over a payload that names the image's digest, so it cannot be
#    moved to another image.
printf '{"repository":"%s","digest":"%s"}' "${repo#*/}" "$digest" > payload.json
openssl pkeyutl -sign -rawin -inkey key.pem -in payload.json -out payload.sig
oras attach $oras_flags --artifact-type application/vnd.example.signature.v1 "$ref" \
  payload.json:application/json payload.sig:application/octet-stream >/dev/null

# 5. Verify: list the referrers, fetch each by digest, check what it says.
oras discover $oras_flags --format json "$ref" > referrers.json
only() { # only ARTIFACT_TYPE: the one referrer of that type
  local d
  d=$(jq -r --arg t "$1" '[.referrers[] | select(.artifactType == $t) | .digest] | if length == 1 then .[0] else error("want exactly one \($t) referrer, have \(length)") end' referrers.json)
  echo "$d"
}
sbom_digest=$(only application/spdx+json)
sig_digest=$(only application/vnd.example.signature.v1)
echo "referrers: sbom $sbom_digest, signature $sig_digest"

mkdir -p got/sbom got/sig
oras pull $oras_flags -o got/sbom "$repo@$sbom_digest" >/dev/null
oras pull $oras_flags -o got/sig "$repo@$sig_digest" >/dev/null
cmp -s sbom.spdx.json got/sbom/sbom.spdx.json || { echo "the SBOM fetched differs from the one attached" >&2; exit 1; }
[ "$(jq -r '.packages[0].checksums[0].checksumValue' got/sbom/sbom.spdx.json)" = "${digest#sha256:}" ] \
  || { echo "the SBOM describes another image" >&2; exit 1; }
[ "$(jq -r .digest got/sig/payload.json)" = "$digest" ] || { echo "the signature is for another image" >&2; exit 1; }
openssl pkeyutl -verify -pubin -inkey key.pub -rawin -in got/sig/payload.json -sigfile got/sig/payload.sig >/dev/null \
  || { echo "bad signature" >&2; exit 1; }
# And a forged payload must not verify with the same signature.
printf '{"repository":"%s","digest":"sha256:%064d"}' "${repo#*/}" 0 > forged.json
if openssl pkeyutl -verify -pubin -inkey key.pub -rawin -in forged.json -sigfile got/sig/payload.sig >/dev/null 2>&1; then
  echo "a forged payload verified: the check is broken" >&2; exit 1
fi
echo "verified: $ref is signed by key.pub and has an SBOM that names it"
