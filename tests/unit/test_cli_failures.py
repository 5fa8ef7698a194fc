"""Every command fails well (README.md, "Exit codes"): the real command in a child process,
its one line on stderr (the setting, where its value came from, what to do), its exit code,
and that it ended within a bound. No broker is needed: an unreachable broker is a closed
local port."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from processor.dev.broker import free_port
from tests.processes import run_cli

CONNECT_MS = 1500
BOUND_S = CONNECT_MS / 1000 + 20  # generous: a slow machine, never a hang


def _run(
    args: Sequence[str], fields: Mapping[str, Any] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = run_cli(args, fields=fields, timeout=BOUND_S + 30)
    return done, time.monotonic() - started


def _one_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tmf-events {command}: "), lines[0]
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# -- Kafka unreachable: exit 4 within connect_timeout_ms ------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["run"], ["topics"], ["api"], ["hub"], ["tail"], ["load", "--quiet", "--count", "10"]],
)
def test_an_unreachable_broker_ends_the_command_with_4(args: list[str]) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    fields = {"bootstrap_servers": bootstrap, "connect_timeout_ms": CONNECT_MS, "http_port": 0}

    done, seconds = _run(args, fields)

    line = _one_line(done, args[0])
    assert done.returncode == 4, done.stderr
    assert seconds < BOUND_S
    assert f"cannot reach Kafka at {bootstrap} within 1.5 s" in line
    assert "Connection refused" in line  # the client's own reason, once
    assert "(bootstrap_servers from environment variable TMF_EVENTS_BOOTSTRAP_SERVERS)" in line
    assert "connect_timeout_ms" in line


def test_a_longer_wait_says_so_once_and_floods_nothing() -> None:
    """Beyond a few seconds the command says that it waits, and how long at most; the
    client's connection errors (hundreds while it retries) stay out of the output."""
    bootstrap = f"127.0.0.1:{free_port()}"
    fields = {"bootstrap_servers": bootstrap, "connect_timeout_ms": 5000}

    done, seconds = _run(["load", "--quiet", "--count", "10"], fields)

    assert done.returncode == 4
    assert seconds < 5 + 20
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert f"no answer from Kafka at {bootstrap} yet; trying for up to 5 s" in lines[0]
    assert lines[1].startswith(f"tmf-events load: cannot reach Kafka at {bootstrap} within 5 s")


def test_demo_against_an_unreachable_broker_names_the_flag() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    done, seconds = _run(
        ["demo", "--bootstrap-servers", bootstrap], {"connect_timeout_ms": CONNECT_MS}
    )

    line = _one_line(done, "demo")
    assert done.returncode == 4
    assert seconds < BOUND_S
    assert f"cannot reach Kafka at {bootstrap}" in line
    assert "(bootstrap_servers from flag --bootstrap-servers)" in line


def test_debug_adds_the_traceback_before_the_line() -> None:
    fields = {"bootstrap_servers": f"127.0.0.1:{free_port()}", "connect_timeout_ms": CONNECT_MS}
    for args, extra in (
        (["--debug", "topics"], {}),
        (["topics", "--debug"], {}),
        (["topics"], {"log_level": "DEBUG"}),
    ):
        done, _ = _run(args, {**fields, **extra})
        assert done.returncode == 4, (args, done.stderr)
        assert "Traceback" in done.stderr, args
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("tmf-events topics: cannot reach Kafka"), last


# -- the HTTP port --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "api", "hub"])
def test_a_busy_port_names_http_port_and_exits_2(command: str, busy_port: int) -> None:
    fields = {"bootstrap_servers": f"127.0.0.1:{free_port()}", "http_port": busy_port}

    done, seconds = _run([command], fields)

    line = _one_line(done, command)
    assert done.returncode == 2
    assert seconds < BOUND_S
    assert f"port {busy_port} is already in use" in line
    assert "(http_port from environment variable TMF_EVENTS_HTTP_PORT)" in line
    assert "set http_port to a free port" in line


