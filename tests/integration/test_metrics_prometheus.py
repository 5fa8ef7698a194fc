"""The processor's metrics as a real Prometheus server sees them (docs/design.md#interfaces, deploy
checks).

A processor runs in a thread with its `/metrics` on a free 127.0.0.1 port; a real Prometheus
(Debian package `prometheus`, installed by `scripts/prometheus.sh` when missing) scrapes it
every second. After a small load on noida-db (good and bad records) the numbers Prometheus
answers through its HTTP query API must equal what is really on the topics: events per
`ce_type` on the output topics (read_committed), dead letters per reason on the DLQ topic,
records on the input topic. The exposition itself is checked for Prometheus naming rules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.http import HttpServer
from processor.hub.metrics import HubMetrics
from processor.metrics import SKIP_REASONS, ApiMetrics
from processor.records import REASONS
from processor.tmf import ENTITY_TYPES, event_name, kinds
from tests.kafka_helpers import (
    Broker,
    Record,
    consume_all,
    create_topics,
    free_port,
    wait_until,
)
from tests.kafka_helpers import unique_name as new_name
from tests.processes import (
    REPO,
    ProcessorThread,
    Send,
    end_offsets,
    processor_fields,
    read_input,
    send,
    wait_consumed,
)

PARTITIONS = 3
JOB = "tmf-events"
ALL_EVENT_TYPES = [event_name(e, k) for e in ENTITY_TYPES for k in kinds(e, "v4")]


# -- Prometheus ---------------------------------------------------------------------------------


def _prometheus_binary() -> str:
    """The `prometheus` server binary; installs it with scripts/prometheus.sh if missing."""
    found = shutil.which("prometheus")
    if found:
        return found
    script = REPO / "scripts" / "prometheus.sh"
    why = "scripts/prometheus.sh is missing"
    if script.is_file():
        try:
            done = subprocess.run(
                ["bash", str(script)], capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = f"scripts/prometheus.sh failed: {exc}"
        else:
            found = shutil.which("prometheus")
            if found:
                return found
            why = f"scripts/prometheus.sh exited {done.returncode}: {done.stderr.strip()[-500:]}"
    pytest.skip(f"no Prometheus server binary on PATH and it could not be installed ({why})")


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of `promql` (a list of {"metric": {...}, "value": [t, "v"]})."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        """The single value of `promql`, None when the vector is empty."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql} gave {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def by(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


def start_prometheus(binary: str, target_port: int, workdir: Path) -> Prometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    scrape_interval: 1s\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until(
            lambda: proc.poll() is not None or server.ready(),
            60,
            interval=0.1,
            message=lambda: f"Prometheus not ready on port {port}; log:\n{server.log()}",
        )
        if proc.poll() is not None:
            raise AssertionError(f"Prometheus exited with {proc.returncode}:\n{server.log()}")
    except BaseException:
        stop_prometheus(server)
        raise
    return server


