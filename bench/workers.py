"""The benchmark's child processes: `bench/worker.py` peers reporting JSON lines, and the
interpreter the Quix Streams peer runs in."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from bench.common import BENCH, REPO, StepError

QUIX_VENV = BENCH / ".venv-quix"
QUIX_REQUIREMENTS = BENCH / "requirements-quix.txt"
WORKER = BENCH / "worker.py"


class Worker:
    """A `bench/worker.py` child: JSON lines from its stdout, its stderr in a log file."""

    def __init__(
        self,
        name: str,
        python: Path | str,
        mode: str,
        args: dict[str, Any],
        log: Path,
        repo: Path = REPO,
    ) -> None:
        """`repo`: the checkout whose bench/worker.py runs (another one: a side-by-side
        comparison with another version of the processor)."""
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle: IO[bytes] = log.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(repo)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("VIRTUAL_ENV", None)
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [str(python), str(repo / WORKER.relative_to(REPO)), mode, json.dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            cwd=repo,
            env=env,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout").start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library printing to stdout
            if isinstance(event, dict) and "event" in event:
                self.events.put(event)
        self.events.put({"event": "exit"})

    def wait(
        self, kind: str, timeout: float, tick: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """The next event of `kind`; StepError if the worker exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if tick is not None:
                tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise StepError(f"{self.name}: no {kind!r} within {timeout:.0f} s; {self.tail()}")
            try:
                event = self.events.get(timeout=min(0.5, remaining))
            except queue.Empty:
                continue
            if event["event"] == kind:
                return event
            if event["event"] == "exit":
                code = self.proc.wait()
                raise StepError(f"{self.name} exited with code {code}; {self.tail()}")

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_handle.close()

    def tail(self, lines: int = 15) -> str:
        if not self._log_handle.closed:
            self._log_handle.flush()
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"log {self.log}:\n" + "\n".join(text[-lines:])


def quix_python(args: argparse.Namespace, console: Console) -> Path:
    """An interpreter with quixstreams: `--quix-python`, else bench/.venv-quix (made here).

    Quix Streams 3.x pins confluent-kafka < 2.13 while this project needs >= 2.16, so it never
    goes into the project's environment.
    """
    if args.quix_python is not None:
        return Path(args.quix_python)
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / ".installed"
    wanted = hashlib.sha256(QUIX_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    with console.status(f"creating {QUIX_VENV.relative_to(REPO)} (Quix Streams) ..."):
        base = getattr(sys, "_base_executable", sys.executable)
        for command in (
            [base, "-m", "venv", "--clear", str(QUIX_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(QUIX_REQUIREMENTS)],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StepError(
                    f"cannot set up the Quix virtualenv ({' '.join(command[:4])} ...):\n"
                    + (done.stderr or done.stdout)[-2000:]
                )
    stamp.write_text(wanted + "\n")
    return python
