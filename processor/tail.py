"""`tmf-events tail`: the events on the output topics as they are committed (read_committed),
one table row or one structured-mode CloudEvent (JSON) per line, filtered by subject and
type."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import TextIO

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from processor import clients
from processor.config import Settings
from processor.errors import UsageError
from processor.state.model import structured_cloudevent

Headers = list[tuple[str, bytes | None]]

COLUMNS = (("time", 24), ("subject", 20), ("type", 34), ("version", 7), ("id", 36))


@dataclass(frozen=True)
class Filter:
    """Events to show: every one when a set is empty; else its subject, resp. its type
    (`ce_type` in full or its last part, e.g. ServiceStateChangeEvent), must be listed."""

    subjects: Collection[str] = ()
    types: Collection[str] = ()

    def __call__(self, headers: dict[str, str]) -> bool:
        if self.subjects and headers.get("ce_subject") not in self.subjects:
            return False
        ce_type = headers.get("ce_type", "")
        return not self.types or ce_type in self.types or ce_type.rsplit(".", 1)[-1] in self.types


def header_text(headers: Headers) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers}


def header_row() -> str:
    return _row([name for name, _ in COLUMNS])


def table_row(headers: dict[str, str]) -> str:
    return _row(
        [
            headers.get("ce_time", ""),
            headers.get("ce_subject", ""),
            headers.get("ce_type", "").rsplit(".", 1)[-1],
            headers.get("ce_entityversion", ""),
            headers.get("ce_id", ""),
        ]
    )


def _row(cells: list[str]) -> str:
    # Fixed widths: rows are printed as they come, before the longest value is known.
    return "  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()


def json_line(headers: Headers, value: bytes | None) -> bytes:
    """The event as a structured-mode CloudEvent on one line."""
    data = value if value is not None else b"null"
    if b"\n" in data:  # a value written by someone else, pretty-printed
        data = orjson.dumps(orjson.loads(data))
    return structured_cloudevent(headers, data)


def follow(
    settings: Settings,
    out: TextIO,
    stop: threading.Event,
    *,
    from_beginning: bool = False,
    as_json: bool = False,
    only: Filter | None = None,
    count: int = 0,
) -> int:
    """Print events until `stop` is set (or `count` were printed); return how many."""
    show = only or Filter()
    consumer = Consumer(clients.committed_reader(settings, "tail"))
    try:
        consumer.assign(_partitions(consumer, settings, from_beginning))
        if not as_json:
            print(header_row(), file=out, flush=True)
        printed = 0
        while not stop.is_set() and not (count and printed >= count):
            for msg in consumer.consume(100, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise UsageError(f"reading {msg.topic()}: {err.str()}")
                    continue
                headers: Headers = list(msg.headers() or ())  # type: ignore[arg-type]
                text = header_text(headers)
                if not show(text):
                    continue
                if as_json:
                    out.write(json_line(headers, msg.value()).decode("utf-8", "replace") + "\n")
                else:
                    out.write(table_row(text) + "\n")
                out.flush()
                printed += 1
                if count and printed >= count:
                    break
        return printed
    finally:
        consumer.close()


def _partitions(
    consumer: Consumer, settings: Settings, from_beginning: bool
) -> list[TopicPartition]:
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    out: list[TopicPartition] = []
    for setting, name in (
        ("service_topic", settings.service_topic),
        ("resource_topic", settings.resource_topic),
    ):
        meta = consumer.list_topics(name, timeout=settings.connect_timeout_ms / 1000)
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            raise UsageError(
                f"output topic {name} does not exist",
                "create it with `tmf-events topics` (or start `tmf-events run`), or point "
                f"{setting} at the right topic",
                origin=settings.origin(setting),
            )
        out += [TopicPartition(name, p, start) for p in sorted(topic.partitions)]
    return out
