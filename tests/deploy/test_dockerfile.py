"""Dockerfile and .dockerignore: hadolint plus what a linter does not know about this image."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from processor.config import setting_env_names

from .conftest import ROOT, run, tool

pytestmark = pytest.mark.deploy

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = run([tool("hadolint"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_latest_base_image(tmp_path: Path, dockerfile: str) -> None:
    broken = dockerfile.replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:latest AS runtime")
    assert broken != dockerfile
    (tmp_path / "Dockerfile").write_text(broken, encoding="utf-8")
    result = run([tool("hadolint"), str(tmp_path / "Dockerfile")])
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "Using latest is prone to errors"


def test_multi_stage_build_on_a_pinned_slim_base(dockerfile: str) -> None:
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert arg, "the base image is one ARG so both stages use the same interpreter"
    image = arg.group(1)
    assert image.startswith("python:3.11-slim-bookworm"), image
    assert not image.endswith(":latest")
    froms = [args for keyword, args in instructions(dockerfile) if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_runtime_stage_has_no_build_tools_or_caches(dockerfile: str) -> None:
    builder, runtime = stages(dockerfile)
    builder_runs = " ".join(args for keyword, args in builder if keyword == "RUN")
    assert "pip wheel" in builder_runs
    # The C fast path is compiled in the builder and must have been: the image checks it.
    assert "gcc" in builder_runs
    assert "import processor._native" in builder_runs
    assert "TMF_REQUIRE_NATIVE=1" in dockerfile
    assert "--no-cache-dir" in builder_runs or "PIP_NO_CACHE_DIR=1" in dockerfile
    runtime_runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    for forbidden in ("pip ", "apt-get", "gcc", "build-essential", "wheel"):
        assert forbidden not in runtime_runs, f"runtime stage runs {forbidden!r}"
    copies = [args for keyword, args in runtime if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], (
        "only the venv enters the runtime stage"
    )


def test_runs_as_a_numeric_non_root_user(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit() and int(user) >= 1000, "numeric uid so runAsNonRoot can verify it"


def test_entrypoint_cmd_and_healthcheck(dockerfile: str) -> None:
    runtime = dict(stages(dockerfile)[-1])
    assert json.loads(runtime["ENTRYPOINT"]) == ["tmf-events"]
    assert json.loads(runtime["CMD"]) == ["run"]
    assert runtime["EXPOSE"] == "8080"
    health = runtime["HEALTHCHECK"]
    command = json.loads(health[health.index("CMD") + 3 :])
    assert command[0] == "python", "no curl in the slim image"
    assert "http://127.0.0.1:%s/healthz" in command[-1]
    assert "'8080'" in command[-1]


def test_env_names_are_settings(dockerfile: str) -> None:
    names = set(re.findall(r"\bTMF_EVENTS_[A-Z0-9_]+", dockerfile))
    unknown = {name.split("__")[0] for name in names} - setting_env_names()
    assert not unknown, f"Dockerfile uses env vars the settings do not read: {sorted(unknown)}"


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or a parent."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".git/HEAD", True),
        (".venv/bin/python", True),
        (".tools/bin/helm", True),
        (".pytest_cache/v/cache/lastfailed", True),
        (".mypy_cache/3.11/x.json", True),
        ("bench/results/run.json", True),
        ("tests/unit/test_decide.py", True),
        ("deploy/helm/tmf-events/values.yaml", True),
        (".noida-db/data", True),
        ("processor/__pycache__/config.cpython-311.pyc", True),
        ("processor/_native.cpython-311-x86_64-linux-gnu.so", True),
        ("hatch_build.py", False),
        ("processor/native/engine.c", False),
        ("pyproject.toml", False),
        ("README.md", False),
        ("processor/config.py", False),
        ("schemas/change-record.avsc", False),
    ],
)
def test_dockerignore_keeps_only_the_package_sources(path: str, excluded: bool) -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    assert _dockerignore_excludes(patterns, path) is excluded


def test_dockerfile_copies_only_what_dockerignore_lets_in(dockerfile: str) -> None:
    builder = stages(dockerfile)[0]
    sources = [
        src
        for keyword, args in builder
        if keyword == "COPY"
        for src in args.split()[:-1]
        if not src.startswith("--")
    ]
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    for src in sources:
        assert not _dockerignore_excludes(patterns, src.rstrip("/")), (
            f"COPY {src} is excluded by .dockerignore"
        )