def stop_prometheus(server: Prometheus) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(15)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Run:
    settings: Settings
    prometheus: Prometheus
    metrics_port: int
    inputs: int
    events: list[Record]
    dead_letters: list[Record]
    assigned: list[int]
    store_keys: dict[int, int]  # the processor's store, per partition, after the load
    changelog_keys: dict[int, int]  # distinct keys on the changelog, per partition

    def exposition(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    def wait_for(self, promql_check: Callable[[], Any], what: str, timeout: float = 45) -> Any:
        return wait_until(
            promql_check,
            timeout,
            interval=0.25,
            message=lambda: (
                f"Prometheus never saw {what}; Prometheus log:\n" + self.prometheus.log()
            ),
        )


def _records(count: int, seed: int) -> list[Send]:
    start_ms = int(time.time() * 1000) - 3_600_000  # near now: inside the topic's retention
    gen = Generator(seed=seed, keys=40, mix=Mix(), start_ms=start_ms, step_ms=1)
    out = [Send(r.key, r.value, r.timestamp_ms) for r in gen.records(count)]
    bad = [
        Send(b"svc-bad-1", b"this is not json"),  # invalid_json
        Send(b"svc-bad-2", orjson.dumps({"entityType": "gadget", "instance": {"id": "svc-bad-2"}})),
        Send(b"svc-bad-3", b'{"entityType": "service", "instance": "x"}'),
        Send(b"svc-bad-4", orjson.dumps({"entityType": "service", "instance": {"id": "other"}})),
        Send(b"svc-bad-5", b"[1, 2]"),
    ]
    # Bad records spread through the good ones.
    for i, record in enumerate(bad):
        out.insert((i + 1) * len(out) // (len(bad) + 1), record)
    return out


@pytest.fixture(scope="module")
def run(noida_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    binary = _prometheus_binary()
    name = new_name("prom")
    settings = Settings(**processor_fields(noida_broker.bootstrap_servers, name))
    create_topics(settings.bootstrap_servers, {settings.input_topic: PARTITIONS})
    records = _records(400, seed=11)
    half = len(records) // 2
    send(settings.bootstrap_servers, settings.input_topic, records[:half])

    proc = ProcessorThread(settings)
    p = proc.processor
    http = HttpServer(0, p.metrics.registry, p.health, p.readiness, host="127.0.0.1").start()
    prometheus: Prometheus | None = None
    try:
        prometheus = start_prometheus(binary, http.port, tmp_path_factory.mktemp("prometheus"))
        proc.start()
        proc.wait_ready()
        # The rest arrives while the processor runs and Prometheus scrapes.
        send(settings.bootstrap_servers, settings.input_topic, records[half:])
        inputs = read_input(settings.bootstrap_servers, settings.input_topic)
        assert len(inputs) == len(records)
        wait_consumed(
            settings.bootstrap_servers, settings.app_id, settings.input_topic, end_offsets(inputs)
        )
        events = consume_all(
            settings.bootstrap_servers,
            [settings.service_topic, settings.resource_topic],
            timeout=60,
        )
        dead = consume_all(settings.bootstrap_servers, settings.dlq_topic, timeout=60)
        changelog = consume_all(settings.bootstrap_servers, settings.changelog_topic, timeout=60)
        latest = {(r.partition, r.key): r.value for r in changelog}
        changelog_keys = Counter(part for (part, _), v in latest.items() if v is not None)
        yield Run(
            settings,
            prometheus,
            http.port,
            len(inputs),
            events,
            dead,
            sorted(p.assigned),
            {part: p.store.keys(part) for part in sorted(p.assigned)},
            {part: changelog_keys.get(part, 0) for part in sorted(p.assigned)},
        )
    finally:
        try:
            if proc.thread.is_alive():
                proc.stop()
        finally:
            http.stop()
            if prometheus is not None:
                stop_prometheus(prometheus)


def _event_name(record: Record) -> str:
    ce_type = record.header("ce_type")
    assert ce_type is not None, f"event at {record.topic}@{record.offset} has no ce_type"
    return ce_type.decode().rsplit(".", 1)[-1]


# -- what Prometheus answers equals what is on the topics ----------------------------------------


def test_prometheus_scrapes_the_processor(run: Run) -> None:
    prom = run.prometheus
    run.wait_for(lambda: prom.scalar(f'up{{job="{JOB}"}}') == 1, "the target up")
    # The scrape accepted the exposition's content type and parsed every sample.
    run.wait_for(
        lambda: (prom.scalar(f'scrape_samples_scraped{{job="{JOB}"}}') or 0) > 0,
        "scraped samples",
    )


def test_emitted_events_equal_the_output_topics(run: Run) -> None:
    prom = run.prometheus
    by_type = Counter(_event_name(r) for r in run.events)
    by_entity = Counter(
        "service" if r.topic == run.settings.service_topic else "resource" for r in run.events
    )
    total = sum(by_type.values())
    assert total > 50, f"the load emitted only {total} events"
    assert len(by_type) >= 5, f"too few kinds of event for a useful check: {by_type}"

    run.wait_for(
        lambda: prom.scalar("sum(tmf_events_events_emitted_total)") == total,
        f"sum(tmf_events_events_emitted_total) == {total}",
    )
    # Every event type of the profile has its series; those that never happened are 0.
    want_types = dict.fromkeys(ALL_EVENT_TYPES, 0.0) | {k: float(v) for k, v in by_type.items()}
    run.wait_for(
        lambda: (
            prom.by("sum by (event_type) (tmf_events_events_emitted_total)", "event_type")
            == want_types
        ),
        f"events by event_type == {want_types}",
    )
    assert prom.by("sum by (entity_type) (tmf_events_events_emitted_total)", "entity_type") == {
        k: float(v) for k, v in by_entity.items()
    }
    # Every series names its entity type consistently with its event type.
    for series in prom.query("tmf_events_events_emitted_total"):
        labels = series["metric"]
        assert labels["event_type"].lower().startswith(labels["entity_type"]), labels


def test_consumed_records_and_dead_letters_equal_the_topics(run: Run) -> None:
    prom = run.prometheus
    run.wait_for(
        lambda: prom.scalar("sum(tmf_events_records_consumed_total)") == run.inputs,
        f"sum(tmf_events_records_consumed_total) == {run.inputs}",
    )
    consumed = prom.by("sum by (partition) (tmf_events_records_consumed_total)", "partition")
    assert set(consumed) <= {str(p) for p in range(PARTITIONS)}

    reasons = Counter((r.header("tmf-events-error") or b"").decode() for r in run.dead_letters)
    assert sum(reasons.values()) == 5, reasons
    want_reasons = dict.fromkeys(REASONS, 0.0) | {k: float(v) for k, v in reasons.items()}
    run.wait_for(
        lambda: (
            prom.by("sum by (reason) (tmf_events_dead_letters_total)", "reason") == want_reasons
        ),
        f"dead letters by reason == {want_reasons}",
    )
    # Every consumed record emitted (one version step per record), was skipped for a reason,
    # or was dead-lettered.
    emitting = {
        ((r.header("ce_subject") or b""), (r.header("ce_entityversion") or b"")) for r in run.events
    }
    run.wait_for(
        lambda: (
            (prom.scalar("sum(tmf_events_records_skipped_total)") or 0.0)
            == run.inputs - len(emitting) - sum(reasons.values())
        ),
        "records skipped == consumed - emitting - dead-lettered",
    )


def test_build_info_transactions_and_readiness(run: Run) -> None:
    prom = run.prometheus
    build = run.wait_for(lambda: prom.query("tmf_events_build_info"), "tmf_events_build_info")
    assert len(build) == 1
    assert build[0]["metric"]["version"]
    assert float(build[0]["value"][1]) == 1
    run.wait_for(
        lambda: (prom.scalar('tmf_events_transactions_total{outcome="committed"}') or 0) > 0,
        'tmf_events_transactions_total{outcome="committed"} > 0',
    )
    run.wait_for(lambda: prom.scalar("tmf_events_ready") == 1, "tmf_events_ready == 1")
    commits = prom.scalar("sum(tmf_events_commit_duration_seconds_count)") or 0
    assert commits >= 1
    assert prom.scalar("sum(tmf_events_batch_size_records_sum)") == run.inputs


def test_state_keys_per_assigned_partition(run: Run) -> None:
    """tmf_events_state_keys is "instances held in the state store, per partition": after the
    load it must count the keys the store (and the changelog) holds, not the restore's 0."""
    prom = run.prometheus
    expected = {str(p) for p in run.assigned}
    assert expected == {str(p) for p in range(PARTITIONS)}
    assert sum(run.store_keys.values()) > 0
    assert run.store_keys == run.changelog_keys
    want = {str(p): float(n) for p, n in run.store_keys.items()}
    run.wait_for(
        lambda: prom.by("tmf_events_state_keys", "partition") == want,
        f"tmf_events_state_keys == {want} (the store's keys per partition)",
        timeout=10,
    )


def test_consumer_lag_is_exported_per_assigned_partition(run: Run) -> None:
    """docs/design.md#interfaces dashboards and the ConsumerLagHigh alert read
    tmf_events_consumer_lag_records per partition; once the input is consumed it must be there and
    be 0 everywhere."""
    prom = run.prometheus
    expected = {str(p) for p in run.assigned}
    run.wait_for(
        lambda: (
            prom.by("tmf_events_consumer_lag_records", "partition") == dict.fromkeys(expected, 0.0)
        ),
        f"tmf_events_consumer_lag_records == 0 for partitions {sorted(expected)}",
        timeout=10,
    )


def test_series_of_known_label_values_exist_before_anything_happened(run: Run) -> None:
    """Alerts on increase() and dashboards need the series before the first increment: a
    reason, outcome or kind that never occurred in this run is there, at 0."""
    prom = run.prometheus
    dead = Counter((r.header("tmf-events-error") or b"").decode() for r in run.dead_letters)
    for reason in ("too_deep", "invalid_avro", "missing_timestamp"):
        assert reason in REASONS and reason not in dead
        run.wait_for(
            lambda r=reason: prom.query(f'tmf_events_dead_letters_total{{reason="{r}"}}'),
            f"a dead-letter series for {reason}",
        )
        assert prom.scalar(f'tmf_events_dead_letters_total{{reason="{reason}"}}') == 0
    for metric, label, values in (
        ("tmf_events_records_skipped_total", "reason", SKIP_REASONS),
        ("tmf_events_transactions_total", "outcome", ("committed", "aborted")),
        ("tmf_events_rebalances_total", "kind", ("assign", "revoke", "lost")),
        ("tmf_events_core_records_total", "path", ("c", "python")),
        ("tmf_events_events_emitted_total", "event_type", ALL_EVENT_TYPES),
    ):
        run.wait_for(
            lambda m=metric, label=label, v=values: (
                set(prom.by(f"sum by ({label}) ({m})", label)) == set(v)
            ),
            f"{metric} with every {label} in {values}",
        )
    # Never revoked, never lost in this run: still a series, at 0.
    assert prom.scalar('tmf_events_rebalances_total{kind="lost"}') == 0
    run.wait_for(
        lambda: prom.scalar('increase(tmf_events_dead_letters_total{reason="too_deep"}[1m])') == 0,
        "increase() over a reason that never happened: 0, not no data",
    )


# -- the exposition follows Prometheus conventions ---------------------------------------------

_UNIT_SUFFIXES = ("_seconds", "_records", "_bytes", "_keys", "_ratio", "_info")
_TIME_WORDS = re.compile(r"duration|latency|time|age|delay")


def test_exposition_follows_prometheus_naming(run: Run) -> None:
    families = list(text_string_to_metric_families(run.exposition()))
    names = {f.name for f in families}
    assert len(names) == len(families), "a metric family appears twice"
    # The client library exposes each counter's and histogram's creation time as a gauge
    # family `<name>_created` in the text format; those follow their parent's name.
    parents = {f.name for f in families if f.type in ("counter", "histogram")}
    created = {f.name for f in families if f.type == "gauge" and f.name[:-8] in parents}
    assert all(name.endswith("_created") for name in created)
    for family in families:
        if family.name in created:
            continue
        where = f"{family.name} ({family.type})"
        assert family.name.startswith("tmf_events_"), f"{where}: no tmf_events_ prefix"
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", family.name), f"{where}: not snake_case"
        assert family.documentation.strip(), f"{where}: no HELP text"
        assert not family.name.endswith("_total"), f"{where}: _total belongs to the samples only"
        if family.type == "counter":
            sample_names = {s.name for s in family.samples}
            assert sample_names <= {f"{family.name}_total", f"{family.name}_created"}, where
        elif family.type == "histogram":
            assert family.name.endswith(_UNIT_SUFFIXES), f"{where}: no unit suffix"
            suffixes = {s.name[len(family.name) :] for s in family.samples}
            assert suffixes <= {"_bucket", "_count", "_sum", "_created"}, where
        elif family.type == "gauge":
            for sample in family.samples:
                assert not sample.name.endswith("_total"), f"{where}: a gauge named _total"
        else:
            raise AssertionError(f"{where}: unexpected metric type")
        if _TIME_WORDS.search(family.name):
            assert family.name.endswith("_seconds"), f"{where}: times are in seconds"
        assert "_ms" not in family.name and "milli" not in family.name, where

    types = {f.name: f.type for f in families}
    for counter in (
        "tmf_events_records_consumed",
        "tmf_events_events_emitted",
        "tmf_events_records_skipped",
        "tmf_events_dead_letters",
        "tmf_events_transactions",
        "tmf_events_restored_records",
        "tmf_events_rebalances",
        "tmf_events_offset_resets",
    ):
        assert types.get(counter) == "counter", f"{counter}: {types.get(counter)}"
    for histogram in (
        "tmf_events_commit_duration_seconds",
        "tmf_events_end_to_end_latency_seconds",
        "tmf_events_restore_duration_seconds",
        "tmf_events_batch_size_records",
    ):
        assert types.get(histogram) == "histogram", f"{histogram}: {types.get(histogram)}"
    for gauge in (
        "tmf_events_build_info",
        "tmf_events_ready",
        "tmf_events_state_keys",
        "tmf_events_consumer_lag_records",
    ):
        assert types.get(gauge) == "gauge", f"{gauge}: {types.get(gauge)}"

    build = next(f for f in families if f.name == "tmf_events_build_info")
    assert [(s.labels, s.value) for s in build.samples] == [
        ({"version": build.samples[0].labels["version"]}, 1.0)
    ]
    committed = next(f for f in families if f.name == "tmf_events_transactions")
    values = {
        s.labels.get("outcome"): s.value for s in committed.samples if s.name.endswith("_total")
    }
    assert values.get("committed", 0) > 0, values


def test_every_metric_the_deploy_files_query_is_exported(run: Run) -> None:
    """Alert rules and dashboards must not query names that no command exports."""
    files = [
        p
        for pattern in ("deploy/*.yml", "deploy/**/*.json", "deploy/helm/**/files/*")
        for p in REPO.glob(pattern)
        if p.is_file()
    ]
    if not files:
        pytest.skip("no deploy files with metric queries in this checkout")
    referenced: set[str] = set()
    for path in files:
        referenced |= set(re.findall(r"\btmf_events_[a-z0-9_]+", path.read_text(errors="replace")))
    # The processor's exposition as scraped, and the series the query API and the hub
    # export (their registries, built as the commands build them).
    hub = HubMetrics()
    hub.start_at_zero("v4", ENTITY_TYPES)
    exposition = run.exposition() + "".join(
        generate_latest(r).decode() for r in (ApiMetrics().registry, hub.registry)
    )
    exported: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        exported.add(family.name)
        if family.type == "counter":
            exported |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            exported |= {f"{family.name}{s}" for s in ("_bucket", "_count", "_sum", "_created")}
    unknown = sorted(referenced - exported)
    assert not unknown, f"deploy files query metrics no command exports: {unknown}"
