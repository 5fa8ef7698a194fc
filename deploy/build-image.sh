#!/usr/bin/env bash
# Builds the Dockerfile without a Docker daemon (Debian's buildah, as root) and smoke-runs the
# image: `tmf-events --help` as the image's user. `make image` calls this.
#
# Public base images cannot be pulled on the build machines this is made for, so when the
# Dockerfile's base (python:3.11-slim-bookworm) is not in buildah's local storage a stand-in
# is built from Debian bookworm packages (debootstrap: Python 3.11, pip, venv) and tagged
# with the base's name. Where the real base can be pulled, `buildah pull` it first (or use
# `docker build`) and the stand-in is never made.
#
#   IMAGE=localhost/tmf-events:ci deploy/build-image.sh [CONTEXT_DIR]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
context=${1:-$root}
image=${IMAGE:-localhost/tmf-events:ci}
runtime=runc # crun fails on some VMs' cgroup setups

log() { printf 'build-image: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  echo "build-image: needs root (buildah without a user namespace setup)" >&2
  exit 1
fi

if ! command -v buildah >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing buildah runc debootstrap"
  apt-cache show buildah >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah runc debootstrap >/dev/null
fi

base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$context/Dockerfile")
[[ -n "$base" ]] || { echo "build-image: no ARG PYTHON_IMAGE in the Dockerfile" >&2; exit 1; }

# A short name: found whether it was pulled or is the local stand-in (localhost/<name>).
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  log "building a stand-in for $base from Debian bookworm packages"
  # The same mirror apt uses on this machine.
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  [[ -n "$mirror" ]] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list)
  rootfs=$(mktemp -d)
  ctr=""
  cleanup() {
    rm -rf "$rootfs"
    if [[ -n "$ctr" ]]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  }
  trap cleanup EXIT
  debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  buildah commit --quiet --format docker "$ctr" "$base" >/dev/null
  cleanup
  trap - EXIT
fi

log "building $image"
buildah bud --pull=never --format docker --layers --runtime "$runtime" --network host \
  -v /etc/ssl/certs:/etc/ssl/certs:ro -t "$image" "$context"

log "smoke run: tmf-events --help"
ctr=$(buildah from --pull=never "$image")
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah run --runtime "$runtime" "$ctr" -- tmf-events --help >/dev/null
user=$(buildah inspect --type image --format '{{.Docker.Config.User}}' "$image")
health=$(buildah inspect --type image --format '{{.Docker.Config.Healthcheck}}' "$image")
whoami=$(buildah run --runtime "$runtime" "$ctr" -- python -c 'import os; print(os.getuid())')
[[ "$whoami" != 0 ]] || { echo "build-image: the image runs as root" >&2; exit 1; }
[[ "$health" == *healthz* ]] || { echo "build-image: no HEALTHCHECK in the image" >&2; exit 1; }
log "PASS: $image (user $user, uid $whoami, entrypoint tmf-events)"
