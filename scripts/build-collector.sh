#!/usr/bin/env bash
# Build connlat's gateway OpenTelemetry Collector (otelcol-connlat) from otel-config/builder-config.yaml with the
# OpenTelemetry Collector Builder (ocb), into a cache folder outside the repo keyed by the manifest's hash:
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/collector/<sha256(manifest)[:12]>/otelcol-connlat
# Rebuilt only when the manifest (or OCB_VERSION) changes. Prints the binary's path on stdout, nothing else;
# progress goes to stderr. `build-collector.sh --path` prints the path without building.
#
# Go module and build caches live under the cache folder (GOMODCACHE=$CACHE/go/mod, GOCACHE=$CACHE/go/build), shared
# with any other Go build that uses the same paths. ocb only generates the sources; this script resolves the modules
# and compiles them itself (see step 2 for why) with -trimpath -ldflags='-s -w' and CGO_ENABLED=0.
# Measured on the 2-core VM: see otel-config/README.md ("Building").
#
# Env: CONNLAT_CACHE (cache root); GOPROXY/GOFLAGS as usual.
set -euo pipefail

OCB_VERSION=v0.148.0 # must match the release pinned in the manifest

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest="$repo_root/otel-config/builder-config.yaml"
cache_root=${CONNLAT_CACHE:-$HOME/.cache/connlat}

command -v go >/dev/null || { echo "build-collector: 'go' not found on PATH (Go >= 1.25 needed)" >&2; exit 1; }
[[ -f $manifest ]] || { echo "build-collector: manifest not found: $manifest" >&2; exit 1; }

# Upstream fixes not yet in the pinned release, each applied to a copy of its module (step 1b); part of the key.
patches=("$repo_root"/otel-config/patches/*.patch)
[[ -e ${patches[0]} ]] || patches=()
key=$( { cat "$manifest"; echo "ocb=$OCB_VERSION"; cat "${patches[@]}" /dev/null; } | sha256sum | cut -c1-12)
out_dir="$cache_root/collector/$key"
binary="$out_dir/otelcol-connlat"

# --path: print where the binary is (or would be) and stop; used by the tests to find it without building.
# --check: exit 1 instead of building when it is not built (scripts/setup.sh).
if [[ ${1:-} == --path || -x $binary ]]; then
  echo "$binary"
  exit 0
fi
if [[ ${1:-} == --check ]]; then
  echo "build-collector: otelcol-connlat ($key) not built in $out_dir" >&2
  exit 1
fi

export GOMODCACHE="$cache_root/go/mod"
export GOCACHE="$cache_root/go/build"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
mkdir -p "$GOMODCACHE" "$GOCACHE" "$cache_root/bin"

ocb="$cache_root/bin/ocb-$OCB_VERSION"
if [[ ! -x $ocb ]]; then
  echo "build-collector: installing ocb $OCB_VERSION" >&2
  GOBIN="$cache_root/bin/.ocb-$OCB_VERSION" go install -trimpath -ldflags='-s -w' \
    "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  mv "$cache_root/bin/.ocb-$OCB_VERSION/builder" "$ocb"
  rmdir "$cache_root/bin/.ocb-$OCB_VERSION"
fi

# Build in a scratch folder next to the final one, then move into place: an interrupted build never leaves a
# half-written binary at the path the tests look for.
mkdir -p "$cache_root/collector"
work=$(mktemp -d "$cache_root/collector/.build-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-collector: building otelcol-connlat ($key) in $work" >&2
start=$SECONDS

# 1. ocb generates the sources (main.go, components.go, go.mod) from the manifest; output_path goes into a copy.
sed "s|^dist:|dist:\n  output_path: $work/src|" "$manifest" >"$work/builder-config.yaml"
"$ocb" --config="$work/builder-config.yaml" --skip-get-modules --skip-compilation >&2

# 1b. Each otel-config/patches/*.patch names its module on a "Module: <path> <version>" line: copy that module from
#     the module cache, apply the patch (an upstream commit, see the file's header) and replace the module with the copy.
for patch_file in "${patches[@]}"; do
  read -r mod_path mod_version < <(sed -n 's/^Module: //p' "$patch_file")
  [[ -n ${mod_path:-} && -n ${mod_version:-} ]] || { echo "build-collector: $patch_file has no 'Module: <path> <version>' line" >&2; exit 1; }
  mod_dir=$(go mod download -json "$mod_path@$mod_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $mod_dir ]] || { echo "build-collector: cannot download $mod_path@$mod_version" >&2; exit 1; }
  copy="$work/src/patched/$(basename "$patch_file" .patch)"
  mkdir -p "$(dirname "$copy")" && cp -r "$mod_dir" "$copy" && chmod -R u+w "$copy"
  (cd "$copy" && git apply "$patch_file") || { echo "build-collector: $patch_file does not apply to $mod_path@$mod_version" >&2; exit 1; }
  (cd "$work/src" && go mod edit -replace="$mod_path@$mod_version=./patched/$(basename "$copy")")
  echo "build-collector: $mod_path@$mod_version patched with $(basename "$patch_file")" >&2
done

# 2. Resolve modules ourselves instead of ocb's plain `go mod tidy`: tidy also wants checksums for the test-only
#    dependencies of our components, and one of those (otlpencodingextension@v0.148.0, used only by
#    fileexporter's tests) fails checksum-database verification on the module proxy. -e lets tidy skip what is
#    never compiled into the binary; everything that is compiled is still verified by `go build` below.
(cd "$work/src" && go mod tidy -e -compat=1.25) >&2 2> >(grep -v '^go: downloading' >&2)

# 3. Compile: static, no symbol tables, no local paths (same flags ocb would use).
(cd "$work/src" && go build -trimpath -ldflags='-s -w' -o otelcol-connlat .) >&2
echo "build-collector: built in $((SECONDS - start))s" >&2

mkdir -p "$out_dir"
cp "$manifest" "$out_dir/builder-config.yaml"
cp "$work/src/go.mod" "$work/src/go.sum" "$out_dir/"
mv "$work/src/otelcol-connlat" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
