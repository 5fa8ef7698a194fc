"""The watchdog ends a replica whose loop is stuck, and leaves a turning one alone."""

from __future__ import annotations

import threading

import pytest

from processor.watchdog import FATAL_EXIT, Watchdog


class _Exit:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_a_stuck_loop_exits_with_the_fatal_code(capsys: pytest.CaptureFixture[str]) -> None:
    checks = iter([(True, "loop turning"), (False, "loop has not turned for 91 s")])
    exit_ = _Exit()
    dog = Watchdog(lambda: next(checks), interval_s=0.01, exit_process=exit_).start()
    assert exit_.called.wait(10), "the watchdog never ended the process"
    dog.thread.join(10)
    assert exit_.codes == [FATAL_EXIT] == [3]
    assert "fatal: the processing loop is stuck (loop has not turned for 91 s)" in (
        capsys.readouterr().err
    )


def test_a_turning_loop_is_left_alone_and_stop_ends_the_watch() -> None:
    checked = threading.Event()
    calls = [0]

    def health() -> tuple[bool, str]:
        calls[0] += 1
        if calls[0] >= 3:
            checked.set()
        return True, "loop turning"

    exit_ = _Exit()
    dog = Watchdog(health, interval_s=0.01, exit_process=exit_).start()
    assert checked.wait(10)
    dog.stop()
    dog.thread.join(10)
    assert not dog.thread.is_alive()
    assert exit_.codes == []
