"""Restoring a partition's state from the compacted changelog (docs/state.md).

Restoration runs in steps on the loop's thread, interleaved with polling, so a rebalance
in the middle of it is handled like any other: revoked partitions are simply cancelled.
Values stay encoded until their key is first used, which keeps restoring fast. With
`state_dir` set, a partition starts from its local snapshot (processor/state/snapshot.py) and
replays only the changelog written after it.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from processor import clients
from processor.config import Settings
from processor.metrics import Metrics
from processor.state.snapshot import Snapshots, Witness, value_digest
from processor.state.store import StateStore

log = logging.getLogger(__name__)

_STEP_RECORDS = 20_000


class Restorer:
    """Reads assigned partitions' changelog into the store, a chunk per loop turn."""

    def __init__(self, settings: Settings, store: StateStore, metrics: Metrics) -> None:
        self.topic = settings.changelog_topic
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.consumer = Consumer(clients.committed_reader(settings, "restore"))
        self.active: dict[int, tuple[float, int]] = {}  # partition -> (started, records)
        self.snapshots: Snapshots | None = None
        if settings.state_dir is not None:
            self.snapshots = Snapshots(settings.state_dir, self.topic, store.keep_events)
        self.verifying: dict[int, Witness] = {}  # partitions started from a snapshot

    def start(self, partitions: list[int]) -> None:
        assign = []
        for p in partitions:
            self.store.drop(p)
            self.active[p] = (time.monotonic(), 0)
            snapshot = self.snapshots.load(p) if self.snapshots is not None else None
            if snapshot is not None and not self.store.form.profiles.merge(snapshot.profiles):
                log.warning("partition %d: the snapshot's profiles conflict; not used", p)
                snapshot = None
            if snapshot is None:
                self.store.partitions[p] = {}
                assign.append(TopicPartition(self.topic, p, OFFSET_BEGINNING))
                continue
            self.store.partitions[p] = snapshot.entries  # a fresh dict, ours to keep
            self.verifying[p] = snapshot.witness
            log.info(
                "partition %d: snapshot of %d keys at changelog offset %d loaded; replaying"
                " the changelog from its witness at offset %d",
                p,
                len(snapshot.entries),
                snapshot.offset,
                snapshot.witness.offset,
            )
            assign.append(TopicPartition(self.topic, p, snapshot.witness.offset))
        self.consumer.incremental_assign(assign)

    def cancel(self, partitions: list[int]) -> None:
        gone = [p for p in partitions if p in self.active]
        for p in gone:
            del self.active[p]
            self.verifying.pop(p, None)
        if gone:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in gone])

    def _discard_snapshot(self, p: int, why: str) -> None:
        """The changelog does not continue the snapshot: start over from its beginning."""
        del self.verifying[p]
        log.warning(
            "partition %d: the snapshot does not match the changelog (%s); restoring from"
            " the beginning",
            p,
            why,
        )
        self.store.partitions[p] = {}
        started, _seen = self.active[p]
        self.active[p] = (started, 0)
        self.consumer.seek(TopicPartition(self.topic, p, OFFSET_BEGINNING))

    def step(self, timeout: float = 0.05) -> list[int]:
        """Read one chunk; return the partitions whose restore reached the end."""
        if not self.active:
            return []
        done: list[int] = []
        counts: dict[int, int] = {}
        put = self.store.put_changelog
        rewound: set[int] = set()  # what is left of this chunk predates the seek
        for msg in self.consumer.consume(_STEP_RECORDS, timeout):
            p = msg.partition() or 0
            if p not in self.active or p in rewound:
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("changelog partition %d: %s", p, err.str())
                elif p in self.verifying:
                    self._discard_snapshot(p, "the witness record is gone")
                    rewound.add(p)
                else:
                    done.append(p)
                continue
            key = msg.key()
            if key is None:
                continue
            if p in self.verifying:
                if not self.verifying[p].matches(msg.offset() or 0, key.decode(), msg.value()):
                    self._discard_snapshot(p, f"offset {msg.offset()} is not the witness")
                    rewound.add(p)
                    continue
                del self.verifying[p]
            put(p, key.decode(), msg.value())
            counts[p] = counts.get(p, 0) + 1
        total = 0
        for p, n in counts.items():
            started, seen = self.active[p]
            self.active[p] = (started, seen + n)
            total += n
        if total:
            self.metrics.restored.inc(total)
        finished = []
        for p in dict.fromkeys(done):
            started, seen = self.active.pop(p)
            took = time.monotonic() - started
            self.metrics.restore_duration.observe(took)
            log.info("partition %d: %d changelog records restored in %.2f s", p, seen, took)
            finished.append(p)
        if finished:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in finished])
        return finished

    def close(self) -> None:
        self.consumer.close()

    def save_snapshots(self, partitions: list[int]) -> None:
        """Snapshot these (restored, committed) partitions. Never raises: a snapshot is an
        optimisation, its failure only costs restore time, and this runs in a rebalance."""
        if self.snapshots is None or not partitions:
            return
        try:
            self._save(partitions)
        except Exception as exc:
            log.warning("snapshots of partitions %s not written: %s", partitions, exc)

    def _save(self, partitions: list[int]) -> None:
        assert self.snapshots is not None
        reader = Consumer(clients.committed_reader(self.settings, "snapshot"))
        try:
            for p in partitions:
                entries = self.store.partitions.get(p)
                if not entries:
                    continue
                started = time.monotonic()
                try:
                    found = _last_record(reader, self.topic, p)
                    if found is None:
                        continue
                    end, witness = found
                    written = self.snapshots.save(
                        p, end, witness, self.store.entries(p), self.store.form.profiles.export()
                    )
                except (KafkaException, OSError, ValueError) as exc:
                    log.warning("partition %d: no snapshot written (%s)", p, exc)
                    continue
                log.info(
                    "partition %d: snapshot of %d keys at changelog offset %d written"
                    " (%.1f MB in %.2f s)",
                    p,
                    len(entries),
                    end,
                    written / 1e6,
                    time.monotonic() - started,
                )
        finally:
            reader.close()


_WINDOW = 1000
_READ_TIMEOUT_S = 10.0


def _last_record(reader: Consumer, topic: str, p: int) -> tuple[int, Witness] | None:
    """The partition's end offset and its last committed data record (the witness).

    Reads back a window before the end, widened until it holds a data record (the end may
    be a stretch of transaction markers and aborted records).
    """
    tp = TopicPartition(topic, p)
    low, end = reader.get_watermark_offsets(tp, timeout=_READ_TIMEOUT_S, cached=False)
    window = _WINDOW
    while True:
        start = max(low, end - window)
        witness: Witness | None = None
        reader.assign([TopicPartition(topic, p, start)])
        deadline = time.monotonic() + _READ_TIMEOUT_S
        reached_end = False
        while not reached_end:
            if time.monotonic() > deadline:
                raise ValueError(f"reading back the changelog end timed out at {start}..{end}")
            for msg in reader.consume(1000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reached_end = True
                    continue
                offset, key = msg.offset() or 0, msg.key()
                if key is not None and offset < end:
                    witness = Witness(offset, key.decode(), value_digest(msg.value()))
        reader.unassign()
        if witness is not None:
            return end, witness
        if start <= low:
            return None
        window *= 16
