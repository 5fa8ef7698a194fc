#!/usr/bin/env bash
# Checks the deploy artifacts with their real tools, no Docker engine or cluster needed:
# Dockerfile, docker-compose.yml, the Helm chart, Prometheus config and alert rules, the
# Grafana dashboard, then the pytest suite tests/deploy. Installs the tools into .tools/
# first (scripts/install-deploy-tools.sh, idempotent).
#
# Prints one PASS/FAIL line per check (with the tool's output under a FAIL) and exits
# non-zero when any check fails. PYTHON selects the interpreter for pytest (default: the
# active venv, else .venv/bin/python, else python3); it must have the project's dependencies.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! bin=$(bash scripts/install-deploy-tools.sh); then
  echo "FAIL  installing the deploy tools (scripts/install-deploy-tools.sh)"
  exit 1
fi
export PATH="$bin:$PATH"
export HELM_CACHE_HOME="$root/.tools/helm/cache"
export HELM_CONFIG_HOME="$root/.tools/helm/config"
export HELM_DATA_HOME="$root/.tools/helm/data"

chart=deploy/helm/tmf-events
features="$chart/ci/features-values.yaml"
kube_version=1.30.0

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    PYTHON="$VIRTUAL_ENV/bin/python"
  elif [[ -x .venv/bin/python ]]; then
    PYTHON=.venv/bin/python
  else
    PYTHON=python3
  fi
fi

failed=()
total=0
started=$(date +%s)

# check NAME COMMAND...: runs the command, prints PASS/FAIL with its duration.
check() {
  local name=$1 out status t0 ms
  shift
  total=$((total + 1))
  t0=${EPOCHREALTIME/./}
  set +e
  out=$("$@" 2>&1)
  status=$?
  set -e
  ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
  if [[ $status -eq 0 ]]; then
    printf 'PASS  %-50s %4d.%01ds\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
  else
    printf 'FAIL  %-50s %4d.%01ds\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
    printf '%s\n' "$out" | sed 's/^/      | /'
    failed+=("$name")
  fi
}

helm_template() { # VALUES_FILE...
  local args=()
  for values in "$@"; do args+=(-f "$values"); done
  helm template tmf-events "$chart" --namespace tmf-events --kube-version "$kube_version" \
    --api-versions monitoring.coreos.com/v1 "${args[@]}"
}
validate_manifests() { # VALUES_FILE...
  local rendered
  rendered=$(helm_template "$@") || return 1
  printf '%s\n' "$rendered" | kubernetes-validate --strict --quiet -k "$kube_version" - 2>&1 \
    | { grep -v "^WARN - Couldn't find schema for kind \(ServiceMonitor\|PrometheusRule\) " || true; }
  return "${PIPESTATUS[1]}"
}
run_pytest() {
  "$PYTHON" -c 'import pytest, yaml, pydantic_settings' 2>/dev/null || {
    echo "$PYTHON cannot import pytest, yaml and pydantic_settings: install the project's dev"
    echo "dependencies into it or point PYTHON at a venv that has them."
    return 1
  }
  "$PYTHON" -m pytest tests/deploy -q -m deploy -p no:cacheprovider
}

check "shellcheck scripts" shellcheck scripts/check-deploy.sh scripts/install-deploy-tools.sh deploy/build-image.sh
check "hadolint Dockerfile" hadolint Dockerfile
check "docker-compose config" docker-compose -f docker-compose.yml --profile load config -q
check "compose-spec schema (check-jsonschema)" \
  check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
check "yamllint" yamllint -s docker-compose.yml deploy/ .yamllint
check "helm lint (defaults)" helm lint --strict --kube-version "$kube_version" "$chart"
check "helm lint (features)" helm lint --strict --kube-version "$kube_version" -f "$features" "$chart"
check "helm template | kubernetes-validate (defaults)" validate_manifests
check "helm template | kubernetes-validate (features)" validate_manifests "$features"
check "promtool check config" promtool check config deploy/prometheus.yml
check "promtool check rules" promtool check rules deploy/alerts.yml
check "promtool test rules" promtool test rules deploy/alerts_test.yml
check "pytest tests/deploy" run_pytest

printf '%d checks, %d failed, %ss\n' "$total" "${#failed[@]}" "$(($(date +%s) - started))"
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "deploy checks: PASS"
