#!/usr/bin/env bash
# Builds the real Kubernetes the tests run against from the upstream Go modules pinned in tools/kube/go.mod (its
# `tool` lines: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl), and
# caches the binaries outside the repo:
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/kube/<k8s-version>/{etcd,kube-apiserver,...}
#
# Idempotent: when the binaries for the pinned manifest exist it only prints their paths.
# Output (stdout): one line "<program>=<path>" per program. Progress goes to stderr.
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
# The programs are the manifest's `tool` lines: etcd, the control plane, the node (kubelet, kube-proxy) and kubectl.
mapfile -t packages < <(awk '/^tool \(/ { t = 1; next } t && /^\)/ { exit } t { print $1 }' "$manifest_dir/go.mod")
programs=()
for p in "${packages[@]}"; do n=${p%/v3}; n=${n##*/}; [[ $n == server ]] && n=etcd; programs+=("$n"); done
stamp="$out_dir/manifest.sha256"
manifest_sum="$(cat "$manifest_dir/go.mod" "$manifest_dir/go.sum" | sha256sum | cut -d' ' -f1)"

print_paths() { for p in "${programs[@]}"; do printf '%s=%s\n' "$p" "$out_dir/$p"; done; }
all_built() { for p in "${programs[@]}"; do [[ -x "$out_dir/$p" ]] || return 1; done; }

if all_built && [[ -f "$stamp" && "$(cat "$stamp")" == "$manifest_sum" ]]; then
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

# One `go build` of every main package: they share most of their ~2,400 packages, so one compile serves all.
rm -f "$stamp"
started=$SECONDS
echo "build-kube.sh: building ${programs[*]} into $out_dir" >&2
tmp="$out_dir/.build"
rm -rf "$tmp"; mkdir -p "$tmp"
(cd "$manifest_dir" && go build -ldflags="-s -w$version_ldflags" -o "$tmp/" "${packages[@]}")
for p in "${programs[@]}"; do mv -f "$tmp/$([[ $p == etcd ]] && echo server || echo "$p")" "$out_dir/$p"; done
rmdir "$tmp"
echo "build-kube.sh: built ${#programs[@]} programs in $((SECONDS - started))s" >&2
echo "$manifest_sum" >"$stamp"
print_paths
