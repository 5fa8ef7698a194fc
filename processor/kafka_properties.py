"""librdkafka properties: which client role reads which, the ones tmf-events keeps for
itself, and the check of a user's `kafka` setting (processor/clients.py applies them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Role = Literal["consumer", "producer", "admin"]
KafkaValue = str | int | float | bool

# librdkafka's consumer-only and producer-only properties (CONFIGURATION.md, columns C and
# P), by prefix; anything else is read by every client type.
CONSUMER_ONLY = (
    "group.",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.",
    "auto.",
    "queued.",
    "fetch.",
    "max.partition.fetch.bytes",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "offset.store.",
    "consume.callback.max.messages",
)
PRODUCER_ONLY = (
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "compression.",
    "batch.",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "partitioner",
    "produce.offset.report",
    "queuing.strategy",
)

# Set by the tool for exactly-once and for the layout of its topics; a user's value would
# silently break a guarantee, so the settings name the setting to use instead.
GUARDED: dict[str, str] = {
    "bootstrap.servers": "set `bootstrap_servers` instead",
    "group.id": "it is `app_id`",
    "group.instance.id": "it is `instance_id` (see `static_membership`)",
    "transactional.id": "it is `<app_id>-<instance_id>`",
    "enable.idempotence": "transactions need it on",
    "enable.auto.commit": "offsets commit inside the transaction",
    "enable.auto.offset.store": "offsets commit inside the transaction",
    "isolation.level": "the processor reads read_committed",
    "partitioner": "events are partitioned like Java clients (murmur2_random)",
    "enable.partition.eof": "restoring relies on it",
}


def role_reads(role: Role, name: str) -> bool:
    """Whether a client of this role reads the librdkafka property `name`."""
    if name.startswith(CONSUMER_ONLY):
        return role == "consumer"
    if name.startswith(PRODUCER_ONLY):
        return role == "producer"
    return True


def unknown_properties(extra: Mapping[str, KafkaValue]) -> list[tuple[str, str]]:
    """(name, librdkafka's reason) for each property whose name or value librdkafka refuses.

    Each property is tried alone: what depends on others (a SASL mechanism for a protocol)
    is checked when the real client is created.
    """
    if not extra:
        return []
    from confluent_kafka import KafkaException, Producer

    refused: list[tuple[str, str]] = []
    for name, value in extra.items():
        try:
            # No bootstrap servers: the client is created and dropped without connecting.
            Producer({name: value, "log_level": 0})
        except KafkaException as exc:
            reason = _reason(exc)
            if reason.startswith(("No such configuration property", "Invalid value")):
                refused.append((name, reason))
        except (TypeError, ValueError) as exc:
            refused.append((name, str(exc)))
    return refused


def _reason(exc: Exception) -> str:
    err = exc.args[0] if exc.args else exc
    return str(err.str()) if hasattr(err, "str") else str(err)
