#!/usr/bin/env bash
# Installs the control-plane binaries the stacksmith test bed runs:
#   etcd (Debian package etcd-server) and kube-apiserver + kube-controller-manager v1.20.2,
#   built from Debian bookworm's `kubernetes` source package with the vendored
#   modern-go/reflect2 replaced by v1.0.2 (v1.0.1 crashes under Go >= 1.18).
#
# Usage: install-binaries.sh CACHE_DIR
# Result: CACHE_DIR/{kube-apiserver,kube-controller-manager,etcd}. Idempotent; safe to run
# concurrently (serialised by a lock file in CACHE_DIR's parent).
set -euo pipefail

cache_dir=${1:?usage: install-binaries.sh CACHE_DIR}
k8s_tarball=kubernetes_1.20.5+really1.20.2.orig.tar.gz
k8s_sha256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc

log() { printf '[testbed-install] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 2
  fi
}

complete() {
  [ -x "$cache_dir/kube-apiserver" ] && [ -x "$cache_dir/kube-controller-manager" ] && [ -x "$cache_dir/etcd" ]
}

mkdir -p "$(dirname "$cache_dir")"
exec 9>"$cache_dir.lock"
flock 9
if complete; then exit 0; fi

started=$(date +%s)
log "installing Debian packages (Go 1.19, etcd, reflect2 v1.0.2)"
export DEBIAN_FRONTEND=noninteractive
pkgs=(golang-1.19-go etcd-server rsync golang-github-modern-go-reflect2-dev make ca-certificates dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/stacksmith-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching the kubernetes source package (bookworm)"
mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial" "$work/apt/preferences.d"
echo 'deb-src http://deb.debian.org/debian bookworm main' > "$work/apt/sources.list.d/src.list"
: > "$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list"
          -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
          -o "Dir::State::Lists=$work/apt/lists"
          -o "Dir::Etc::PreferencesParts=$work/apt/preferences.d"
          -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only kubernetes >/dev/null)
echo "$k8s_sha256  $work/$k8s_tarball" | sha256sum -c --quiet -

log "unpacking and patching vendored reflect2"
mkdir -p "$work/src"
tar -xzf "$work/$k8s_tarball" -C "$work/src" --strip-components=1
reflect_dst="$work/src/vendor/github.com/modern-go/reflect2"
reflect_src=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -f "$reflect_dst"/*.go "$reflect_dst"/*.s
for f in "$reflect_src"/*.go "$reflect_src"/*.s; do
  case "$f" in *_test.go) continue ;; esac
  [ -e "$f" ] && cp "$f" "$reflect_dst/"
done

log "building kube-apiserver and kube-controller-manager (several minutes)"
mkdir -p "$work/src/.go/src/k8s.io" "$work/home"
ln -s "$work/src" "$work/src/.go/src/k8s.io/kubernetes"
(
  cd "$work/src/.go/src/k8s.io/kubernetes"
  export GOPATH="$work/src/.go" GO111MODULE=off CGO_ENABLED=0 HOME="$work/home" \
         GOCACHE="$work/home/gocache" PATH="/usr/lib/go-1.19/bin:$PATH"
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; exit 1; }
)

staging="$cache_dir.partial"
rm -rf "$staging"; mkdir -p "$staging"
cp "$work/src/_output/local/bin/linux/amd64/kube-apiserver" \
   "$work/src/_output/local/bin/linux/amd64/kube-controller-manager" "$staging/"
ln -sf /usr/bin/etcd "$staging/etcd"
rm -rf "$cache_dir"; mv "$staging" "$cache_dir"
log "done in $(( $(date +%s) - started )) s: $cache_dir"
