#!/usr/bin/env bash
# Builds CoreDNS, the cluster DNS of the dev cluster (scripts/dev-cluster.sh), from its upstream Go module at a
# pinned release (Debian bookworm has no CoreDNS), and caches the binary outside the repo:
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/coredns/<COREDNS_VERSION>/coredns
#
# v1.14.7 requires k8s.io/client-go v0.35.4, the release tools/kube/go.mod pins, so the build shares the Kubernetes
# build's module and build caches and compiles only what CoreDNS adds.
# Output (stdout): "coredns=<path>". Progress goes to stderr.
# Options: --check  exit 1 (printing nothing on stdout) instead of building when the cache is cold.
set -euo pipefail

COREDNS_VERSION=v1.14.7   # github.com/coredns/coredns (v1.15.0 needs client-go v0.37 and Go 1.26)

cache_root=${CONNLAT_CACHE:-$HOME/.cache/connlat}
coredns="$cache_root/coredns/$COREDNS_VERSION/coredns"

case "${1:-}" in
  "") check_only=false ;;
  --check) check_only=true ;;
  *) echo "build-coredns.sh: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

if [[ -x $coredns ]]; then echo "coredns=$coredns"; exit 0; fi
if $check_only; then echo "build-coredns.sh: coredns $COREDNS_VERSION not built under $cache_root" >&2; exit 1; fi
command -v go >/dev/null || { echo "build-coredns.sh: 'go' is not on PATH (Go >= 1.25 is needed)" >&2; exit 1; }

export GOMODCACHE="$cache_root/kube/gomod" GOCACHE="$cache_root/kube/gocache"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
started=$SECONDS
dir=$(dirname "$coredns")
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
echo "build-coredns.sh: go install github.com/coredns/coredns@$COREDNS_VERSION" >&2
GOBIN="$tmp" go install -ldflags="-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
mv -f "$tmp/coredns" "$coredns"   # only once built: an interrupted build leaves no half-written binary
rm -rf "$tmp"
echo "build-coredns.sh: built coredns in $((SECONDS - started))s" >&2
echo "coredns=$coredns"
