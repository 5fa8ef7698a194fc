#!/usr/bin/env bash
# Makes sure the Prometheus server and promtool are on PATH: installs the Debian package
# "prometheus" when either is missing. tests/integration/test_metrics_prometheus.py runs the
# real server on 127.0.0.1 against a processor; CI calls this script before the tests.
#
# Idempotent and quiet: exits at once when both binaries are there, prints only on failure.
# No service is started: the package's init script is held back by a policy-rc.d (the
# tests run the server themselves, with their own config and data directory).
#
# Usage: scripts/prometheus.sh        (needs root, or sudo, and apt)
set -euo pipefail

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "prometheus/promtool missing and apt-get not available: install Prometheus by hand"
  exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    log "prometheus/promtool missing; installing them needs root (or sudo)"
    exit 1
  fi
  sudo=(sudo)
fi

policy=/usr/sbin/policy-rc.d
added_policy=0
cleanup() {
  if [[ $added_policy -eq 1 ]]; then
    "${sudo[@]}" rm -f "$policy"
  fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
  # 101 = "action forbidden": the package installs without starting its service.
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  added_policy=1
fi

out=$(mktemp)
trap 'cleanup; rm -f "$out"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" apt-get update -qq &&
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus; } >"$out" 2>&1; then
  cat "$out" >&2
  log "apt-get install prometheus failed"
  exit 1
fi

for tool in prometheus promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool still not on PATH after installing the Debian package"
    exit 1
  fi
done
