#!/usr/bin/env bash
# Builds connlat's container images for real, without any registry, with podman (scripts/podman.sh: connlat's own
# storage and containers.conf, never the machine's), and saves each as an OCI archive in a cache outside the repo:
#
#   ${CONNLAT_CACHE:-$HOME/.cache/connlat}/images/<name>-<key>.oci.tar
#
# 1. base      docker.io/library/debian:bookworm-slim  debootstrap --variant=minbase from this machine's Debian mirror
# 2. node      docker.io/library/node:24-bookworm-slim base + the pinned Node 24 of the `node` devDependency
#              (node_modules/node/bin/node) + the npm release that Node bundles, from the npm registry
# 3. agent     ghcr.io/connlat/connlat-agent:0.1.0           bpf-tools/Dockerfile.agent (context: repo root)
# 4. gateway   ghcr.io/connlat/connlat-gateway:0.1.0         bpf-tools/Dockerfile.gateway + scripts/build-collector.sh
# 5. workload  localhost/connlat-test-workload:1             test/support/workload/Dockerfile (tests' pods)
# 6. tools-debian, tools-source  localhost/connlat/libbpf-tools:0.26.0-{debian,source}  bpf-tools/Dockerfile.{debian,source}
#
# 1 and 2 carry the exact names the Dockerfiles' FROM lines use, so every Dockerfile builds unchanged with
# `podman build --pull=never`. Each <key> hashes what goes into the image: Debian release + mirrors + this script's
# recipe for the base; the base's key + Node and npm versions + recipe for node; for the others the parent keys + the
# Dockerfile + every file (path, mode, content) of the build context that the Dockerfile's .dockerignore lets in (the
# Collector binary for the gateway). An image is rebuilt only when its key changes; a cached archive is loaded back
# into podman when its storage lacks that image.
#
# stdout: one line per image a cluster or test uses, NAME=/abs/path/archive.oci.tar (agent, gateway, workload,
# tools-debian, tools-source); progress on stderr. `ctr -n k8s.io images import <archive>` names the image as above.
# Options: --check  exit 1 (nothing on stdout) when any image is not built.
# Needs root, podman, debootstrap; network only to the Debian mirror and the npm registry (RUN steps use the host's
# network: --network=host, so podman creates no bridge or netns). Measured timings: deploy/README.md ("Images").
set -euo pipefail

SUITE=bookworm
NPM_VERSION=11.19.0 # the npm that Node v24.21.0 bundles (its CHANGELOG: "upgrade npm to 11.19.0" in 24.20.0)

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CONNLAT_CACHE:-$HOME/.cache/connlat}/images
podman="$repo_root/scripts/podman.sh"

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "build-images.sh: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }
hash12() { sha256sum | cut -c1-12; }

