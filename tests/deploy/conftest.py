"""Fixtures for the deploy checks: the tools in .tools/, the rendered chart, the compose model.

The tools come from scripts/install-deploy-tools.sh (scripts/check-deploy.sh runs it first);
a test whose tool is missing is skipped with the install command as the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOOLS = ROOT / ".tools"
CHART = ROOT / "deploy" / "helm" / "tmf-events"
FEATURES_VALUES = CHART / "ci" / "features-values.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
KUBE_VERSION = "1.30.0"
RELEASE = "tmf-events"
NAMESPACE = "tmf-events"

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """Path of a deploy tool: .tools/bin first, then PATH; skip the test when it is missing."""
    local = TOOLS / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    pytest.skip(f"{name} is not installed: run scripts/install-deploy-tools.sh")


def run(
    args: Sequence[str], cwd: Path = ROOT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(TOOLS / "helm" / kind.lower())
    return subprocess.run(
        list(args),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def helm_template(
    values: Iterable[Path] = (),
    sets: Iterable[str] = (),
    chart: Path = CHART,
    release: str = RELEASE,
) -> subprocess.CompletedProcess[str]:
    args = [tool("helm"), "template", release, str(chart), "--namespace", NAMESPACE]
    args += ["--kube-version", KUBE_VERSION, "--api-versions", "monitoring.coreos.com/v1"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return run(args)


def render(values: Iterable[Path] = (), sets: Iterable[str] = (), **kwargs: Any) -> list[Manifest]:
    result = helm_template(values, sets, **kwargs)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def default_manifests() -> list[Manifest]:
    return render()


@pytest.fixture(scope="session")
def feature_manifests() -> list[Manifest]:
    return render([FEATURES_VALUES])


@pytest.fixture(scope="session", params=["defaults", "features"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    """Both value sets: the chart's defaults and every feature switched on."""
    name = "default_manifests" if request.param == "defaults" else "feature_manifests"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def find(manifests: list[Manifest], kind: str, suffix: str = "") -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]


def one(manifests: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = find(manifests, kind, suffix)
    assert len(found) == 1, (
        f"expected one {kind} *{suffix}, got {[m['metadata']['name'] for m in found]}"
    )
    return found[0]


def workloads(manifests: list[Manifest]) -> Iterator[Manifest]:
    for manifest in manifests:
        if manifest["kind"] in ("StatefulSet", "Deployment"):
            yield manifest


def compose_config(
    path: Path = COMPOSE_FILE, *config_args: str, profile: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f PATH [--profile P] config CONFIG_ARGS...` (no .env needed)."""
    profiles = ["--profile", profile] if profile else []
    return run(
        [tool("docker-compose"), "-f", str(path), *profiles, "config", *config_args],
        cwd=path.parent,
    )


@pytest.fixture(scope="session")
def compose_model() -> dict[str, Any]:
    """The normalised compose model with the `load` profile active (every service)."""
    result = compose_config(COMPOSE_FILE, "--format", "json", profile="load")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TMF_EVENTS_* variable from the calling shell leaks into a Settings check."""
    for name in list(os.environ):
        if name.upper().startswith("TMF_EVENTS_"):
            monkeypatch.delenv(name)
    return monkeypatch
