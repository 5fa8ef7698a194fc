"""Prometheus metrics. The task counts per batch in plain dicts; the loop publishes them here
once the batch has committed, so they match what read_committed consumers see."""

from __future__ import annotations

import contextlib
import time
import typing
from bisect import bisect_left
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from processor.decide import Outcome
from processor.records import REASONS
from processor.tmf import ENTITY_TYPES, event_name, kinds

if TYPE_CHECKING:
    from processor.config import Settings
    from processor.task import Tallies

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)

# Label values known before anything happens: their series start at 0, so alerts on
# increase() see the first one and dashboards show 0 instead of "no data".
SKIP_REASONS = tuple(
    o for o in typing.get_args(Outcome) if o not in ("emit", "mismatch", "invalid")
)  # mismatch and invalid records are dead-lettered
TRANSACTION_OUTCOMES = ("committed", "aborted")
REBALANCE_KINDS = ("assign", "revoke", "lost")
CORE_PATHS = ("c", "python")


def package_version() -> str:
    try:
        return version("tmf-events")
    except PackageNotFoundError:
        return "0+unknown"


class Series:
    """Makes the series of one registry under one name prefix: a line per series."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.registry = registry
        self.prefix = prefix

    def counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(self.prefix + name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(self.prefix + name, doc, labels, registry=self.registry)

    def histogram(self, name: str, doc: str, *labels: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(self.prefix + name, doc, labels, buckets=buckets, registry=self.registry)


class Metrics:
    """The processor's series; the events of `tmf_version` for `entity_types` and every
    other known label value start at 0."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        tmf_version: str = "v4",
        entity_types: Iterable[str] = ENTITY_TYPES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        s = Series(self.registry, "tmf_events_")
        self.consumed = s.counter(
            "records_consumed", "Input records consumed", "topic", "partition"
        )
        self.emitted = s.counter(
            "events_emitted", "TMF events emitted (committed)", "entity_type", "event_type"
        )
        self.skipped = s.counter(
            "records_skipped", "Input records that emitted nothing, by reason", "reason"
        )
        self.dead_letters = s.counter(
            "dead_letters", "Records sent to the dead-letter topic, by reason", "reason"
        )
        self.core_records = s.counter(
            "core_records",
            "Committed input records by the decision path that took them (c: the C fast "
            "path; python: everything it hands on, and all records where it is not built)",
            "path",
        )
        self.transactions = s.counter("transactions", "Kafka transactions by outcome", "outcome")
        self.commit_duration = s.histogram(
            "commit_duration_seconds",
            "Flush + offsets + commit time per batch",
            buckets=_LATENCY_BUCKETS,
        )
        self.batch_size = s.histogram(
            "batch_size_records", "Input records per committed batch", buckets=_BATCH_BUCKETS
        )
        self.latency = s.histogram(
            "end_to_end_latency_seconds",
            "From the change's event time to the commit of its events",
            buckets=_LATENCY_BUCKETS,
        )
        self.lag = s.gauge(
            "consumer_lag_records", "Input records not yet consumed, per partition", "partition"
        )
        self.state_keys = s.gauge(
            "state_keys", "Instances held in the state store, per partition", "partition"
        )
        self.restore_duration = s.histogram(
            "restore_duration_seconds",
            "Time to restore one partition's state",
            buckets=_LATENCY_BUCKETS,
        )
        self.restored = s.counter("restored_records", "Changelog records read during restores")
        self.rebalances = s.counter("rebalances", "Rebalance callbacks by kind", "kind")
        self.ready = s.gauge("ready", "1 when assigned partitions are restored")
        self.offset_resets = s.counter(
            "offset_resets", "Partitions whose committed offset was no longer retained"
        )
        self.build_info = s.gauge("build_info", "Build information", "version")
        self.build_info.labels(package_version()).set(1)
        self._start_at_zero(tmf_version, entity_types)

    @classmethod
    def of(cls, settings: Settings) -> Metrics:
        """The series of a processor with these settings (its profile's event types)."""
        return cls(tmf_version=settings.tmf_version, entity_types=settings.entity_types)

    def _start_at_zero(self, tmf_version: str, entity_types: Iterable[str]) -> None:
        for entity_type in entity_types:
            for kind in kinds(entity_type, tmf_version):
                self.emitted.labels(entity_type, event_name(entity_type, kind))
        for counter, values in (
            (self.skipped, SKIP_REASONS),
            (self.dead_letters, REASONS),
            (self.transactions, TRANSACTION_OUTCOMES),
            (self.rebalances, REBALANCE_KINDS),
            (self.core_records, CORE_PATHS),
        ):
            for value in values:
                counter.labels(value)

    def observe_latencies(self, now: float, times_ms: list[int]) -> None:
        """The latency of every committed event, from its event time (epoch ms) to `now`.

        A batch has up to thousands: counted per bucket first and added to the histogram's
        own series (Histogram.observe takes two locks and walks the buckets per value).
        Falls back to observe() where the histogram keeps its series differently.
        """
        hist = self.latency
        bounds = getattr(hist, "_upper_bounds", None)
        buckets = getattr(hist, "_buckets", None)
        total = getattr(hist, "_sum", None)
        if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
            for t in times_ms:
                hist.observe(max(0.0, now - t / 1000.0))
            return
        counts = [0] * len(bounds)
        seconds = 0.0
        for t in times_ms:
            value = now - t / 1000.0
            value = max(value, 0.0)
            seconds += value
            counts[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe()
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
        if times_ms:
            total.inc(seconds)

    def publish_lag(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Consumer lag per partition, from the client's cached watermarks."""
        for tp in consumer.position(partitions):
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if tp.offset >= 0 and high >= 0:
                self.lag.labels(str(tp.partition)).set(max(0, high - tp.offset))

    def forget_partition(self, partition: int) -> None:
        """A partition this replica no longer owns: its gauges go (another replica has them)."""
        for gauge in (self.state_keys, self.lag):
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))

    def publish_state_keys(self, counts: dict[int, int]) -> None:
        for partition, n in counts.items():
            self.state_keys.labels(str(partition)).set(n)

    def publish_commit(self, tallies: Tallies, seconds: float, keys: dict[int, int]) -> None:
        """A committed batch: its tallies, its commit's duration, the partitions' key counts."""
        self.publish_state_keys(keys)
        self.commit_duration.observe(seconds)
        self.transactions.labels("committed").inc()
        self.publish_batch(tallies)
        self.observe_latencies(time.time(), tallies.times_ms)

    def publish_batch(self, tallies: Tallies) -> None:
        for (topic, partition), n in tallies.consumed.items():
            self.consumed.labels(topic, str(partition)).inc(n)
        for (entity_type, event_type), n in tallies.emitted.items():
            self.emitted.labels(entity_type, event_type).inc(n)
        for reason, n in tallies.skipped.items():
            self.skipped.labels(reason).inc(n)
        for reason, n in tallies.dead.items():
            self.dead_letters.labels(reason).inc(n)
        self.batch_size.observe(tallies.records)
        self.core_records.labels("c").inc(tallies.native)
        self.core_records.labels("python").inc(tallies.records - tallies.native)


class ApiMetrics:
    """The query API's own series: readiness, size and build (none of the processor's)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        s = Series(self.registry, "tmf_events_")
        self.ready = s.gauge("ready", "1 when the changelog has been read to its end")
        self.instances = s.gauge("api_instances", "Instances the query API knows")
        self.build_info = s.gauge("build_info", "Build information", "version")
        self.build_info.labels(package_version()).set(1)
