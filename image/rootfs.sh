#!/usr/bin/env bash
# Lays out the file tree of the stacksmith image: the one thing both ways of building the image
# share (the `build` stage of the Containerfile, and image/build.sh on the host).
#
#   /usr/local/bin/stacksmith            the static binary (mode 0755)
#   /etc/passwd, /etc/group              root and the user `nonroot` (uid/gid 65532) the image runs as
#   /etc/nsswitch.conf                   users, groups and host names from files, then DNS
#   /etc/ssl/certs/ca-certificates.crt   Debian's CA bundle: the trust store the Kubernetes client
#                                        falls back to for a member kubeconfig without a CA
#   /tmp                                 mode 1777 (the chart mounts an emptyDir over it)
#
# Usage: rootfs.sh BINARY DEST
# DEST must not exist or be empty. Installs the Debian package ca-certificates when the bundle
# is missing (as root, or through sudo).
set -euo pipefail

binary=${1:?usage: rootfs.sh BINARY DEST}
dest=${2:?usage: rootfs.sh BINARY DEST}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

log() { printf '[image-rootfs] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 2
  fi
}

[ -f "$binary" ] || { log "no binary at $binary"; exit 2; }
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  log "$dest is not empty"
  exit 2
fi
if [ ! -s "$ca_bundle" ]; then
  log "installing the Debian package ca-certificates"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi

install -d -m 0755 "$dest" "$dest/usr" "$dest/usr/local" "$dest/usr/local/bin" \
  "$dest/etc" "$dest/etc/ssl" "$dest/etc/ssl/certs"
install -d -m 1777 "$dest/tmp"
install -m 0755 "$binary" "$dest/usr/local/bin/stacksmith"
install -m 0644 "$ca_bundle" "$dest/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' \
  'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' >"$dest/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$dest/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$dest/etc/nsswitch.conf"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/nsswitch.conf"
