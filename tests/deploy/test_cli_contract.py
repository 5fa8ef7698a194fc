"""Every command line the deploy files give the image is one the CLI accepts."""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any

import pytest

from .conftest import ROOT, Manifest, workloads

pytestmark = pytest.mark.deploy


def assert_cli_accepts(argv: list[str], where: str) -> None:
    from processor.cli import build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(
            f"{where}: `tmf-events {' '.join(argv)}` rejected ({exc.code}): {stderr.getvalue()}"
        )


def test_dockerfile_default_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd
    assert_cli_accepts(json.loads(cmd.group(1)), "Dockerfile CMD")


def test_compose_commands(compose_model: dict[str, Any]) -> None:
    for name, svc in compose_model["services"].items():
        if svc.get("image") == "tmf-events:local":
            assert_cli_accepts(svc["command"], f"compose service {name}")


def test_chart_commands(manifests: list[Manifest]) -> None:
    jobs = [m for m in manifests if m["kind"] == "Job"]
    for workload in [*workloads(manifests), *jobs]:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert_cli_accepts(container["args"], workload["metadata"]["name"])
