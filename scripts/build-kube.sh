#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests run against (kube-apiserver + etcd) from the
# upstream Go modules pinned in tools/kube/go.mod, and caches the binaries outside the repo:
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/kube/<k8s-version>/{kube-apiserver,etcd}
#
# Idempotent: when the binaries for the pinned manifest exist it only prints their paths.
# Output (stdout): two lines "kube-apiserver=<path>" and "etcd=<path>". Progress goes to stderr.
# Options: --check  exit 1 (printing nothing on stdout) instead of building when the cache is cold.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest_dir="$repo_root/tools/kube"
cache_root="${CONNLAT_CACHE:-$HOME/.cache/connlat}/kube"

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "build-kube.sh: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "build-kube.sh: 'go' is not on PATH (Go >= 1.25 is needed to build kube-apiserver)" >&2; exit 1; }

# The versions come from the manifest, so the cache key can never drift from what is built.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$manifest_dir/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }' "$manifest_dir/go.mod")"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { echo "build-kube.sh: cannot read k8s.io/kubernetes / etcd versions from $manifest_dir/go.mod" >&2; exit 1; }

out_dir="$cache_root/$k8s_version"
apiserver="$out_dir/kube-apiserver"
etcd="$out_dir/etcd"
stamp="$out_dir/manifest.sha256"
manifest_sum="$(cat "$manifest_dir/go.mod" "$manifest_dir/go.sum" | sha256sum | cut -d' ' -f1)"

print_paths() { printf 'kube-apiserver=%s\netcd=%s\n' "$apiserver" "$etcd"; }

if [[ -x "$apiserver" && -x "$etcd" && -f "$stamp" && "$(cat "$stamp")" == "$manifest_sum" ]]; then
  print_paths
  exit 0
fi
if $check_only; then
  echo "build-kube.sh: kube-apiserver $k8s_version / etcd $etcd_version not built in $out_dir" >&2
  exit 1
fi

# Module and build caches live next to the binaries so reruns (and CI cache restores) are fast,
# and nothing is written to the user's global Go caches.
export GOMODCACHE="$cache_root/gomod"
export GOCACHE="$cache_root/gocache"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath -buildvcs=false" CGO_ENABLED=0
mkdir -p "$out_dir" "$GOMODCACHE" "$GOCACHE"

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
# What the upstream release build stamps in, so /version reports the real release.
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # <package> <output> <extra ldflags>
  local started=$SECONDS
  echo "build-kube.sh: building $1 -> $2" >&2
  (cd "$manifest_dir" && go build -ldflags="-s -w$3" -o "$2.tmp" "$1")
  mv -f "$2.tmp" "$2"
  echo "build-kube.sh: built $(basename "$2") in $((SECONDS - started))s" >&2
}

rm -f "$stamp"
build go.etcd.io/etcd/server/v3 "$etcd" ""
build k8s.io/kubernetes/cmd/kube-apiserver "$apiserver" "$version_ldflags"
echo "$manifest_sum" >"$stamp"
print_paths
