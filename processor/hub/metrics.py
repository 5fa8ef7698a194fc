"""Prometheus metrics of `tmf-events hub` (each replica reports what it does itself)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry

from processor.metrics import Series, package_version
from processor.tmf import event_name, kinds

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class HubMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        s = Series(self.registry, "tmf_events_hub_")
        self.deliveries = s.counter(
            "deliveries",
            "Delivery attempts to listeners by outcome (delivered: a 2xx answer; failed: "
            "anything else, retried)",
            "entity_type",
            "event_type",
            "outcome",
        )
        self.retries = s.counter(
            "retries", "Delivery attempts that repeated a failed one", "entity_type"
        )
        self.uncertain = s.counter(
            "uncertain_deliveries",
            "Failed attempts whose request was sent but got no answer: the listener may have "
            "the event, and the retry may be a copy",
            "entity_type",
        )
        self.latency = s.histogram(
            "delivery_latency_seconds",
            "From the event's write to Kafka to the listener's 2xx answer",
            buckets=_SECONDS,
        )
        self.request_duration = s.histogram(
            "request_duration_seconds",
            "Duration of one POST to a listener, answered or not",
            buckets=_SECONDS,
        )
        self.paused = s.gauge(
            "paused_subscriptions",
            "Subscriptions this replica has paused after failing for hub_pause_after_ms",
        )
        self.backlog = s.gauge(
            "backlog_records",
            "Output records not yet delivered (or skipped) per subscription, in the partitions "
            "this replica owns",
            "subscription",
        )
        self.subscriptions = s.gauge(
            "subscriptions", "Registered subscriptions (every replica knows all of them)"
        )
        self.owned_partitions = s.gauge(
            "owned_partitions", "Output partitions this replica delivers from"
        )
        self.registrations = s.counter(
            "registrations",
            "POST /hub and DELETE /hub/{id} requests by outcome",
            "operation",
            "outcome",
        )
        self.ready = s.gauge("ready", "1 when the hub has read its whole topic")
        self.build_info = s.gauge("build_info", "Build information", "version")
        self.build_info.labels(package_version()).set(1)

    def start_at_zero(self, tmf_version: str, entity_types: Iterable[str]) -> None:
        """The series whose label values are known start at 0 (alerts on increase() see the
        first failure; dashboards show 0, not "no data")."""
        for entity_type in entity_types:
            self.retries.labels(entity_type)
            self.uncertain.labels(entity_type)
            for kind in kinds(entity_type, tmf_version):
                for outcome in ("delivered", "failed"):
                    self.deliveries.labels(entity_type, event_name(entity_type, kind), outcome)
        for operation, outcome in (
            ("register", "created"),
            ("unregister", "deleted"),
            ("unregister", "404"),
        ):
            self.registrations.labels(operation, outcome)
