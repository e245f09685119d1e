#!/usr/bin/env bash
# Builds the Prometheus server that prometheus-operator v0.93.0 configures by default (v3.13.1,
# its `DefaultPrometheusVersion`), from its published Go module, with the Kubernetes service
# discovery (and the file and HTTP ones Prometheus always has) and no other: Debian's
# `prometheus` package is built without Kubernetes discovery, which the end-to-end test of
# `spec.metrics.scrape[].namespaces` runs for real.
#
# Usage: install-prometheus.sh CACHE_DIR
# Result: CACHE_DIR/prometheus (and CACHE_DIR/version). Exit 3 when Go or the Go module proxy
# cannot be had. Idempotent; concurrent runs are serialised by a lock file next to CACHE_DIR.
# The first build takes minutes (client-go, the TSDB, PromQL); later runs find it cached.
set -euo pipefail

cache_dir=${1:?usage: install-prometheus.sh CACHE_DIR}
version=v3.13.1
# Prometheus publishes v3.x.y as the Go module version v0.3xx.y.
module_version=v0.313.1

log() { printf '[install-prometheus] %s\n' "$*" >&2; }

mkdir -p "$cache_dir"
exec 9>"$cache_dir.lock"
flock 9

if [ -x "$cache_dir/prometheus" ] && [ "$(cat "$cache_dir/version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"
  else log "no Go toolchain: cannot build Prometheus $version"; exit 3
  fi
fi

export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
work="$cache_dir.build"
rm -rf "$work"
mkdir -p "$work"
printf 'module stacksmith.test/e2e/prometheus\n\ngo 1.26.0\n\nrequire github.com/prometheus/prometheus %s\n' \
  "$module_version" > "$work/go.mod"
if ! (cd "$work" && go mod download github.com/prometheus/prometheus >"$work/download.log" 2>&1); then
  tail -n 20 "$work/download.log" >&2
  log "github.com/prometheus/prometheus@$module_version: not served"
  exit 3
fi
log "building Prometheus $version with Kubernetes discovery (minutes, once)"
# remove_all_sd drops every discovery plugin but file and HTTP; enable_kubernetes_sd adds
# Kubernetes back. No web UI assets (the HTTP API is all the tests use).
v=github.com/prometheus/common/version
(
  cd "$work"
  go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $v.Version=${version#v} -X $v.Branch=release -X $v.Revision=module" \
    -o "$work/prometheus" github.com/prometheus/prometheus/cmd/prometheus >"$work/build.log" 2>&1
) || { tail -n 30 "$work/build.log" >&2; exit 1; }
cp "$work/prometheus" "$cache_dir/prometheus.partial"
mv "$cache_dir/prometheus.partial" "$cache_dir/prometheus"
echo "$version" > "$cache_dir/version"
rm -rf "$work"
log "installed $cache_dir/prometheus"
