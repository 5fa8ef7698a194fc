"""The benchmark's CPU meter (bench/cpu.py): what it reads from /proc and what it makes of it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cpu import CpuMeter, cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _burn_until_cpu_moves(pid: int) -> None:
    """Work until the kernel has counted at least one more tick for `pid` (a deadline, not
    a duration)."""
    start = cpu_seconds(pid)
    deadline = time.monotonic() + 30
    while cpu_seconds(pid) == start:
        assert time.monotonic() < deadline, "the CPU clock never moved"
        sum(range(10_000))


def test_a_process_cpu_time_grows_and_a_gone_one_reads_none() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    _burn_until_cpu_moves(os.getpid())
    after = cpu_seconds(os.getpid())
    assert after is not None and after > before
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    assert cpu_seconds(int(gone.stdout)) is None


def test_the_meter_needs_two_commits_and_counts_the_records_between() -> None:
    meter = CpuMeter(broker_pid=os.getpid())  # itself standing in for the broker
    assert meter.figures() is None
    meter.commit(2_000)
    assert meter.figures() is None
    _burn_until_cpu_moves(os.getpid())
    meter.commit(6_000)
    figures = meter.figures()
    assert figures is not None
    assert figures["records"] == 4_000
    assert figures["peer_us_per_record"] > 0
    assert figures["broker_us_per_record"] > 0  # read a moment apart: not always equal
    assert figures["cores_busy"] > 0


def test_without_a_broker_pid_the_meter_gives_the_peer_alone() -> None:
    meter = CpuMeter(broker_pid=None)
    meter.commit(0)
    _burn_until_cpu_moves(os.getpid())
    meter.commit(10)
    figures = meter.figures()
    assert figures is not None
    assert "broker_us_per_record" not in figures and "cores_busy" not in figures
