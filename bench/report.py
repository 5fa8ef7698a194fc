"""The benchmark's verdicts and its tables."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import fmt_rate

# The targets (a benchmark's, not a test's): name -> (description, comparison, bound). A
# bound of None is the commit interval + 100 ms (a latency within one commit interval).
TARGETS: dict[str, tuple[str, str, float | None]] = {
    "tmf_vs_quix": ("tmf-events / Quix Streams throughput", ">=", 3.0),
    "tmf_vs_floor": ("tmf-events / the I/O floor of the job {floor_basis}", ">=", 0.85),
    "latency_p99_ms": ("p99 append → readable at 50% of the max rate (ms)", "<=", None),
    "restart_ready_s": ("ready after restart with {keys} keys, from snapshots (s)", "<=", 5.0),
    "memory_mb_per_1m": ("resident memory per 1M keys (MB)", "<=", 300.0),
}


def outcome_counts(metrics: dict[str, float]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for k, v in metrics.items():
        if k.startswith("tmf_events_records_skipped_total{"):
            out[k.split("reason=", 1)[1].rstrip("}")] += int(v)
        elif k.startswith("tmf_events_dead_letters_total{"):
            out["dead_letter"] += int(v)
    return dict(out)


def evaluate(report: dict[str, Any]) -> None:
    steps = report["steps"]
    tmf = steps.get("tmf-events", {}).get("records_per_s")
    passthrough = steps.get("passthrough", {}).get("records_per_s")
    floor = steps.get("floor", {}).get("records_per_s")
    quix = steps.get("quix", {}).get("records_per_s")
    restart = steps.get("restart", {})
    values = {
        "tmf_vs_quix": tmf / quix if tmf and quix else None,
        "tmf_vs_floor_single": tmf / floor if tmf and floor else None,
        "tmf_vs_floor_paired": steps.get("costs", {}).get("tmf_vs_floor", {}).get("median"),
        "tmf_vs_passthrough": tmf / passthrough if tmf and passthrough else None,
        "latency_p99_ms": steps.get("latency", {}).get("p99_ms"),
        "restart_ready_s": restart.get("seconds_to_ready"),
        "memory_mb_per_1m": restart.get("mb_per_1m_keys"),
    }
    # The floor's verdict is the paired rounds' median: single runs of either moved the ratio
    # from 0.53 to 1.04 on one commit (bench/README.md), a pair on the same broker state less.
    paired = values["tmf_vs_floor_paired"] is not None
    values["tmf_vs_floor"] = values["tmf_vs_floor_paired" if paired else "tmf_vs_floor_single"]
    floor_basis = "(median of the costs' paired rounds)" if paired else "(single runs)"
    # The passthrough (a bare copy) is reported, not a target: the floor is this job's bound.
    report["ratios"] = {
        k: values[k]
        for k in ("tmf_vs_quix", "tmf_vs_floor_single", "tmf_vs_floor_paired", "tmf_vs_passthrough")
    }
    keys = restart.get("keys") or report["options"]["restart_keys"]
    targets = []
    for name, (text, op, fixed) in TARGETS.items():
        value = values[name]
        bound = fixed if fixed is not None else report["options"]["commit_interval_ms"] + 100
        if value is None:
            verdict = "n/a"
        else:
            ok = value >= bound if op == ">=" else value <= bound
            verdict = "PASS" if ok else "MISS"
        targets.append(
            {
                "name": name,
                "description": text.format(keys=f"{keys:,}", floor_basis=floor_basis),
                "target": f"{op} {bound:g}",
                "value": value,
                "verdict": verdict,
            }
        )
    report["targets"] = targets


def print_report(report: dict[str, Any], console: Console) -> None:
    steps = report["steps"]
    inp = steps.get("input", {})
    table = Table(
        title=(
            f"throughput: {inp.get('records', 0):,} records "
            f"({inp.get('avg_record_bytes', 0):,.0f} B avg), broker {report['broker']['kind']}"
        )
    )
    for col in ("peer", "records", "events out", "seconds", "records/s", "tmf-events / peer"):
        table.add_column(col, justify="right")
    tmf_rate = steps.get("tmf-events", {}).get("records_per_s")
    for name in ("passthrough", "floor", "tmf-events", "tmf-events (compared)", "quix"):
        s = steps.get(name)
        if s is None and name.endswith("(compared)"):
            continue
        if s is None:
            table.add_row(name, "-", "-", "-", report["errors"].get(name, "skipped")[:40], "-")
            continue
        out = s.get("events_out", s.get("records_out"))
        ratio = f"{tmf_rate / s['records_per_s']:.2f}" if tmf_rate and s["records_per_s"] else "-"
        table.add_row(
            name,
            f"{s['records_in']:,}",
            f"{out:,}" if out is not None else "-",
            f"{s['seconds']:.2f}",
            fmt_rate(s["records_per_s"]),
            ratio if name != "tmf-events" else "1.00",
        )
    console.print(table)
    print_cpu(steps, console)

    cost = steps.get("costs")
    if cost:
        print_costs(cost, console)
    for lat in (steps.get("latency"), steps.get("latency-low")):
        if lat:
            print_latency(lat, steps.get("broker-hop"), report, console)
    rs = steps.get("restart")
    if rs:
        pf = rs["prefill"]
        warm = rs.get("warm", {})
        console.print(
            f"restart: {rs['keys']:,} keys ({pf['avg_record_bytes']:,.0f} B per state record, "
            f"{pf['bytes'] / 1e6:,.0f} MB of changelog): from the changelog ready "
            f"{rs.get('cold_seconds_to_ready', rs['seconds_to_ready']):.2f} s after run(); "
            f"from the snapshots ({rs.get('snapshot_bytes', 0) / 1e6:,.0f} MB) ready "
            f"{warm.get('seconds_to_ready', float('nan')):.2f} s after run() "
            f"({warm.get('seconds_from_process_start', float('nan')):.2f} s from process start, "
            f"{warm.get('restored_records', 0):,} changelog records read)"
            + (
                f"; [yellow]{rs['request_timeouts']} restore fetch(es) timed out, retried[/]"
                if rs.get("request_timeouts")
                else ""
            )
        )
        console.print(
            f"memory: RSS +{rs['mb_per_1m_keys']:,.0f} MB per 1M keys restored and read with "
            f"store.get (+{rs['mb_per_1m_keys_encoded']:,.0f} MB before reading them); releasing "
            f"the store gave back {rs['mb_per_1m_keys_store']:,.0f} MB per 1M keys"
        )
    prof = steps.get("profile")
    if prof and prof.get("samples"):
        console.print(f"profile: {prof['svg']} ({prof['samples']:,} samples of the main loop)")
        for row in prof["inclusive"][:8]:
            console.print(f"  {row['share']:6.1%}  {row['frame']}")

    targets = Table(title="targets")
    for col in ("target", "bound", "measured", "result"):
        targets.add_column(col, justify="right" if col != "target" else "left")
    for t in report["targets"]:
        v = t["value"]
        colour = {"PASS": "green", "MISS": "red"}.get(t["verdict"], "yellow")
        targets.add_row(
            t["description"],
            t["target"],
            "n/a" if v is None else f"{v:,.2f}",
            f"[{colour}]{t['verdict']}[/]",
        )
    console.print(targets)
    m = report["machine"]
    console.print(
        f"[yellow]load average before {' '.join(map(str, m['loadavg_before']))}, after "
        f"{' '.join(map(str, m.get('loadavg_after', [])))} on {m['cpus']} cores[/]: "
        "a shared machine; compare figures of one run with each other, not across runs."
    )
    for name, err in report["errors"].items():
        console.print(f"[red]{name} failed:[/] {err}")


def print_cpu(steps: dict[str, Any], console: Console) -> None:
    """Where each record's time goes in CPU: the peer's process, the broker, and how many of
    the cores the two kept busy (from the first commit to the last)."""
    rows: list[tuple[str, dict[str, float]]] = []
    for name in ("floor", "tmf-events"):
        if (steps.get(name) or {}).get("cpu"):
            rows.append((name, steps[name]["cpu"]))
    pairs = (steps.get("costs") or {}).get("tmf_vs_floor", {}).get("cpu", {})
    for name, figures in pairs.items():
        for i, f in enumerate(figures, 1):
            if f:
                rows.append((f"{name}, round {i}", f))
    if not rows:
        return
    table = Table(title="CPU per input record, first commit to last (µs)")
    for col in ("peer", "wall", "peer's process", "broker", "cores busy"):
        table.add_column(col, justify="right" if col != "peer" else "left")
    for name, f in rows:
        broker = f.get("broker_us_per_record")
        busy = f.get("cores_busy")
        table.add_row(
            name,
            f"{f['wall_us_per_record']:.1f}",
            f"{f['peer_us_per_record']:.1f}",
            "-" if broker is None else f"{broker:.1f}",
            "-" if busy is None else f"{busy:.2f}",
        )
    console.print(table)


def print_costs(cost: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"the costs that stay: the floor without each part, median of {cost['rounds']}"
    )
    for col in ("floor", "records/s (each round)", "median", "saves per record"):
        table.add_column(col, justify="right" if col != "floor" else "left")
    for name, v in cost["variants"].items():
        runs = " ".join(fmt_rate(r) for r in v["records_per_s"])
        saved = "-" if name == "as the job" else f"{v['us_per_record_saved']:+.1f} µs"
        table.add_row(name, runs, fmt_rate(v["median"]), saved)
    paired = cost.get("tmf_vs_floor")
    if paired:  # runs of an older bench have no paired rounds
        rates = " ".join(fmt_rate(r) for r in paired["tmf_records_per_s"])
        ratios = " ".join(f"{r:.2f}" for r in paired["per_round"])
        table.add_row("tmf-events (after the floor as the job)", rates, "-", "-")
        table.add_row("tmf-events / floor as the job", ratios, f"{paired['median']:.2f}", "-")
    console.print(table)


def print_latency(
    lat: dict[str, Any], hop: dict[str, Any] | None, report: dict[str, Any], console: Console
) -> None:
    console.print(
        f"latency at {lat['rate_achieved']:,.0f} records/s (target "
        f"{lat['rate_target']:,.0f}: {lat['rate_basis']}), {lat['events_measured']:,} events "
        f"after {lat['warmup_s']:g} s of warm-up, send → readable: p50 {lat['p50_ms']:.0f} ms, "
        f"p90 {lat['p90_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms"
    )
    e2c = lat.get("processor_event_to_commit") or {}
    interval = report["options"]["commit_interval_ms"]
    parts = [
        f"batches of {lat['avg_batch_records'] or 0:,.0f} records every ≤ {interval} ms",
        f"commit {lat['avg_commit_ms'] or 0:.0f} ms on average",
        f"processor's event → commit p50 ≤ {e2c.get('p50_ms') or float('nan'):.0f} ms, "
        f"p99 ≤ {e2c.get('p99_ms') or float('nan'):.0f} ms (histogram buckets)",
    ]
    if hop:
        parts += [
            f"one broker hop p50/p99 {h['p50_ms']:.0f}/{h['p99_ms']:.0f} ms for the {who}"
            f" (fetch.wait.max.ms {h['fetch_wait_ms']})"
            for who, h in hop["hops"].items()
        ]
    console.print("  where the time goes: " + "; ".join(parts))
    tl = lat.get("timeline") or []
    if len(tl) >= 4:
        head, tail = tl[1 : 1 + len(tl) // 3], tl[-(len(tl) // 3) :]
        rising = max(t["p50_ms"] for t in tail) > 2 * max(t["p50_ms"] for t in head)
        console.print(
            "  p50 per second of sending: "
            + " ".join(f"{t['p50_ms']:.0f}" for t in tl)
            + " ms"
            + ("  [red](rising: the processor fell behind)[/]" if rising else "")
        )
