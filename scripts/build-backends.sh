#!/usr/bin/env bash
# Builds the OTLP backends the end-to-end tests query (issue 12), each from its own upstream Go module pinned in a
# wrapper module under tools/backends/<name>/go.mod (one `tool` line each), and caches the binaries outside the repo:
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/backends/<name>/<sha256(go.mod+go.sum)[:12]>/<name>
#
#   victoria-metrics  metrics: OTLP /opentelemetry/v1/metrics, remote write, PromQL/MetricsQL   (Apache-2.0)
#   victoria-logs     logs: OTLP /insert/opentelemetry/v1/logs, LogsQL, tenants by AccountID   (Apache-2.0)
#   jaeger            traces: Jaeger v2 (an OpenTelemetry Collector distribution), OTLP in, /api/v3 (Apache-2.0)
# Grafana Loki, Tempo and Mimir are AGPL and are not built here (see otel-config/README.md).
#
# Idempotent: a backend whose binary exists for its pinned manifest is not rebuilt.
# Output (stdout): one line "<name>=<path>" per backend. Progress goes to stderr.
# Options: --check  exit 1 (printing nothing on stdout) when any backend is not built; --path  print the paths only.
# Go module and build caches are shared with scripts/build-collector.sh ($CACHE/go/{mod,build}): Jaeger v2 compiles
# many of the Collector's packages.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${CONNLAT_CACHE:-$HOME/.cache/connlat}"

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --path) mode=path ;;
  *) echo "build-backends.sh: unknown option '$1' (expected --check, --path or nothing)" >&2; exit 2 ;;
esac

names=()
for dir in "$repo_root"/tools/backends/*/; do names+=("$(basename "$dir")"); done

binary_of() { # name -> cached binary path (keyed by the wrapper module's go.mod and go.sum)
  local dir="$repo_root/tools/backends/$1" key
  key="$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)"
  echo "$cache_root/backends/$1/$key/$1"
}

missing=()
for n in "${names[@]}"; do [[ -x "$(binary_of "$n")" ]] || missing+=("$n"); done

if [[ $mode == build && ${#missing[@]} -gt 0 ]]; then
  command -v go >/dev/null || { echo "build-backends.sh: 'go' is not on PATH (Go >= 1.25 is needed)" >&2; exit 1; }
  export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
  mkdir -p "$GOMODCACHE" "$GOCACHE"
  for n in "${missing[@]}"; do
    dir="$repo_root/tools/backends/$n"
    pkg="$(awk '$1 == "tool" { print $2; exit }' "$dir/go.mod")"
    [[ -n $pkg ]] || { echo "build-backends.sh: no 'tool' line in $dir/go.mod" >&2; exit 1; }
    out="$(binary_of "$n")"
    mkdir -p "$(dirname "$out")"
    started=$SECONDS
    echo "build-backends.sh: building $n ($pkg)" >&2
    # Built beside the final path and moved into place: an interrupted build never leaves a half-written binary.
    (cd "$dir" && go build -ldflags='-s -w' -o "$out.tmp" "$pkg")
    mv -f "$out.tmp" "$out"
    echo "build-backends.sh: built $n in $((SECONDS - started))s" >&2
  done
  missing=()
fi

if [[ $mode == check && ${#missing[@]} -gt 0 ]]; then
  echo "build-backends.sh: not built: ${missing[*]}" >&2
  exit 1
fi
for n in "${names[@]}"; do printf '%s=%s\n' "$n" "$(binary_of "$n")"; done
