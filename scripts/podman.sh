#!/usr/bin/env bash
# podman with connlat's own storage and settings, kept apart from the machine's: images, layers and podman's
# database under ${CONNLAT_CACHE:-~/.cache/connlat}/images/podman/{storage,run,tmp}, network configs under .../net
# (never /etc/cni/net.d, where a node's CNI lives), settings from scripts/containers.conf (ulimits this machine allows).
# Used by scripts/build-images.sh and the image tests; run it as `scripts/podman.sh images` etc. to look around.
# Containers are meant to run with --network=host (builds and tests), so podman creates no bridge or netns.
set -euo pipefail
dir=${CONNLAT_CACHE:-$HOME/.cache/connlat}/images/podman
mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/net"
export CONTAINERS_CONF
CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf"
exec podman --root "$dir/storage" --runroot "$dir/run" --tmpdir "$dir/tmp" --network-config-dir "$dir/net" \
  --storage-driver overlay --events-backend none "$@"
