"""Metrics the loop publishes in bulk must read as if observed one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processor.hub.metrics import HubMetrics
from processor.metrics import Metrics

NOW = 1_800_000_000.0


def _samples(metrics: Metrics) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in metrics.latency.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=int(NOW * 1000) + 5_000),  # future times: 0 s
            st.sampled_from([int(NOW * 1000) - ms for ms in (5, 10, 250, 1000, 60_000)]),
        ),
        max_size=60,
    )
)
def test_bulk_latencies_equal_one_observe_per_event(times_ms: list[int]) -> None:
    bulk, single = Metrics(), Metrics()
    bulk.observe_latencies(NOW, times_ms)
    for t in times_ms:
        single.latency.observe(max(0.0, NOW - t / 1000.0))
    got, want = _samples(bulk), _samples(single)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert abs(got[name] - value) <= 1e-6 * max(1.0, abs(value)), name


def test_bulk_latencies_count_every_event() -> None:
    metrics = Metrics()
    metrics.observe_latencies(NOW, [int(NOW * 1000) - 20, int(NOW * 1000) - 3_000])
    count = metrics.registry.get_sample_value("tmf_events_end_to_end_latency_seconds_count")
    le_25ms = metrics.registry.get_sample_value(
        "tmf_events_end_to_end_latency_seconds_bucket", {"le": "0.025"}
    )
    assert (count, le_25ms) == (2.0, 1.0)


def _series(metrics: Metrics | HubMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_known_label_values_start_at_zero() -> None:
    from processor.metrics import SKIP_REASONS
    from processor.records import REASONS

    metrics = Metrics()
    for name, label, values in (
        ("tmf_events_dead_letters_total", "reason", REASONS),
        ("tmf_events_records_skipped_total", "reason", SKIP_REASONS),
        ("tmf_events_transactions_total", "outcome", ("committed", "aborted")),
        ("tmf_events_rebalances_total", "kind", ("assign", "revoke", "lost")),
        ("tmf_events_core_records_total", "path", ("c", "python")),
    ):
        assert _series(metrics, name) == {((label, v),): 0.0 for v in values}, name
    assert set(SKIP_REASONS) == {"unchanged", "stale", "unknown_delete", "disabled", "replayed"}


def test_events_start_at_zero_for_the_profile_and_the_enabled_entity_types() -> None:
    v4 = _series(Metrics(), "tmf_events_events_emitted_total")
    assert len(v4) == 8 and set(v4.values()) == {0.0}
    assert (("entity_type", "resource"), ("event_type", "ResourceStateChangeEvent")) in v4
    v5 = _series(
        Metrics(tmf_version="v5", entity_types=["service"]), "tmf_events_events_emitted_total"
    )
    assert {dict(k)["event_type"] for k in v5} == {
        "ServiceCreateEvent",
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
        "ServiceOperatingStatusChangeEvent",
        "ServiceDeleteEvent",
    }


def test_the_hubs_known_series_start_at_zero() -> None:
    hub = HubMetrics()
    hub.start_at_zero("v4", ["service"])
    deliveries = _series(hub, "tmf_events_hub_deliveries_total")
    assert len(deliveries) == 4 * 2 and set(deliveries.values()) == {0.0}
    assert (
        ("entity_type", "service"),
        ("event_type", "ServiceDeleteEvent"),
        ("outcome", "failed"),
    ) in deliveries
    registrations = _series(hub, "tmf_events_hub_registrations_total")
    assert (("operation", "register"), ("outcome", "created")) in registrations
    assert _series(hub, "tmf_events_hub_retries_total") == {(("entity_type", "service"),): 0.0}
