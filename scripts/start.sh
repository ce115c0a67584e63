#!/usr/bin/env bash
# Runs the agent on this host from a fresh clone: installs libbpf-tools (Debian/Ubuntu) and the npm packages
# (including the pinned Node 24) when missing, mounts tracefs, then runs the agent with that Node. Needs root, or
# CAP_BPF + CAP_PERFMON (see `connlat doctor`). The last step execs node itself, so the agent gets this script's PID
# and a service manager's SIGTERM (systemd's stop) reaches it: npx's wrapper exited on SIGTERM and left the agent
# running as an orphan holding its port (test/e2e/start-script.test.ts). --max-semi-space-size=1 caps V8's young
# generation: ~60 MB less RSS at rest, ~5% more CPU per line (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x /usr/sbin/tcpconnlat || ! -x /usr/sbin/tcpstates ]] && command -v apt-get >/dev/null; then
  echo "connlat: installing libbpf-tools" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libbpf-tools >/dev/null
fi
if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "connlat: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
# connlat-probe (ours, the source `auto` prefers) is built from bpf-tools/connlat-probe, cached by its source hash;
# without a compiler the agent still runs, on tcpconnlat or tcpstates.
if [[ -z ${CONNLAT_CONNLAT_PROBE_PATH:-} && ! -x /usr/sbin/connlat-probe ]]; then
  probe_deps=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make gcc pkg-config)
  if ! dpkg-query -W -f='${Status}\n' "${probe_deps[@]}" 2>/dev/null | grep -vq 'install ok installed' \
     || { command -v apt-get >/dev/null && echo "connlat: installing connlat-probe's build tools" >&2 \
          && apt-get install -y -qq --no-install-recommends "${probe_deps[@]}" >/dev/null; }; then
    probe=$(scripts/build-probe.sh | sed -n 's/^connlat-probe=//p') || probe=""
    [[ -n $probe ]] && export CONNLAT_CONNLAT_PROBE_PATH=$probe
  fi
fi
exec node_modules/.bin/node --max-semi-space-size=1 bin/connlat.js "$@"
