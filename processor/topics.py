"""Topic creation and the partition-count check `run` makes before it starts (docs/state.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from processor import clients
from processor.config import Settings

log = logging.getLogger(__name__)


class TopicError(Exception):
    """A topic layout the processor cannot run with; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class TopicPlan:
    name: str
    partitions: int
    config: dict[str, str]


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(clients.admin(settings))


def partition_counts(admin: AdminClient, names: list[str], timeout: float = 15) -> dict[str, int]:
    """Partition count of each existing topic among `names`."""
    meta = admin.list_topics(timeout=timeout)
    out: dict[str, int] = {}
    for name in names:
        topic = meta.topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            out[name] = len(topic.partitions)
    return out


def plan_topics(settings: Settings, input_partitions: int) -> list[TopicPlan]:
    # Events are kept as a history (a year by default), longer than the broker's default.
    events = {"retention.ms": str(settings.events_retention_ms)}
    return [
        TopicPlan(settings.input_topic, input_partitions, {}),
        TopicPlan(settings.service_topic, input_partitions, events),
        TopicPlan(settings.resource_topic, input_partitions, events),
        TopicPlan(settings.changelog_topic, input_partitions, {"cleanup.policy": "compact"}),
        # Dead letters keep the input's partition number, so as many partitions.
        TopicPlan(settings.dlq_topic, input_partitions, {}),
    ]


def ensure_topics(
    settings: Settings,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    timeout: float = 30,
) -> dict[str, int]:
    """Create the missing topics; return every topic's partition count.

    An existing input topic sets the partition count of the others. Raises TopicError when
    the changelog exists with another partition count than the input (state would be read
    from the wrong partitions).
    """
    admin = admin_client(settings)
    names = [p.name for p in plan_topics(settings, 1)]
    existing = partition_counts(admin, names, timeout)
    input_partitions = existing.get(settings.input_topic, partitions)
    missing = [p for p in plan_topics(settings, input_partitions) if p.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(p.name, p.partitions, replication_factor, config=p.config) for p in missing],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
        existing = _wait_for(admin, names, timeout)
    check_layout(settings, existing)
    return existing


def _wait_for(admin: AdminClient, names: list[str], timeout: float) -> dict[str, int]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        counts = partition_counts(admin, names, timeout)
        if len(counts) == len(names) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)  # metadata propagation; bounded by the deadline


def check_layout(settings: Settings, counts: dict[str, int]) -> None:
    inp = counts.get(settings.input_topic)
    if inp is None:
        raise TopicError(f"input topic {settings.input_topic} does not exist")
    log_ = counts.get(settings.changelog_topic)
    if log_ is None:
        raise TopicError(f"changelog topic {settings.changelog_topic} does not exist")
    if log_ != inp:
        raise TopicError(
            f"changelog topic {settings.changelog_topic} has {log_} partitions but the input "
            f"topic {settings.input_topic} has {inp}: state of input partition p lives in "
            f"changelog partition p, so both need the same count. Recreate the changelog "
            f"with {inp} partitions (the processor rebuilds nothing by itself)."
        )
    dlq = counts.get(settings.dlq_topic)
    if dlq is not None and dlq < inp:
        raise TopicError(
            f"dead-letter topic {settings.dlq_topic} has {dlq} partitions, fewer than the "
            f"input's {inp}: dead letters keep their input partition number"
        )