# The Debian mirrors this machine's apt uses (deb822 .sources or one-line sources.list), for the release and for
# its security suite; CONNLAT_DEBIAN_MIRROR / CONNLAT_DEBIAN_SECURITY_MIRROR override them.
apt_mirror() { # <suite>
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v s="$suite" 'BEGIN{RS="";FS="\n"} {u="";ok=0; for(i=1;i<=NF;i++){ if($i ~ /^URIs:/){sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); u=a[1]} if($i ~ /^Suites:/){n=split($i,b,/[ \t]+/); for(j=2;j<=n;j++) if(b[j]==s) ok=1} } if(ok&&u!=""){print u; exit}}' "$f"
  done | head -n 1 | grep . && return
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v s="$suite" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1)==s) { print $i; exit } }' | grep .
}
mirror=${CONNLAT_DEBIAN_MIRROR:-$(apt_mirror "$SUITE" || true)}
security_mirror=${CONNLAT_DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security" || echo http://deb.debian.org/debian-security)}
[[ -n $mirror ]] || die "no Debian $SUITE mirror in /etc/apt/sources.list{,.d}; set CONNLAT_DEBIAN_MIRROR"

# Hash of a build context: the Dockerfile, its ignore file, and every file the ignore file lets in (path, mode, content).
# Only allow-list ignore files are understood ("**" first, then "!path" or "!dir/**" lines), which is what ours are.
context_key() { # <dockerfile> [<context dir>]  (no context dir: the Dockerfile copies nothing from its context)
  local dockerfile=$1 context=${2:-} ignore="$1.dockerignore" patterns=()
  if [[ -z $context ]]; then
    patterns=()
  elif [[ -f $ignore ]]; then
    local line first=true
    while IFS= read -r line; do
      [[ -z $line || $line == \#* ]] && continue
      if $first; then
        [[ $line == '**' ]] || die "$ignore: only allow-list ignore files ('**' then '!path' lines) are supported"
        first=false; continue
      fi
      [[ $line == !* ]] || die "$ignore: only '!path' lines may follow '**' (found '$line')"
      line=${line#!}; patterns+=("${line%/\*\*}")
    done <"$ignore"
  else
    patterns=(.)
  fi
  {
    sha256sum "$dockerfile" | cut -d' ' -f1
    if [[ -f $ignore ]]; then sha256sum "$ignore" | cut -d' ' -f1; fi
    if ((${#patterns[@]})); then # content and mode (COPY keeps the mode) of each file
      (cd "$context" && find "${patterns[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0r stat -c '%a %n' &&
        find "${patterns[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
    fi
  } | hash12
}

# name -> ref, archive path; filled in as the keys are computed.
declare -A ref archive
missing=()
plan() { # <name> <ref> <key>
  ref[$1]=$2
  archive[$1]="$cache/$1-$3.oci.tar"
  [[ -f ${archive[$1]} ]] || missing+=("$1")
}

node_bin="$repo_root/node_modules/node/bin/node"
[[ -x $node_bin ]] || die "$node_bin not found: run npm ci first (the node devDependency is the image's Node)"
node_version=$("$node_bin" --version)
collector=$("$repo_root/scripts/build-collector.sh" --path)

# How each image is made (run later, under the lock, in $work).
build_base() {
  local root="$work/rootfs"
  log "debootstrap --variant=minbase $SUITE from $mirror"
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # As the official image: deb822 sources for the release, its updates and security suite; no docs, man pages or
  # locales installed by later apt-get steps (slim); no package lists or .debs left in a layer.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  (cd "$root" && find usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete; rm -rf usr/share/man/* usr/share/info/* usr/share/locale/* \
    var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* var/log/* etc/hostname etc/resolv.conf)
  : >"$root/etc/resolv.conf"
  tar --numeric-owner -C "$root" -c . | "$podman" import -q --change 'CMD ["bash"]' - "${ref[base]}" >/dev/null
}

build_node() {
  # The official image's layout: node in /usr/local/bin, npm in /usr/local/lib/node_modules, a `node` user (1000).
  local ctx="$work/node"
  mkdir -p "$ctx"
  cp "$node_bin" "$ctx/node"
  # Unpacked here, not with ADD + mv in the image: a mv in a later layer would store npm twice (14 MiB).
  (cd "$ctx" && npm pack -q "npm@$NPM_VERSION" >/dev/null && mkdir npm &&
    tar -xzf "npm-$NPM_VERSION.tgz" -C npm --strip-components=1 --no-same-owner && rm "npm-$NPM_VERSION.tgz")
  cat >"$ctx/Dockerfile" <<EOF
FROM ${ref[base]}
ENV NODE_VERSION=${node_version#v}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
CMD ["node"]
EOF
  build "${ref[node]}" "$ctx/Dockerfile" "$ctx"
}

build_agent() { build "${ref[agent]}" "$repo_root/bpf-tools/Dockerfile.agent" "$repo_root" "${trust[@]}"; }
build_gateway() {
  if [[ ! -x $collector ]]; then # normally setup.sh built it already
    collector=$("$repo_root/scripts/build-collector.sh")
    archive[gateway]="$cache/gateway-$(gateway_key).oci.tar"
  fi
  local ctx="$work/gateway"
  mkdir -p "$ctx"
  cp "$collector" "$ctx/otelcol-connlat"
  build "${ref[gateway]}" "$repo_root/bpf-tools/Dockerfile.gateway" "$ctx"
}
build_workload() { build "${ref[workload]}" "$repo_root/test/support/workload/Dockerfile" "$repo_root/test/support/workload"; }
# Dockerfile.debian and .source copy nothing from their context: an empty one.
build_tools-debian() { mkdir -p "$work/empty"; build "${ref[tools-debian]}" "$repo_root/bpf-tools/Dockerfile.debian" "$work/empty"; }
build_tools-source() { mkdir -p "$work/empty"; build "${ref[tools-source]}" "$repo_root/bpf-tools/Dockerfile.source" "$work/empty" "${trust[@]}"; }

# Keys as plain assignments, so a failing context_key (an ignore file it cannot read) stops the script (set -e).
# The two bases are made by this script: their recipes (build_base, build_node below) are part of their keys.
base_key=$( { printf '%s\n' "$SUITE" "$mirror" "$security_mirror"; declare -f build_base; } | hash12)
node_key=$( { printf '%s\n' "$base_key" "$node_version" "$NPM_VERSION"; declare -f build_node; } | hash12)
agent_key=$( { echo "$node_key"; context_key "$repo_root/bpf-tools/Dockerfile.agent" "$repo_root"; } | hash12)
workload_key=$( { echo "$base_key"; context_key "$repo_root/test/support/workload/Dockerfile" "$repo_root/test/support/workload"; } | hash12)
tools_debian_key=$( { echo "$base_key"; context_key "$repo_root/bpf-tools/Dockerfile.debian"; } | hash12)
tools_source_key=$( { echo "$base_key"; context_key "$repo_root/bpf-tools/Dockerfile.source"; } | hash12)
# Keyed by the Collector binary itself; "unbuilt" until scripts/build-collector.sh made it (build_gateway re-keys).
gateway_key() { { echo "$base_key"; sha256sum <"$repo_root/bpf-tools/Dockerfile.gateway"; if [[ -x $collector ]]; then sha256sum <"$collector"; else echo unbuilt; fi; } | hash12; }
gateway_key=$(gateway_key)

plan base docker.io/library/debian:bookworm-slim "$base_key"
plan node docker.io/library/node:24-bookworm-slim "$node_key"
plan agent ghcr.io/connlat/connlat-agent:0.1.0 "$agent_key"
plan gateway ghcr.io/connlat/connlat-gateway:0.1.0 "$gateway_key"
plan workload localhost/connlat-test-workload:1 "$workload_key"
plan tools-debian localhost/connlat/libbpf-tools:0.26.0-debian "$tools_debian_key"
plan tools-source localhost/connlat/libbpf-tools:0.26.0-source "$tools_source_key"
outputs=(agent gateway workload tools-debian tools-source)

print_archives() { local n; for n in "${outputs[@]}"; do printf '%s=%s\n' "$n" "${archive[$n]}"; done; }
if ((${#missing[@]} == 0)); then print_archives; exit 0; fi
if $check_only; then
  echo "build-images.sh: not built under $cache: ${missing[*]}" >&2
  exit 1
fi

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, podman with its storage under $cache)"
for tool in podman debootstrap; do command -v "$tool" >/dev/null || die "'$tool' is not installed (Debian package $tool)"; done
mkdir -p "$cache"
# One build at a time per cache (several checkouts may share it): they tag the same refs.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "another build-images.sh holds $cache/.lock; waiting for it"
  flock 9
fi
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
declare -A seconds

# The image ID (its config's digest) an OCI archive holds.
archive_id() { # <archive>
  local manifest
  manifest=$(tar -xOf "$1" index.json | grep -o '"digest":"sha256:[0-9a-f]*"' | head -n 1 | cut -d: -f3 | tr -d '"')
  tar -xOf "$1" "blobs/sha256/$manifest" | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]*' | cut -d: -f2
}

# Makes sure podman's storage has image <name> as its archive holds it, or builds and saves it with build_<name>.
# Checkouts sharing this cache may each have built a different image under the same ref; the ID decides.
ensure() { # <name>
  local name=$1 started=$SECONDS
  if [[ -f ${archive[$name]} ]]; then
    [[ $("$podman" image inspect -f '{{.Id}}' "${ref[$name]}" 2>/dev/null) == "$(archive_id "${archive[$name]}")" ]] ||
      "$podman" load -q -i "${archive[$name]}" >/dev/null
    return
  fi
  log "building $name (${ref[$name]})"
  "build_$name"
  # Write beside the final path and rename: an interrupted save never leaves a partial archive that looks built.
  rm -f "${archive[$name]}.tmp"
  "$podman" save -q --format oci-archive -o "${archive[$name]}.tmp" "${ref[$name]}"
  mv "${archive[$name]}.tmp" "${archive[$name]}"
  # Keep the 3 newest keys of each image (other checkouts sharing the cache may use the older ones).
  ls -t "$cache/$name"-*.oci.tar | tail -n +4 | xargs -r rm -f
  seconds[$name]=$((SECONDS - started))
  log "built $name in ${seconds[$name]}s: $(du -h "${archive[$name]}" | cut -f1) archive, $("$podman" image inspect -f '{{.Size}}' "${ref[$name]}" | numfmt --to=iec) image"
}

# podman build of a Dockerfile, as `docker build` would: local bases only, the host's network for RUN steps, and a
# layer cache in podman's storage (an agent rebuilt for a change in src/ reuses its npm ci layer: 19 s instead of 90 s).
build() { # <ref> <dockerfile> <context> [more podman build args]
  local image=$1 dockerfile=$2 context=$3
  shift 3
  "$podman" build --pull=never --network=host --layers -q -t "$image" -f "$dockerfile" "$@" "$context" >/dev/null
}


# The build machine's extra TLS trust (e.g. an egress proxy's CA, which NODE_EXTRA_CA_CERTS names), handed to the RUN
# steps that fetch over HTTPS and never written into an image: a folder mounted over /usr/local/etc (empty in Debian,
# so the mount leaves no mount point behind) with npm's global npmrc (cafile=) and the CA file, which
# Dockerfile.source's curl is pointed at with --build-arg CURL_CA_BUNDLE. Without it the images' own CAs are used.
trust=()
if [[ -n ${NODE_EXTRA_CA_CERTS:-} && -f $NODE_EXTRA_CA_CERTS ]]; then
  mkdir -p "$work/trust"
  cp "$NODE_EXTRA_CA_CERTS" "$work/trust/build-ca.crt"
  echo 'cafile=/usr/local/etc/build-ca.crt' >"$work/trust/npmrc"
  trust=(-v "$work/trust:/usr/local/etc:ro" --build-arg CURL_CA_BUNDLE=/usr/local/etc/build-ca.crt)
fi

total=$SECONDS
for name in base node agent workload tools-debian tools-source gateway; do ensure "$name"; done
# Untagged images left by rebuilds, once no build or test of the last day can still be using them.
"$podman" image prune -f --filter until=24h >/dev/null
log "all images ready in $((SECONDS - total))s"
print_archives
