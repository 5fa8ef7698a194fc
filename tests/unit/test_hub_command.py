"""How `tmf-events hub` fails before it serves: one line on stderr, the documented exit code.

A busy port and an unreachable Kafka are checked for every serving command, the hub too, in
tests/unit/test_cli_failures.py."""

from __future__ import annotations

from tests.processes import run_cli


def test_an_invalid_allow_list_exits_2() -> None:
    result = run_cli(["hub"], fields={"hub_allowed_callback_hosts": ["10.0.0.0/99"]}, timeout=60)
    assert result.returncode == 2
    assert "hub_allowed_callback_hosts" in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tmf-events hub: invalid hub_allowed_callback_hosts"
    )
    assert "from environment variable TMF_EVENTS_HUB_ALLOWED_CALLBACK_HOSTS" in lines[0]
