# Sourced by scripts/dev-cluster.sh: the node's own images, made without a registry.
#   pause:   Debian's static catatonit in pause mode (-P), the sandbox image containerd's CRI runs in every pod.
#   busybox: Debian's static busybox with its applet links, for test workloads (a shell, httpd, nc, wget).
# Built with buildah from scratch in a throwaway storage (nothing lands in the machine's podman store) and cached
# as OCI archives under $CONNLAT_CACHE/dev-cluster, keyed by the Debian package version.

image_tag() { dpkg-query -W -f='${Version}' "$1" | tr -c 'A-Za-z0-9_.\n-' '_'; }
pause_image="localhost/connlat/pause:catatonit-$(image_tag catatonit)"
busybox_image="localhost/connlat/busybox:$(image_tag busybox-static)"

# build_image REF ARCHIVE ROOTFS_DIR ENTRYPOINT_JSON: a one-layer image of ROOTFS_DIR as an OCI archive.
build_image() {
  local ref=$1 archive=$2 rootfs=$3 entrypoint=$4 tmp container
  tmp=$(mktemp -d)
  local buildah=(buildah --root "$tmp/storage" --runroot "$tmp/run" --storage-driver vfs)
  container=$("${buildah[@]}" from scratch)
  "${buildah[@]}" copy --quiet "$container" "$rootfs" / >/dev/null
  "${buildah[@]}" config --entrypoint "$entrypoint" --os linux --arch amd64 "$container"
  "${buildah[@]}" commit --quiet "$container" "$ref" >/dev/null
  "${buildah[@]}" push --quiet "$ref" "oci-archive:$archive.partial:$ref"
  mv -f "$archive.partial" "$archive"
  rm -rf "$tmp"
}

# Prints "REF=ARCHIVE" for the pause and busybox images, building the ones not cached yet.
local_images() {
  local cache="${CONNLAT_CACHE:-$HOME/.cache/connlat}/dev-cluster" rootfs
  mkdir -p "$cache"
  local pause_archive="$cache/${pause_image//[\/:]/_}.tar" busybox_archive="$cache/${busybox_image//[\/:]/_}.tar"
  if [[ ! -s $pause_archive ]]; then
    rootfs=$(mktemp -d)
    install -m 755 /usr/bin/catatonit "$rootfs/pause"
    build_image "$pause_image" "$pause_archive" "$rootfs" '["/pause", "-P"]'
    rm -rf "$rootfs"
  fi
  if [[ ! -s $busybox_archive ]]; then
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/www"
    install -m 755 /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"; done
    chmod 1777 "$rootfs/tmp"
    build_image "$busybox_image" "$busybox_archive" "$rootfs" '["/bin/sh"]'
    rm -rf "$rootfs"
  fi
  echo "$pause_image=$pause_archive"
  echo "$busybox_image=$busybox_archive"
}
