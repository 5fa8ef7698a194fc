"""How `tmf-events hub` fails before it serves: one line on stderr, the documented exit code."""

from __future__ import annotations

import socket

from processor.dev.broker import free_port
from tests.processes import run_cli


def test_a_busy_port_exits_2_naming_http_port() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["hub"], fields={"http_port": port}, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"cannot listen on port {port}" in lines[0] and "http_port" in lines[0]


def test_unreachable_kafka_exits_4_naming_bootstrap_servers() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    result = run_cli(["hub", "--bootstrap-servers", nobody], fields={"http_port": 0}, timeout=90)
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"cannot reach Kafka at {nobody}" in lines[0] and "bootstrap_servers" in lines[0]


def test_an_invalid_allow_list_exits_2() -> None:
    result = run_cli(["hub"], fields={"hub_allowed_callback_hosts": ["10.0.0.0/99"]}, timeout=60)
    assert result.returncode == 2
    assert "hub_allowed_callback_hosts" in result.stderr and "Traceback" not in result.stderr
