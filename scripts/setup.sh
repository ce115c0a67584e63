#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, and does nothing that is already done:
# Debian packages, the npm packages (including the pinned Node 24), tracefs, and the slow Go builds (our Collector
# distribution, the OTLP backends, Kubernetes, CoreDNS, helm/kustomize, the container images), which are cached outside the repo under
# $CONNLAT_CACHE (default ~/.cache/connlat) keyed by their pinned versions. `npm test` runs it first (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONNLAT_CACHE="${CONNLAT_CACHE:-$HOME/.cache/connlat}"
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n== setup: %s (%s)\n' "$*" "$(date -u +%T)" >&2; }

# One list of what the tests need from Debian; each entry says what needs it.
need=(
  libbpf-tools              # tcpconnlat, tcpstates
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make gcc pkg-config  # connlat-probe (scripts/build-probe.sh)
  prometheus                # remote-write backend of the collector e2e tests, promtool
  debootstrap               # the local Debian base image (no registry here), scripts/build-images.sh
  podman                    # builds and runs our images (scripts/build-images.sh, scripts/podman.sh; runc, buildah below)
  iproute2 socat openssl coreutils procps util-linux curl ca-certificates
  python3                   # hostile process names (prctl); the delay line
  # The single-node dev cluster (scripts/dev-cluster.sh): runtime, CNI plugins, kube-proxy's iptables, the local
  # pause (catatonit) and test-workload (busybox) images built with buildah; nft for its leftovers test (and for the
  # connlat-probe fidelity tests: dropped SYNs and ICMP rejects in a test netns).
  containerd runc containernetworking-plugins iptables nftables buildah catatonit busybox-static
)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  step "Debian packages: ${missing[*]}"
  if [[ $(id -u) != 0 ]]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root (sudo npm test) or install them" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! mountpoint -q /sys/kernel/tracing; then
  step "tracefs (tcpstates attaches to a tracepoint)"
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "setup: tracefs could not be mounted; eBPF tests will skip" >&2
fi

if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "npm packages (includes the pinned Node 24)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The cached builds, in two lanes at once: a cold build spends much of its time downloading modules and linking on
# one core, so two lanes keep both cores busy (separate Go caches, so they never wait on each other). Within a lane
# the order matters: build-images.sh after build-collector.sh (the gateway image holds that Collector); helm after
# the collector and the backends (same Go build cache); CoreDNS after Kubernetes (same cache, many shared packages).
build() { # one build script, unless its --check says it is built; prints how long it took
  local script=$1 started=$SECONDS
  "$script" --check >/dev/null 2>&1 && return 0
  if [[ $script == scripts/build-images.sh && $(id -u) != 0 ]]; then
    echo "setup: $script needs root (debootstrap, podman); the image tests will skip" >&2
    return 0
  fi
  step "$script"
  "$script" >/dev/null 2> >(sed -u "s|^|[${script#scripts/}] |" >&2) || { echo "setup: $script failed" >&2; return 1; }
  echo "setup: $script done in $((SECONDS - started)) s ($(date -u +%T))" >&2
}
lane() { local s; for s in "$@"; do build "$s" || return 1; done; }
lane scripts/build-collector.sh scripts/build-backends.sh scripts/build-helm.sh scripts/build-images.sh & lane_a=$!
lane scripts/build-kube.sh scripts/build-coredns.sh scripts/build-probe.sh & lane_b=$!
trap 'kill "$lane_a" "$lane_b" 2>/dev/null' INT TERM
failed=0
wait "$lane_a" || failed=1
wait "$lane_b" || failed=1
trap - INT TERM
((failed == 0)) || { echo "setup: a build failed (see above)" >&2; exit 1; }
