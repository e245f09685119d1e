#!/usr/bin/env bash
# Installs the control-plane binaries the stacksmith test bed runs:
#   etcd (Debian package etcd-server), and kube-apiserver, kube-controller-manager and kubectl
#   v1.20.2, built from Debian bookworm's `kubernetes` source package with the vendored
#   modern-go/reflect2 replaced by v1.0.2 (v1.0.1 crashes under Go >= 1.18). (kubectl is built
#   rather than installed from Debian's kubernetes-client, which clashes with other kubectl
#   packages some machines carry.)
#
# Usage: install-binaries.sh CACHE_DIR
# Result: CACHE_DIR/{kube-apiserver,kube-controller-manager,etcd,kubectl}. Idempotent; safe to
# run concurrently (serialised by a lock file next to CACHE_DIR).
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

binaries=(kube-apiserver kube-controller-manager kubectl)

missing_binaries() {
  for b in "${binaries[@]}"; do [ -x "$cache_dir/$b" ] || echo "$b"; done
}

complete() {
  [ -z "$(missing_binaries)" ] && [ -x "$cache_dir/etcd" ]
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

mapfile -t to_build < <(missing_binaries)
if [ ${#to_build[@]} -eq 0 ]; then
  ln -sf /usr/bin/etcd "$cache_dir/etcd"
  log "done: $cache_dir"
  exit 0
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

log "building ${to_build[*]} (several minutes)"
what=""
for b in "${to_build[@]}"; do what="$what cmd/$b"; done
mkdir -p "$work/src/.go/src/k8s.io" "$work/home"
ln -s "$work/src" "$work/src/.go/src/k8s.io/kubernetes"
(
  cd "$work/src/.go/src/k8s.io/kubernetes"
  export GOPATH="$work/src/.go" GO111MODULE=off CGO_ENABLED=0 HOME="$work/home" \
         GOCACHE="$work/home/gocache" PATH="/usr/lib/go-1.19/bin:$PATH"
  make WHAT="${what# }" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; exit 1; }
)

mkdir -p "$cache_dir"
for b in "${to_build[@]}"; do
  cp "$work/src/_output/local/bin/linux/amd64/$b" "$cache_dir/$b.partial"
  mv "$cache_dir/$b.partial" "$cache_dir/$b"
done
ln -sf /usr/bin/etcd "$cache_dir/etcd"
log "done in $(( $(date +%s) - started )) s: $cache_dir"
