#!/usr/bin/env bash
# Builds the two renderers the deploy tests use, from their upstream Go modules at pinned releases, and caches the
# binaries outside the repo (neither tool is packaged in Debian bookworm):
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/helm/<HELM_VERSION>/helm
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/kustomize/<KUSTOMIZE_VERSION>/kustomize
#
# Idempotent: when both binaries exist it only prints their paths.
# Output (stdout): two lines "helm=<path>" and "kustomize=<path>". Progress goes to stderr.
# Options: --check  exit 1 (printing nothing on stdout) instead of building when the cache is cold.
set -euo pipefail

HELM_VERSION=v4.3.1       # helm.sh/helm/v4/cmd/helm
KUSTOMIZE_VERSION=v5.8.2  # sigs.k8s.io/kustomize/kustomize/v5 (v5.8.3 needs Go 1.27; Go here is 1.26)

cache_root=${CONNLAT_CACHE:-$HOME/.cache/connlat}
helm="$cache_root/helm/$HELM_VERSION/helm"
kustomize="$cache_root/kustomize/$KUSTOMIZE_VERSION/kustomize"

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "build-helm.sh: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

print_paths() { printf 'helm=%s\nkustomize=%s\n' "$helm" "$kustomize"; }
if [[ -x $helm && -x $kustomize ]]; then print_paths; exit 0; fi
if $check_only; then
  echo "build-helm.sh: helm $HELM_VERSION / kustomize $KUSTOMIZE_VERSION not built under $cache_root" >&2
  exit 1
fi
command -v go >/dev/null || { echo "build-helm.sh: 'go' is not on PATH (Go >= 1.26 is needed)" >&2; exit 1; }

# Same shared module/build caches as scripts/build-collector.sh.
export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
mkdir -p "$GOMODCACHE" "$GOCACHE"

install_one() { # <module/cmd@version> <final path> [extra ldflags]
  local started=$SECONDS dir tmp
  dir=$(dirname "$2")
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  echo "build-helm.sh: go install $1" >&2
  GOBIN="$tmp" go install -ldflags="-s -w${3:-}" "$1"
  # Install into place only once built: an interrupted build never leaves a half-written binary behind.
  mv -f "$tmp/$(basename "$2")" "$2"
  rm -rf "$tmp"
  echo "build-helm.sh: built $(basename "$2") in $((SECONDS - started))s" >&2
}

# The release build stamps its version; without it `helm version` says v4.3 and chart kubeVersion checks misjudge.
[[ -x $helm ]] || install_one "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" "$helm" " -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
[[ -x $kustomize ]] || install_one "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" "$kustomize"
print_paths
