#!/usr/bin/env bash
# Builds the current control plane and the real child operators the stacksmith test bed runs,
# from their published Go modules (nothing else is fetched):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl   k8s.io/kubernetes
#   etcd                                                               go.etcd.io/etcd/server/v3
#   kwok (fake nodes and pod status)                                   sigs.k8s.io/kwok
#   prometheus-operator                                                github.com/prometheus-operator/prometheus-operator
#
# Usage: install-current.sh CACHE_DIR [COMPONENT...]
#   COMPONENT: kubernetes | kubectl | etcd | kwok | prometheus-operator (default: all).
#   `kubernetes` is kube-apiserver, kube-controller-manager and kube-scheduler.
# Result: the binaries in CACHE_DIR, CACHE_DIR/versions (one "name version" line each), and
# CACHE_DIR/crds/ (every CRD of the prometheus-operator release, as it ships them).
# Exit 3 when Go or the Go module proxy cannot be had (the caller then falls back to the Debian
# v1.20 build). Idempotent; concurrent runs are serialised by a lock file next to CACHE_DIR.
set -euo pipefail

cache_dir=${1:?usage: install-current.sh CACHE_DIR [COMPONENT...]}
shift
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kubernetes etcd kwok prometheus-operator kubectl)

# The versions built. Kubernetes' staging modules are published as v0.<minor>.<patch>.
kubernetes_version=v1.37.2
staging_version=v0.37.2
etcd_version=v3.6.16
kwok_version=v0.8.0
prometheus_operator_version=v0.93.0

log() { printf '[testbed-install] %s\n' "$*" >&2; }

mkdir -p "$cache_dir"
exec 9>"$cache_dir.lock"
flock 9

binaries_of() {
  case "$1" in
    kubernetes) echo kube-apiserver kube-controller-manager kube-scheduler ;;
    kubectl) echo kubectl ;;
    etcd) echo etcd ;;
    kwok) echo kwok ;;
    prometheus-operator) echo prometheus-operator ;;
    *) log "unknown component $1"; exit 2 ;;
  esac
}

missing() {
  local b
  for b in $(binaries_of "$1"); do [ -x "$cache_dir/$b" ] || return 0; done
  # The operator comes with every CRD it watches (it waits for all of them).
  if [ "$1" = prometheus-operator ] && ! [ -s "$cache_dir/crds/monitoring.coreos.com_probes.yaml" ]; then
    return 0
  fi
  return 1
}

