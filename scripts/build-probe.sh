#!/usr/bin/env bash
# Builds connlat-probe (bpf-tools/connlat-probe: CO-RE BPF object, bpftool skeleton, loader with libbpf linked
# statically) and caches the binary outside the repo, keyed by a hash of its sources, the architecture and the
# pinned toolchain (Debian clang, libbpf-dev, bpftool):
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/probe/<hash>/connlat-probe
#
# Idempotent: when the binary exists it only prints its path.
# Output (stdout): one line "connlat-probe=<path>". Progress goes to stderr.
# Options: --check  exit 1 (printing nothing on stdout) instead of building when the cache is cold.
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "build-probe.sh: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

src=bpf-tools/connlat-probe
toolchain() { # what the build depends on besides the sources; a missing tool hashes as "none"
  uname -m
  for p in clang-14 libbpf-dev bpftool; do dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || echo "$p none"; done
}
hash=$( { cat "$src/Makefile" "$src"/*.c "$src"/*.h; toolchain; } | sha256sum | cut -c1-16)
cache_root=${CONNLAT_CACHE:-$HOME/.cache/connlat}
dir="$cache_root/probe/$hash"
probe="$dir/connlat-probe"

if [[ -x $probe ]]; then echo "connlat-probe=$probe"; exit 0; fi
if $check_only; then
  echo "build-probe.sh: connlat-probe ($hash) not built under $cache_root" >&2
  exit 1
fi
for tool in clang bpftool make gcc; do
  command -v "$tool" >/dev/null || { echo "build-probe.sh: '$tool' is not on PATH (scripts/setup.sh installs it)" >&2; exit 1; }
done
[[ -r /sys/kernel/btf/vmlinux || -n ${VMLINUX_BTF:-} ]] || {
  echo "build-probe.sh: no kernel BTF at /sys/kernel/btf/vmlinux to make vmlinux.h from; set VMLINUX_BTF" >&2
  exit 1
}

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "build-probe.sh: building connlat-probe ($hash)" >&2
make -s -C "$src" OUTPUT="$tmp" ${VMLINUX_BTF:+VMLINUX_BTF="$VMLINUX_BTF"} >&2
# into place only once built: an interrupted build never leaves a half-written binary behind
mv -f "$tmp/connlat-probe" "$probe"
echo "connlat-probe=$probe"
