"""`tmf-events demo`: a readable change history through a real broker and the real processor."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from processor import clients
from processor.config import Settings
from processor.origins import Origins
from processor.records import InputRecord
from processor.task import new_task
from processor.timefmt import format_ms

SVC = "/tmf-api/serviceInventory/v4/service/"
RES = "/tmf-api/resourceInventory/v4/resource/"


def _svc(sid: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "href": SVC + sid,
        "@type": "Service",
        "name": extra.pop("name", f"Fibre access {sid}"),
        "state": state,
        "serviceSpecification": {"id": "fibre-1g", "name": "Fibre 1G"},
        **extra,
    }


def _res(rid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "href": RES + rid,
        "@type": "LogicalResource",
        "name": f"Port {rid}",
        "resourceStatus": status,
        "operationalState": extra.pop("operationalState", "enable"),
        **extra,
    }


def sample_history(start_ms: int) -> list[tuple[str, bytes | None, int]]:
    """(key, value, timestamp) triples: services and resources living through their lifecycle.

    The story starts at `start_ms` and moves a minute a step (record timestamps far in the
    past would fall out of the topic's retention at once).
    """

    def _t(minute: int) -> str:
        return format_ms(start_ms + minute * 60_000)

    up = "upsert"
    steps: list[tuple[str, dict[str, Any] | bytes | None]] = [
        (
            "svc-100",
            {
                "entityType": "service",
                "operation": up,
                "observedAt": _t(0),
                "correlationId": "order-7",
                "instance": _svc("svc-100", "designed"),
            },
        ),
        (
            "port-9",
            {
                "entityType": "resource",
                "observedAt": _t(1),
                "instance": _res("port-9", "available"),
            },
        ),
        (
            "svc-100",
            {
                "entityType": "service",
                "observedAt": _t(2),
                "correlationId": "order-7",
                "instance": _svc("svc-100", "reserved"),
            },
        ),
        (
            "svc-100",
            {
                "entityType": "service",
                "observedAt": _t(3),
                "correlationId": "order-7",
                "instance": _svc("svc-100", "active", name="Fibre access (1 Gbit/s)"),
            },
        ),
        # Only the private note changes: nothing public changed, no event.
        (
            "svc-100",
            {
                "entityType": "service",
                "observedAt": _t(4),
                "instance": _svc(
                    "svc-100",
                    "active",
                    name="Fibre access (1 Gbit/s)",
                    note=[{"text": "customer called"}],
                ),
            },
        ),
        (
            "port-9",
            {
                "entityType": "resource",
                "observedAt": _t(5),
                "instance": _res("port-9", "reserved", operationalState="disable"),
            },
        ),
        (
            "svc-200",
            {"entityType": "service", "observedAt": _t(6), "instance": _svc("svc-200", "active")},
        ),
        # The same record again: unchanged, no event.
        (
            "svc-200",
            {"entityType": "service", "observedAt": _t(7), "instance": _svc("svc-200", "active")},
        ),
        ("svc-bad", b'{"entityType": "service", "instance": '),  # broken JSON: dead letter
        ("svc-200", {"entityType": "service", "operation": "delete", "observedAt": _t(8)}),
        ("port-9", None),  # tombstone: delete
    ]
    out: list[tuple[str, bytes | None, int]] = []
    for minute, (key, value) in enumerate(steps):
        ts = start_ms + minute * 60_000
        out.append(
            (key, value if value is None or isinstance(value, bytes) else orjson.dumps(value), ts)
        )
    return out


def demo_settings(bootstrap: str) -> Settings:
    # Topics of their own per run: on a shared broker the demo touches nothing else.
    run = f"demo-{int(time.time())}"
    return Settings(
        bootstrap_servers=bootstrap,
        app_id=run,
        input_topic=f"{run}.inventory.changes",
        service_topic=f"{run}.tmf.service.events",
        resource_topic=f"{run}.tmf.resource.events",
        instance_id="demo-1",
        private_fields=["note"],
        http_port=0,
        commit_interval_ms=100,
        kafka={"session.timeout.ms": 10000, "max.poll.interval.ms": 10000},
    )


def expected_messages(settings: Settings, history: list[tuple[str, bytes | None, int]]) -> int:
    """How many messages the processor will emit: replay the history through the core."""
    task = new_task(settings)
    count = 0
    for offset, (key, value, ts) in enumerate(history):
        record = InputRecord(settings.input_topic, 0, offset, ts, key.encode(), value, [])
        count += len(task.process(record).messages)
    return count


@contextlib.contextmanager
def _broker(bootstrap: str | None, console: Console) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from processor.dev.broker import EmbeddedBroker

    with console.status("starting the embedded broker"), EmbeddedBroker() as broker:
        address = broker.start()
        console.print(f"embedded {broker.kind} broker on {address}")
        yield address


def run_demo(bootstrap: str | None = None, timeout: float = 120) -> int:
    from processor.connect import wait_for_kafka
    from processor.loop import Processor
    from processor.topics import ensure_topics

    console = Console()
    with _broker(bootstrap, console) as address:
        settings = demo_settings(address)
        if bootstrap:
            settings.with_origins(Origins(flags={"bootstrap_servers": "--bootstrap-servers"}))
            with console.status(f"reaching Kafka at {address}"):
                wait_for_kafka(settings)
        ensure_topics(settings, partitions=1)
        start_ms = (int(time.time()) // 60 - 15) * 60_000
        history = sample_history(start_ms)
        producer = Producer(clients.plain_producer(settings, "demo"))
        for key, value, ts in history:
            producer.produce(settings.input_topic, value, key.encode(), timestamp=ts)
        producer.flush(30)
        del producer
        console.print(f"produced {len(history)} change records to {settings.input_topic}")

        expected = expected_messages(settings, history)
        stop = threading.Event()
        processor = Processor(settings, stop=stop)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                processor.run()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work, name="processor", daemon=True)
        thread.start()
        try:
            rows = _collect(settings, expected, timeout, console)
        finally:
            stop.set()
            thread.join(30)
        if errors:
            raise errors[0]
        _print(console, rows, settings)
        _print_one(console, rows, settings)
        _next_steps(console)
        return 0 if len(rows) >= expected else 1


def _collect(settings: Settings, expected: int, timeout: float, console: Console) -> list[Any]:
    consumer = Consumer(clients.committed_reader(settings, "demo"))
    topics = [settings.service_topic, settings.resource_topic, settings.dlq_topic]
    consumer.assign([TopicPartition(t, 0, 0) for t in topics])
    rows: list[Any] = []
    deadline = time.monotonic() + timeout
    with console.status("processing: waiting for the committed events"):
        while len(rows) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    rows.append(msg)
    consumer.close()
    return rows


def _print(console: Console, rows: list[Any], settings: Settings) -> None:
    table = Table(title="Events emitted (read_committed)", show_lines=False)
    for col in ("time (UTC)", "subject", "event type", "version"):
        table.add_column(col, no_wrap=True, min_width=len(col))
    dead: list[Any] = []
    for msg in sorted(rows, key=lambda m: dict(m.headers() or []).get("ce_time", b"")):
        headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
        if msg.topic() == settings.dlq_topic:
            dead.append(headers)
            continue
        table.add_row(
            headers["ce_time"][11:23],
            headers["ce_subject"],
            headers["ce_type"].rsplit(".", 1)[-1],
            headers["ce_entityversion"],
        )
    console.print(table)
    for headers in dead:
        console.print(
            f"dead letter from offset {headers['tmf-events-source-offset']}: "
            f"[bold]{headers['tmf-events-error']}[/bold] ({headers['tmf-events-error-message']})"
        )
    console.print(
        "Not shown because nothing public changed: the private-note edit of svc-100 and the "
        "repeated svc-200 record.\n"
    )


def _print_one(console: Console, rows: list[Any], settings: Settings) -> None:
    """One event in full, as a consumer receives it: its headers and its JSON value."""
    events = sorted(
        (m for m in rows if m.topic() != settings.dlq_topic),
        key=lambda m: dict(m.headers() or []).get("ce_time", b""),
    )
    if not events:
        return
    # The first state change: it shows the chain (version, previous event id) too.
    msg = next(
        (m for m in events if b"StateChange" in dict(m.headers() or []).get("ce_type", b"")),
        events[0],
    )
    console.print(f"One event in full ({msg.topic()}, partition {msg.partition()}):")
    for name, value in msg.headers() or []:
        console.print(f"  [bold]{name}[/bold]: {(value or b'').decode()}", highlight=False)
    console.print_json(msg.value().decode())


def _next_steps(console: Console) -> None:
    console.print(
        "\nNext, against a broker of your own (`tmf-events broker` starts one on port 9092):\n"
        "  tmf-events topics                        create the topics\n"
        "  tmf-events run                           the processor; a progress line every 30 s\n"
        "  tmf-events load --count 1000 --rate 100  synthetic change records\n"
        "  tmf-events tail                          the events as they are committed\n"
        "  tmf-events api, tmf-events latest ID     an instance's latest event over HTTP\n"
        "  tmf-events replay FILE                   the same without Kafka (JSON Lines in)",
        highlight=False,
        soft_wrap=True,
    )