def test_the_broker_command_on_a_busy_port_exits_2(busy_port: int) -> None:
    done, _ = _run(["broker", "--port", str(busy_port)])

    line = _one_line(done, "broker")
    assert done.returncode == 2
    assert f"port {busy_port}" in line and "already in use" in line


# -- flags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["load", "--mix", "create=1,updat=2"], ["unknown kind 'updat'", "did you mean update?"]),
        (["load", "--mix", "create=-1"], ["create", "not a number ≥ 0"]),
        (["load", "--count", "-5"], ["--count", "-5 is below 1"]),
        (["load", "--rate", "0"], ["--rate", "not above 0"]),
        (["topics", "--partitions", "many"], ["--partitions", "'many' is not a whole number"]),
        (["latest"], ["the following arguments are required: id"]),
    ],
)
def test_a_bad_flag_exits_2_in_one_line(args: list[str], words: list[str]) -> None:
    done, seconds = _run(args)

    line = _one_line(done, args[0])
    assert done.returncode == 2
    assert seconds < BOUND_S
    for word in words:
        assert word in line, line


def test_version_and_defaults_in_help() -> None:
    version, _ = _run(["--version"])
    assert version.returncode == 0
    assert version.stdout.startswith("tmf-events ")

    topics, _ = _run(["topics", "--help"])
    assert topics.returncode == 0
    assert "(default: 6)" in topics.stdout  # --partitions
    load, _ = _run(["load", "--help"])
    assert "(default: 10000)" in load.stdout  # --count
    top, _ = _run(["--help"])
    assert "tail" in top.stdout and "Exit codes" in top.stdout


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "text", "words"),
    [
        (
            "run",
            "app_id: inventory\nmax_bach: 500\n",
            [
                "unknown setting max_bach",
                "(max_bach from file {file}:2)",
                "did you mean max_batch?",
            ],
        ),
        (
            "topics",
            "kafka:\n  sesion.timeout.ms: 6000\n",
            [
                "unknown kafka property sesion.timeout.ms",
                "(kafka.sesion.timeout.ms from file {file}:2)",
                "did you mean session.timeout.ms?",
            ],
        ),
    ],
)
def test_a_typo_in_the_settings_file_names_file_line_and_a_guess(
    tmp_path: Path, command: str, text: str, words: list[str]
) -> None:
    config = tmp_path / "tmf-events.yaml"
    config.write_text(text, encoding="utf-8")

    done, _ = _run([command, "--config", str(config)])

    line = _one_line(done, command)
    assert done.returncode == 2
    for word in words:
        assert word.format(file=config) in line, line


def test_a_typo_in_an_environment_variable_is_refused() -> None:
    done, _ = _run(["topics"], {"max_bach": 500})

    line = _one_line(done, "topics")
    assert done.returncode == 2
    assert "environment variable TMF_EVENTS_MAX_BACH" in line
    assert "did you mean TMF_EVENTS_MAX_BATCH?" in line


def test_a_list_setting_from_the_environment_must_be_json() -> None:
    done, _ = _run(["replay", "-"], {"private_fields": "note"})

    line = _one_line(done, "replay")
    assert done.returncode == 2
    assert "TMF_EVENTS_PRIVATE_FIELDS must be a JSON list" in line
    assert "(private_fields from environment variable TMF_EVENTS_PRIVATE_FIELDS)" in line
    assert """TMF_EVENTS_PRIVATE_FIELDS='["note"]'""" in line


def test_a_bad_value_names_its_setting_and_what_it_takes() -> None:
    done, _ = _run(["run"], {"tmf_version": "v6"})

    line = _one_line(done, "run")
    assert done.returncode == 2
    assert "invalid tmf_version" in line and "'v6'" in line
    assert "(tmf_version from environment variable TMF_EVENTS_TMF_VERSION)" in line
    assert "use 'v4' or 'v5'" in line


def test_a_missing_settings_file_exits_2(tmp_path: Path) -> None:
    done, _ = _run(["api", "--config", str(tmp_path / "nope.yaml")])

    line = _one_line(done, "api")
    assert done.returncode == 2
    assert "cannot read config file" in line and "nope.yaml" in line
