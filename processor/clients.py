"""Every Kafka client the commands create, configured by one policy.

The `kafka` setting passes librdkafka properties through to the clients. One rule decides
which client gets which: a property goes to every client whose role reads it — consumer
properties to consumers, producer properties to producers, connection and security
properties to all (admin clients get only those; processor/kafka_properties.py). A user's
value beats the tool's default, except for the properties exactly-once rests on
(`kafka_properties.GUARDED`), which the settings refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from processor.kafka_properties import Role, role_reads
from processor.logs import KAFKA_LOGGER

if TYPE_CHECKING:
    from processor.config import Settings


def build(
    settings: Settings,
    role: Role,
    client_id: str,
    defaults: Mapping[str, Any],
    kept: Mapping[str, Any] | None = None,
    *,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """The configuration of one client: the tool's `defaults`, then the user's `kafka`
    properties this role reads (user values win), then what the tool `kept` for itself
    (its guarantees rest on those) and the connection."""
    conf: dict[str, Any] = dict(defaults)
    conf.update({k: v for k, v in settings.kafka.items() if role_reads(role, k)})
    conf.update(kept or {})
    conf["bootstrap.servers"] = bootstrap or settings.bootstrap_servers
    conf["client.id"] = client_id
    conf["logger"] = KAFKA_LOGGER
    return conf


# A read_committed consumer whose offsets move only inside transactions, or not at all.
_NO_AUTO_COMMIT = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
}


def processor_consumer(settings: Settings) -> dict[str, Any]:
    """The processor's input consumer: read_committed, offsets only through transactions."""
    kept: dict[str, Any] = {"group.id": settings.app_id, **_NO_AUTO_COMMIT}
    if settings.static_membership:
        kept["group.instance.id"] = settings.instance_id
    return build(
        settings,
        "consumer",
        f"{settings.app_id}-{settings.instance_id}",
        {"auto.offset.reset": "earliest", "partition.assignment.strategy": "cooperative-sticky"},
        kept,
    )


def transactional_producer(settings: Settings) -> dict[str, Any]:
    """The processor's one transactional producer (fences its predecessor by its id)."""
    defaults = {
        "transaction.timeout.ms": 10000,
        "linger.ms": 5,
        # State records repeat their last event's JSON: lz4 halves what a restore reads.
        "compression.type": "lz4",
    }
    kept = {
        "transactional.id": f"{settings.app_id}-{settings.instance_id}",
        # Java's default partitioner: Java consumers co-partition by key.
        "partitioner": "murmur2_random",
        # Only failed deliveries call back: no per-message cost.
        "delivery.report.only.error": True,
    }
    client_id = f"{settings.app_id}-{settings.instance_id}"
    return build(settings, "producer", client_id, defaults, kept)


def committed_reader(settings: Settings, purpose: str) -> dict[str, Any]:
    """An assign-mode, read_committed consumer that reads partitions to their end (restore,
    snapshots, the query API's follower, `tail`); it never commits offsets."""
    defaults = {
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        # Some Kafka-compatible brokers ignore fetch.max.bytes and answer with everything up
        # to the end; the client must not reject (and endlessly re-fetch) that answer.
        "receive.message.max.bytes": 2_147_483_647,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
    }
    # The group id is required by the client even in assign mode; never committed to.
    kept = {"group.id": f"{settings.app_id}-{purpose}", "enable.partition.eof": True}
    client_id = f"{settings.app_id}-{settings.instance_id}-{purpose}"
    return build(settings, "consumer", client_id, defaults, {**kept, **_NO_AUTO_COMMIT})


def plain_producer(
    settings: Settings, purpose: str, *, bootstrap: str | None = None
) -> dict[str, Any]:
    """An idempotent, non-transactional producer keyed like the upstream systems (`load`,
    `demo`)."""
    defaults = {
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # A record no broker took within the connect bound fails (and `load` stops) rather
        # than waiting librdkafka's five minutes.
        "message.timeout.ms": settings.connect_timeout_ms,
    }
    kept = {"enable.idempotence": True, "partitioner": "murmur2_random"}
    client_id = f"{settings.app_id}-{purpose}"
    return build(settings, "producer", client_id, defaults, kept, bootstrap=bootstrap)


def hub_member(settings: Settings) -> dict[str, Any]:
    """A hub replica's membership in the hub's group on the output topics: it only learns
    which output partitions this replica delivers from (it pauses them and reads nothing)."""
    conf = build(
        settings,
        "consumer",
        f"{settings.app_id}-hub-{settings.instance_id}",
        {"partition.assignment.strategy": "cooperative-sticky"},
    )
    conf.update(
        {
            "group.id": f"{settings.app_id}-hub",
            # Positions live in the hub topic, per subscription.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
        }
    )
    if settings.static_membership:
        conf["group.instance.id"] = f"hub-{settings.instance_id}"
    return conf


def hub_cursor(settings: Settings, subscription_id: str) -> dict[str, Any]:
    """One subscription's own reader of the output partitions a hub replica owns: a
    `committed_reader` that buffers little, since a replica holds one per subscription."""
    conf = committed_reader(settings, f"hub-{subscription_id}")
    for name, value in {
        "queued.max.messages.kbytes": 2048,
        "fetch.max.bytes": 4 * 1024 * 1024,
        "max.partition.fetch.bytes": 1024 * 1024,
        "enable.partition.eof": False,
    }.items():
        if name not in settings.kafka or name == "enable.partition.eof":
            conf[name] = value
    return conf


def admin(settings: Settings) -> dict[str, Any]:
    """An admin client: connection and security properties only."""
    return build(settings, "admin", f"{settings.app_id}-admin", {})
