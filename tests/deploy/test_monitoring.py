"""Prometheus config, alert rules and the Grafana dashboard against the metrics contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, run, tool

pytestmark = pytest.mark.deploy

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tmf-events.json"

# The metrics the code exposes (processor/metrics.py), by type.
COUNTERS = {
    "tmf_events_records_consumed_total",
    "tmf_events_events_emitted_total",
    "tmf_events_records_skipped_total",
    "tmf_events_dead_letters_total",
    "tmf_events_transactions_total",
    "tmf_events_restored_records_total",
    "tmf_events_rebalances_total",
    "tmf_events_offset_resets_total",
    "tmf_events_core_records_total",
}
GAUGES = {
    "tmf_events_consumer_lag_records",
    "tmf_events_state_keys",
    "tmf_events_ready",
    "tmf_events_build_info",
}
HISTOGRAMS = {
    "tmf_events_commit_duration_seconds",
    "tmf_events_batch_size_records",
    "tmf_events_end_to_end_latency_seconds",
    "tmf_events_restore_duration_seconds",
}
# The hub's series the alerts use (processor/hub/metrics.py).
HUB_SERIES = {"tmf_events_hub_paused_subscriptions"}
SERIES = (
    HUB_SERIES
    | COUNTERS
    | GAUGES
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
    | {"up"}
)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\btmf_events_[a-z0-9_]+\b", expr)) | (
        {"up"} if re.search(r"\bup\s*\{", expr) else set()
    )


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((DEPLOY / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def dashboard_exprs() -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard()["panels"]}


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by what they expand to."""
    return (
        expr.replace("$__rate_interval", "1m").replace('"$job"', '".*"').replace('"$pod"', '".*"')
    )


