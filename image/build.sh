#!/usr/bin/env bash
# Builds the stacksmith operator image from the Containerfile with buildah, without a container
# daemon: the static binary is built on the host (cargo, glibc linked in statically) and handed
# to buildah as the Containerfile's stage `build`, so only the image's own stage runs (no base
# image is pulled: it is `scratch`). docs/image.md explains it.
#
# Usage: image/build.sh [--binary PATH] [--out DIR] [--image NAME]
#   --binary PATH  use this static stacksmith binary instead of building one in release mode
#   --out DIR      where the results go (default: <cargo target dir>/image)
#   --image NAME   the image name without tag (default: ghcr.io/stacksmith-io/stacksmith, the
#                  hub chart's default image.repository); the tag is the workspace version
#
# Result: DIR/stacksmith-<version>.oci.tar, an OCI image archive named NAME:<version> (load it
# with `podman load -i`, push it with `skopeo copy oci-archive:... docker://NAME:<version>`),
# and DIR/stacksmith-<version>.digest, the manifest digest.
#
# Idempotent: every run starts from an empty DIR/context and a private buildah store under DIR,
# removed again at the end. Installs buildah (and binutils for readelf) with apt-get when they
# are missing, as root or through sudo. Layer timestamps and the image's creation time are
# SOURCE_DATE_EPOCH, else the time of the checked-out commit, so two builds of one commit with
# the same binary give the same digest.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=ghcr.io/stacksmith-io/stacksmith
binary=
out=

log() { printf '[image-build] %s\n' "$*" >&2; }
usage() { log "usage: image/build.sh [--binary PATH] [--out DIR] [--image NAME] (see its header)"; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --image) image=${2:?--image needs a name}; shift 2 ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 2
  fi
}

# Installs the Debian packages that provide the given commands (command=package ...).
need() {
  local pkgs=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || pkgs+=("${pair#*=}")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# The workspace version: [workspace.package] version in Cargo.toml.
version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$repo/Cargo.toml")
[ -n "$version" ] || { log "no [workspace.package] version in $repo/Cargo.toml"; exit 1; }

target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac # cargo runs in $repo
if [ -z "$binary" ]; then
  log "building stacksmith $version (release, static)"
  (cd "$repo" && RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --release --locked -p stacksmith --target x86_64-unknown-linux-gnu)
  binary=$target_dir/x86_64-unknown-linux-gnu/release/stacksmith
fi
[ -f "$binary" ] || { log "no binary at $binary"; exit 2; }

# Static: no program interpreter and no shared library needed.
need readelf=binutils
if readelf -lW "$binary" | grep -q 'Requesting program interpreter'; then
  log "$binary is dynamically linked (it has a program interpreter); build it with RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu"
  exit 1
fi
if readelf -dW "$binary" | grep -q '(NEEDED)'; then
  log "$binary needs shared libraries: $(readelf -dW "$binary" | grep '(NEEDED)' | tr -s ' ' | tr '\n' ' ')"
  exit 1
fi

need buildah=buildah
out=${out:-$target_dir/image}
mkdir -p "$out"
out=$(cd "$out" && pwd)
context=$out/context
store=$out/buildah-storage
run=$out/buildah-run
archive=$out/stacksmith-$version.oci.tar
cleanup() { rm -rf "$context" "$store" "$run"; }
trap cleanup EXIT
cleanup
rm -f "$archive" "$out/stacksmith-$version.digest"

bash "$repo/image/rootfs.sh" "$binary" "$context/rootfs"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}
buildah=(buildah --root "$store" --runroot "$run" --storage-driver vfs)
log "building $image:$version"
BUILDAH_ISOLATION=chroot "${buildah[@]}" build --quiet \
  --isolation chroot \
  --file "$repo/Containerfile" \
  --build-context "build=$context" \
  --build-arg "VERSION=$version" \
  --identity-label=false \
  --timestamp "$epoch" \
  --tag "$image:$version" \
  "$context" >/dev/null
"${buildah[@]}" push --quiet --digestfile "$out/stacksmith-$version.digest" \
  "$image:$version" "oci-archive:$archive:$image:$version"
log "wrote $archive ($image:$version, $(cat "$out/stacksmith-$version.digest"))"
printf '%s\n' "$archive"
