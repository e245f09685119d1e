#!/usr/bin/env bash
# Installs the data-path servers the stacksmith test bed runs: Prometheus and Alertmanager with
# their checkers, from Debian's packages `prometheus` and `prometheus-alertmanager` (installed
# with --no-install-recommends).
#
# The packages enable and start services of their own (a systemd unit, or an init script where
# there is no systemd). The test bed starts its own servers on free ports, so those services are
# kept from starting during the install (a temporary /usr/sbin/policy-rc.d answering 101, which
# invoke-rc.d and deb-systemd-invoke honour; an existing one is put back afterwards), then
# stopped and disabled in case they started anyway. The install fails when, afterwards, something
# new listens on the packages' ports 9090 or 9093.
#
# Usage: install-data-servers.sh
# Result, on stdout, one `name=path` line each:
#   prometheus=/usr/bin/prometheus
#   promtool=/usr/bin/promtool
#   alertmanager=/usr/bin/prometheus-alertmanager
#   amtool=/usr/bin/amtool
# Idempotent (exit 0 without root when already installed); concurrent runs are serialised by a
# lock file under ${XDG_CACHE_HOME:-~/.cache}/stacksmith.
set -euo pipefail

packages=(prometheus prometheus-alertmanager)
services=(prometheus prometheus-alertmanager)
ports=(9090 9093)
declare -A binaries=(
  [prometheus]=/usr/bin/prometheus
  [promtool]=/usr/bin/promtool
  [alertmanager]=/usr/bin/prometheus-alertmanager
  [amtool]=/usr/bin/amtool
)
policy=/usr/sbin/policy-rc.d

log() { printf '[testbed-install] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; exit 2
  fi
}

complete() {
  for name in "${!binaries[@]}"; do [ -x "${binaries[$name]}" ] || return 1; done
}

report() {
  for name in prometheus promtool alertmanager amtool; do echo "$name=${binaries[$name]}"; done
}

listening() { # PORT: whether something accepts connections on 127.0.0.1:PORT
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

if complete; then report; exit 0; fi

lock_dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/stacksmith
mkdir -p "$lock_dir"
exec 9>"$lock_dir/install-data-servers.lock"
flock 9
if complete; then report; exit 0; fi

started=$(date +%s)
busy_before=()
for port in "${ports[@]}"; do
  if listening "$port"; then busy_before+=("$port"); fi
done

# Keep the packages' services from starting while they are installed.
policy_backup=""
restore_policy() {
  if [ -n "$policy_backup" ]; then as_root mv -f "$policy_backup" "$policy"
  else as_root rm -f "$policy"
  fi
}
if [ -e "$policy" ]; then
  policy_backup=$(as_root mktemp "$policy.stacksmith.XXXXXX")
  as_root cp -p "$policy" "$policy_backup"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# stacksmith test bed: no service starts during this install\nexit 101\n' \
  | as_root tee "$policy" >/dev/null
as_root chmod 755 "$policy"

log "installing Debian packages: ${packages[*]}"
apt_opts=(-o DPkg::Lock::Timeout=300)
as_root apt-get "${apt_opts[@]}" update -qq
as_root env DEBIAN_FRONTEND=noninteractive \
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

restore_policy
trap - EXIT

# Should a service have started anyway (or been started before), stop it, and keep it from
# starting at boot.
for service in "${services[@]}"; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ]; then
    as_root "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done

for port in "${ports[@]}"; do
  case " ${busy_before[*]} " in *" $port "*)
    log "note: 127.0.0.1:$port was already in use before this install (not by these packages)"
    continue ;;
  esac
  for _ in $(seq 50); do listening "$port" || break; sleep 0.1; done
  if listening "$port"; then
    log "a service of the packages still listens on 127.0.0.1:$port; stop it and run again"
    exit 1
  fi
done

complete || { log "the packages did not provide ${binaries[*]}"; exit 1; }
versions=$(dpkg-query -W -f='${Package} ${Version}, ' "${packages[@]}")
log "done in $(( $(date +%s) - started )) s: ${versions%, }"
report