todo=()
for c in "${components[@]}"; do missing "$c" && todo+=("$c"); done
if [ ${#todo[@]} -eq 0 ]; then exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"
  else log "no Go toolchain: cannot build the current control plane"; exit 3
  fi
fi


export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
work="$cache_dir.build"
mkdir -p "$work"

# Writes a go.mod for a small main module of ours ($1: directory, $2: module path, rest: lines).
write_module() {
  local dir=$1 module=$2
  shift 2
  mkdir -p "$dir"
  { printf 'module %s\n\ngo 1.26.0\n\n' "$module"; printf '%s\n' "$@"; } > "$dir/go.mod"
}

# go mod tidy, then go build of the given packages into $out with the given ldflags.
build_module() {
  local dir=$1 ldflags=$2
  shift 2
  (
    cd "$dir"
    # `go get` resolves what the commands need (not the tests of every dependency, which
    # `go mod tidy` would also pull in, ambiguous imports included).
    go get "$@" >"$dir/get.log" 2>&1 || { tail -n 30 "$dir/get.log" >&2; exit 1; }
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/bin/" "$@" >"$dir/build.log" 2>&1 \
      || { tail -n 30 "$dir/build.log" >&2; exit 1; }
  )
}

install_bin() { # $1: built file, $2: name in the cache
  cp "$1" "$cache_dir/$2.partial"
  mv "$cache_dir/$2.partial" "$cache_dir/$2"
}

record_version() { # $1 name, $2 version
  touch "$cache_dir/versions"
  grep -v "^$1 " "$cache_dir/versions" > "$cache_dir/versions.new" || true
  echo "$1 $2" >> "$cache_dir/versions.new"
  mv "$cache_dir/versions.new" "$cache_dir/versions"
}

kubernetes_module() {
  local dir="$work/kubernetes"
  mkdir -p "$dir"
  local mod
  mod=$(go mod download -json "k8s.io/kubernetes@$kubernetes_version" 2>/dev/null \
        | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' || true)
  [ -n "$mod" ] || { log "k8s.io/kubernetes@$kubernetes_version: not served"; exit 3; }
  # Kubernetes replaces every staging module with ./staging/...; we pin the published ones.
  local replaces=("replace (")
  local staging
  for staging in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod"); do
    replaces+=("	$staging => $staging $staging_version")
  done
  replaces+=(")")
  write_module "$dir" stacksmith.test/testbed/kubernetes "require k8s.io/kubernetes $kubernetes_version" "" "${replaces[@]}"
  cat > "$dir/tools.go" <<'EOF'
//go:build tools

// The Kubernetes commands the test bed runs.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  echo "$dir"
}

kubernetes_ldflags() {
  local minor=${kubernetes_version#v1.}
  minor=${minor%%.*}
  local v=k8s.io/component-base/version
  echo "-X $v.gitVersion=$kubernetes_version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
}

build_kubernetes() { # $@: commands
  local dir pkgs=() c
  dir=$(kubernetes_module)
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  build_module "$dir" "$(kubernetes_ldflags)" "${pkgs[@]}"
  for c in "$@"; do install_bin "$dir/bin/$c" "$c"; done
  record_version kubernetes "$kubernetes_version"
}

build_etcd() {
  local dir="$work/etcd"
  write_module "$dir" stacksmith.test/testbed/etcd "require go.etcd.io/etcd/server/v3 $etcd_version"
  mkdir -p "$dir/etcd"
  cat > "$dir/etcd/main.go" <<'EOF'
// The etcd server, as the upstream etcd binary starts it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  build_module "$dir" "" ./etcd
  install_bin "$dir/bin/etcd" etcd
  record_version etcd "$etcd_version"
}

build_kwok() {
  local dir="$work/kwok"
  write_module "$dir" stacksmith.test/testbed/kwok "require sigs.k8s.io/kwok $kwok_version"
  printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n' > "$dir/tools.go"
  build_module "$dir" "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" sigs.k8s.io/kwok/cmd/kwok
  install_bin "$dir/bin/kwok" kwok
  record_version kwok "$kwok_version"
}

build_prometheus_operator() {
  local dir="$work/prometheus-operator"
  local po=github.com/prometheus-operator/prometheus-operator
  # Its own go.mod replaces these two nested modules with local directories; they are
  # published at the same version, so we require them instead.
  write_module "$dir" stacksmith.test/testbed/prometheus-operator \
    "require (" \
    "	$po $prometheus_operator_version" \
    "	$po/pkg/apis/monitoring $prometheus_operator_version" \
    "	$po/pkg/client $prometheus_operator_version" \
    ")"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/operator"\n' "$po" > "$dir/tools.go"
  build_module "$dir" "-X github.com/prometheus/common/version.Version=${prometheus_operator_version#v}" "$po/cmd/operator"
  install_bin "$dir/bin/operator" prometheus-operator
  # Every CRD the operator watches, exactly as its release ships them (it waits for all of
  # them before it reconciles anything).
  local module_dir
  module_dir=$(cd "$dir" && go list -m -f '{{.Dir}}' "$po")
  mkdir -p "$cache_dir/crds"
  cp "$module_dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$cache_dir/crds/"
  chmod u+w "$cache_dir"/crds/*.yaml
  record_version prometheus-operator "$prometheus_operator_version"
}

started=$(date +%s)
k8s_commands=()
for c in "${todo[@]}"; do
  case "$c" in
    kubernetes) k8s_commands+=(kube-apiserver kube-controller-manager kube-scheduler) ;;
    kubectl) k8s_commands+=(kubectl) ;;
  esac
done
for c in "${todo[@]}"; do
  case "$c" in
    etcd) log "building etcd $etcd_version"; build_etcd ;;
    kwok) log "building kwok $kwok_version"; build_kwok ;;
    prometheus-operator)
      log "building prometheus-operator $prometheus_operator_version"; build_prometheus_operator ;;
  esac
done
if [ ${#k8s_commands[@]} -gt 0 ]; then
  log "building ${k8s_commands[*]} $kubernetes_version (several minutes)"
  build_kubernetes "${k8s_commands[@]}"
fi
# The built copies are in the cache now; the modules' build outputs are not needed again.
rm -rf "$work"/*/bin
log "done in $(( $(date +%s) - started )) s: $cache_dir"