# --- promtool ----------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config() -> None:
    result = run([tool("promtool"), "check", "config", str(DEPLOY / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts() -> None:
    result = run([tool("promtool"), "test", "rules", str(DEPLOY / "alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda rules: rules.replace("[10m]", "[10 minutes]", 1), "parse"),
        (lambda rules: rules.replace("for: 10m", "for: ten minutes", 1), "not a valid duration"),
        (
            lambda rules: rules.replace(
                "expr: tmf_events_ready == 0", "expr: tmf_events_ready ==", 1
            ),
            "parse",
        ),
    ],
    ids=["bad range", "bad duration", "bad expression"],
)
def test_promtool_rejects_a_broken_rule_file(tmp_path: Path, mangle: Any, error: str) -> None:
    original = (DEPLOY / "alerts.yml").read_text(encoding="utf-8")
    broken = mangle(original)
    assert broken != original
    path = tmp_path / "alerts.yml"
    path.write_text(broken, encoding="utf-8")
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode != 0
    assert error in (result.stdout + result.stderr).lower()


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every panel query, as recording rules, through promtool's parser."""
    rules = [
        {"record": f"dashboard:panel{i}:q{j}", "expr": as_promql(expr)}
        for i, exprs in enumerate(dashboard_exprs().values())
        for j, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


# --- the metrics contract ----------------------------------------------------------------

TARGET_LABELS = {"job", "instance", "pod", "namespace", "le"}


def code_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """{series name: (type, label names)} as processor.metrics registers them."""
    from prometheus_client.metrics import MetricWrapperBase

    from processor.metrics import Metrics

    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            found[name] = (str(metric._type), tuple(metric._labelnames))
    return found


def test_the_contract_is_what_the_code_registers() -> None:
    registered = code_metrics()
    by_type = {
        kind: {name for name, (t, _) in registered.items() if t == kind}
        for kind in ("counter", "gauge", "histogram")
    }
    assert by_type == {"counter": COUNTERS, "gauge": GAUGES, "histogram": HISTOGRAMS}


def test_the_hub_series_the_alerts_use_are_registered() -> None:
    from processor.hub.metrics import HubMetrics

    names = {m.name for m in HubMetrics().registry.collect()}
    assert names >= HUB_SERIES


def test_queries_group_and_filter_by_labels_the_metrics_have() -> None:
    labels = {name: set(names) for name, (_, names) in code_metrics().items()}
    for suffix in ("bucket", "sum", "count"):
        for histogram in HISTOGRAMS:
            labels[f"{histogram}_{suffix}"] = labels[histogram]
    exprs = [r["expr"] for r in alert_rules()] + [e for v in dashboard_exprs().values() for e in v]
    for expr in exprs:
        known = TARGET_LABELS.union(*(labels.get(m, set()) for m in metric_names(expr)))
        used = {
            label.strip()
            for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
            for label in group.split(",")
            if label.strip()
        }
        used |= set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expr))
        assert used <= known, f"{expr!r} uses labels {sorted(used - known)} no metric has"


def test_alerts_and_dashboard_use_only_exposed_metrics() -> None:
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        used[f"alert {rule['alert']}"] = metric_names(rule["expr"])
    for title, exprs in dashboard_exprs().items():
        used[f"panel {title!r}"] = set().union(*(metric_names(e) for e in exprs))
    for where, names in used.items():
        assert names, f"{where} queries no tmf-events metric"
        assert names <= SERIES, f"{where} uses unknown series {sorted(names - SERIES)}"


def test_counters_are_rated_and_histograms_are_aggregated_by_le() -> None:
    exprs = [r["expr"] for r in alert_rules()] + [e for v in dashboard_exprs().values() for e in v]
    for expr in exprs:
        for counter in COUNTERS & metric_names(expr):
            assert re.search(rf"(rate|increase)\({counter}\b", expr), f"raw counter in {expr!r}"
        for quantile in re.findall(r"histogram_quantile\(([^,]+),\s*(.*)", expr):
            assert "by (le)" in quantile[1] or "by (le," in quantile[1], expr


def test_alerts_are_labelled_and_documented() -> None:
    names = set()
    for rule in alert_rules():
        assert rule["alert"].startswith("TmfEvents")
        names.add(rule["alert"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    expected = {
        "TmfEventsConsumerLagGrowing",
        "TmfEventsDeadLetters",
        "TmfEventsTransactionsAborting",
        "TmfEventsNotReady",
        "TmfEventsNoCommits",
    }
    assert expected <= names
    tested = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text(encoding="utf-8"))
    covered = {a["alertname"] for t in tested["tests"] for a in t["alert_rule_test"]}
    assert covered == names, f"alerts without a promtool unit test: {sorted(names - covered)}"


@pytest.mark.parametrize(
    ("needle", "what"),
    [
        ("rate(tmf_events_records_consumed_total", "throughput"),
        ("by (entity_type, event_type) (rate(tmf_events_events_emitted_total", "events by type"),
        ("tmf_events_consumer_lag_records", "lag"),
        (
            "histogram_quantile(0.5, sum by (le) (rate(tmf_events_end_to_end_latency_seconds_",
            "p50",
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(tmf_events_end_to_end_latency_seconds_",
            "p99",
        ),
        ("by (reason) (rate(tmf_events_dead_letters_total", "dead letters by reason"),
        ("tmf_events_commit_duration_seconds_bucket", "commit duration"),
        ("tmf_events_restore_duration_seconds", "restore time"),
        ("by (outcome) (rate(tmf_events_transactions_total", "committed/aborted"),
    ],
)
def test_dashboard_shows(needle: str, what: str) -> None:
    exprs = [e for v in dashboard_exprs().values() for e in v]
    assert any(needle in e for e in exprs), f"no panel shows {what}"


def test_dashboard_is_provisionable() -> None:
    data = dashboard()
    assert data["uid"] == "tmf-events"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for var in re.findall(r"\$(\w+)", json.dumps(panel["targets"])):
            assert var in variables or var.startswith("__"), f"{panel['title']}: ${var} undefined"
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


def test_prometheus_rule_files_resolve_to_the_alerts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    files = [(DEPLOY / f).resolve() for f in config["rule_files"]]
    assert files == [(DEPLOY / "alerts.yml").resolve()]
    # deploy/alerts.yml is the chart's files/alerts.yml: one file for compose and Helm.
    assert files[0] == (DEPLOY / "helm" / "tmf-events" / "files" / "alerts.yml").resolve()
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    (up_rule,) = [r for r in alert_rules() if "up{" in r["expr"]]
    pattern = re.search(r'job=~"([^"]+)"', up_rule["expr"])
    assert pattern
    assert {j for j in jobs if re.fullmatch(pattern.group(1), j)} == {
        "tmf-events-processor",
        "tmf-events-api",
        "tmf-events-hub",
    }
