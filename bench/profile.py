"""The profile step: py-spy over a tmf-events worker, and the summary of its main loop."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import REPO, RESULTS, StepError, progress
from bench.workers import Worker

if TYPE_CHECKING:
    from bench.run import Bench


def profile(bench: Bench) -> dict[str, Any]:
    spy = (
        bench.args.py_spy
        or shutil.which("py-spy")
        or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    )
    if not spy:
        raise StepError("py-spy not found: pip install py-spy (or give --py-spy)")
    svg = RESULTS / "profile.svg"
    raw = RESULTS / "profile.txt"
    out: dict[str, Any] = {"svg": str(svg.relative_to(REPO)), "raw": str(raw.relative_to(REPO))}
    for fmt, path in (("flamegraph", svg), ("raw", raw)):
        app_id = f"{bench.run_id}-tmf-profile-{fmt}"
        topics = bench.tmf_topics(app_id, bench.input_topic)
        worker = Worker(
            f"profile-{fmt}",
            sys.executable,
            "tmf",
            {
                "bootstrap": bench.bootstrap,
                "app_id": app_id,
                "expected": bench.args.records,
                "timeout_s": max(300.0, bench.args.records / 100),
                "max_batch": bench.args.max_batch,
                "commit_interval_ms": bench.args.commit_interval_ms,
                "kafka": bench.kafka,
                "announce_first": True,
                **topics,
            },
            bench.logs / f"profile-{fmt}.log",
        )
        spy_log = (bench.logs / f"py-spy-{fmt}.log").open("wb")
        # --idle: waits (flush, commit round trips, consume) are part of the time.
        # --threads: the main loop's stacks can be told from the helper threads'.
        # The flame graph groups by function, the raw stacks keep line numbers.
        command = [spy, "record", "--pid", str(worker.pid), "--rate", "200", "--idle",
                   "--threads", "--format", fmt, "--output", str(path)]  # fmt: skip
        if fmt == "flamegraph":
            command.append("--function")
        try:
            with progress(bench.console) as bar:
                task = bar.add_task(f"profile ({fmt})", total=bench.args.records, note="committed")
                tick = bench.committed_ticker(bar, task, app_id, bench.input_topic)
                # sample the hot path only: attach once the first record is consumed
                worker.wait("first", 120, tick)
                spy_proc = subprocess.Popen(command, stdout=spy_log, stderr=subprocess.STDOUT)
                result = worker.wait("result", max(300.0, bench.args.records / 100) + 60, tick)
                bar.update(task, completed=result["records_in"])
            try:
                spy_proc.wait(60)
            except subprocess.TimeoutExpired:
                spy_proc.send_signal(signal.SIGINT)
                spy_proc.wait(30)
            if spy_proc.returncode != 0 or not path.exists():
                raise StepError(f"py-spy failed (ptrace not allowed?); see {spy_log.name}")
        finally:
            worker.stop()
            spy_log.close()
        out[f"records_per_s_{fmt}"] = result["records_per_s"]
    if raw.exists():
        out.update(summarize_profile(raw.read_text()))
    return out


def summarize_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """Top frames of the processor's main loop from py-spy's raw (collapsed) output.

    Only the thread whose stacks go through `Processor._loop` counts. Per function (line
    numbers dropped): `inclusive` = share of its samples with the function on the stack,
    `self` = share with it on top; `self_lines` = the same per source line. With `--idle`
    a C call that waits (consume, flush, commit) is the self time of the Python line that
    made it.
    """
    stacks: list[tuple[list[str], int]] = []
    for line in raw.splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        frames = [f for f in head.split(";") if not f.startswith(("thread (", "process "))]
        if frames and any(f.startswith("Processor._loop (") for f in frames):
            stacks.append((frames, int(count)))
    total = sum(n for _, n in stacks)
    if not total:
        return {"samples": 0}
    inclusive: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    self_line: Counter[str] = Counter()
    for frames, n in stacks:
        for fn in {_function(f) for f in frames if "worker.py" not in f}:
            inclusive[fn] += n
        self_fn[_function(frames[-1])] += n
        self_line[frames[-1]] += n

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "share": n / total} for f, n in c.most_common(top)]

    return {
        "samples": total,
        "inclusive": share(inclusive),
        "self": share(self_fn),
        "self_lines": share(self_line),
    }


def _function(frame: str) -> str:
    """`name (path:line)` → `name (path)`."""
    return re.sub(r":\d+\)$", ")", frame)
