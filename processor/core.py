"""One input record in, messages and the next state out: the code path `run` and `replay` share.

Pure: the same records in the same order, against the same state, give the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from processor.config import Settings
from processor.decide import Policy, decide
from processor.dlq import dead_letter
from processor.instance_check import InstanceCheck
from processor.messages import OutMessage, Result
from processor.native import MessageLimits, build_engine
from processor.records import Decoder, InputRecord, Rejection, traceparent_of
from processor.render import Renderer
from processor.state.codec import encode_state
from processor.state.model import StoredEvent
from processor.state.store import StateForm

if TYPE_CHECKING:
    from processor._native import Engine


class Core:
    """Decode, decide, render and encode one record against its key's prior state.

    States come in and go out in the form of `form` (the store's): the C path, where built,
    reads and writes the packed form itself; the Python path decodes the prior state and
    encodes the next one. Each record's result is the same whichever path takes it.
    """

    def __init__(self, settings: Settings, form: StateForm, native: bool = True) -> None:
        self.settings = settings
        self.form = form
        instance_check = InstanceCheck(settings.tmf_version)
        self.decoder = Decoder(
            input_format=settings.input_format,
            max_record_bytes=settings.max_record_bytes,
            max_json_depth=settings.max_json_depth,
        )
        self.policy = Policy.build(
            settings.private_fields,
            {str(k): v for k, v in settings.state_fields.items()},
            list(settings.entity_types),
            settings.tmf_version,
            instance_check.problem,
        )
        self.renderer = Renderer(settings)
        self.dlq_topic = settings.dlq_topic
        self.history = settings.history
        # librdkafka refuses larger messages; its default unless the settings raise it.
        self.max_message_bytes = int(settings.kafka.get("message.max.bytes", 1_000_000))
        self.engine: Engine | None = None
        if native and form.packed:
            limits = MessageLimits(self.max_message_bytes, _HEADROOM)
            self.engine = build_engine(
                settings, self.renderer, instance_check, form.profiles, limits
            )
        self.native_records = 0  # records the C path took

    def process(
        self, record: InputRecord, key: str | None, prior: bytes | None, *, native: bool = True
    ) -> Result:
        """`key`: the record key as text (None when absent or not UTF-8); `prior`: that
        key's state in the store's form, None when it has none. `native=False`: the Python
        path even where the C path is built (a record the C path already handed over)."""
        if native and key is not None and self.engine is not None:
            result = self.native_answer(record, key, prior)
            if result is not None:
                self.native_records += 1
                return result
        change = self.decoder.decode(record)
        if isinstance(change, Rejection):
            return self._reject(record, change)
        state = None if prior is None else self.form.load(change.key, prior)
        decision = decide(state, change, record.offset, self.policy)
        outcome = decision.outcome
        if outcome == "mismatch":
            assert state is not None
            return self._reject(
                record,
                Rejection(
                    "entity_type_mismatch",
                    f"entityType {change.entity_type!r} differs from the stored "
                    f"{state.entity_type!r}",
                ),
            )
        if outcome == "invalid":
            return self._reject(record, Rejection("schema_violation", decision.message or ""))
        if outcome != "emit":
            return Result(outcome, [], change.key, entity_type=decision.entity_type)
        after = decision.state
        entity_type = decision.entity_type
        assert after is not None and entity_type is not None
        rendered = self.renderer.render(
            change,
            entity_type,
            decision.events,
            decision.public,
            after,
            record.partition,
            record.offset,
        )
        # Headers copy at most the input (correlationId, traceparent) plus fixed attributes:
        # a cheap upper bound first, exact sizes only near the limit.
        input_size = len(record.value or b"") + len(record.key or b"")
        for message in rendered.messages:
            if len(message.value or b"") + input_size + _HEADROOM < self.max_message_bytes:
                continue
            size = _message_size(message)
            if size > self.max_message_bytes:
                return self._reject(
                    record,
                    Rejection(
                        "too_large",
                        f"its event would be {size} bytes, over the producer's "
                        f"message.max.bytes ({self.max_message_bytes})",
                    ),
                )
        last = rendered.stored[-1]
        if self.history == 1 and (
            len(last.value_bytes()) + input_size + _HEADROOM < self.max_message_bytes
        ):
            events: tuple[StoredEvent, ...] = (last,)
        else:
            events = _fit(
                (*reversed(rendered.stored), *after.events)[: self.history],
                self.max_message_bytes - _STATE_OVERHEAD,
            )
        # `after` is a fresh object from decide, not shared with the store: fill it in place.
        after.last_event_id = last.id
        after.last_event_type = last.type
        after.last_event_time = last.time
        after.events = events
        encoded = encode_state(after)
        return Result(
            "emit",
            rendered.messages,
            change.key,
            entity_type,
            tuple(s.type for s in rendered.stored),
            time_ms=change.time_ms,
            stored=self.form.store(change.key, after, encoded),
            encoded=encoded,
        )

    def native_answer(self, record: InputRecord, key: str, prior: bytes | None) -> Result | None:
        """The C path's result for the record, or None: the C path is not built here or
        hands the record over (docs/native.md#hand-over-rules)."""
        if self.engine is None:
            return None
        result: Result | None = self.engine.process(
            record.value,
            record.key or b"",  # never empty where `key` is set
            key,
            record.partition,
            record.offset,
            record.timestamp_ms,
            traceparent_of(record.headers) if record.headers else None,
            prior,
        )
        return result

    def _reject(self, record: InputRecord, rejection: Rejection) -> Result:
        return Result(
            "dead_letter",
            [dead_letter(record, rejection, self.dlq_topic, self.max_message_bytes)],
            reason=rejection.reason,
        )


_STATE_OVERHEAD = 4096  # the state record's own fields, key and framing, generously
_HEADROOM = 64 * 1024  # more than any event's headers, key and state framing add


def _message_size(message: OutMessage) -> int:
    size = len(message.value or b"") + len(message.key or b"")
    for name, value in message.headers:
        size += len(name) + len(value or b"")
    return size


def _fit(events: tuple[StoredEvent, ...], budget: int) -> tuple[StoredEvent, ...]:
    """The newest events whose stored size fits the changelog record (history can hold
    several large events; the record must stay one Kafka message)."""
    kept: list[StoredEvent] = []
    for event in events:
        budget -= event.size_hint()
        if budget < 0:
            break
        kept.append(event)
    return tuple(kept)
