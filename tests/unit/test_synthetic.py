"""The synthetic change-record generator: deterministic, realistic, and faithful to its mix."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

import orjson
import pytest

from processor.dev.synthetic import KINDS, Generator, Mix, SyntheticRecord, rfc3339_ms

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ENVELOPE_MEMBERS = {"entityType", "operation", "id", "observedAt", "correlationId", "instance"}
SERVICE_STATES = {"feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"}
RESOURCE_STATES = {
    "resourceStatus": {"standby", "alarm", "available", "reserved", "unknown", "suspended"},
    "operationalState": {"enable", "disable"},
    "administrativeState": {"locked", "unlocked", "shutdown"},
    "usageState": {"idle", "active", "busy"},
}
STATE_FIELDS = {"service": {"state"}, "resource": set(RESOURCE_STATES)}


def _records(seed: int = 7, count: int = 10_000, **kwargs: Any) -> list[SyntheticRecord]:
    keys = kwargs.pop("keys", 500)
    mix = kwargs.pop("mix", Mix())
    return list(Generator(seed, keys, mix, **kwargs).records(count))


def _digest(records: list[SyntheticRecord]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.key + b"\0" + (r.value or b"<tombstone>") + str(r.timestamp_ms).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def records() -> list[SyntheticRecord]:
    return _records()


def test_same_seed_same_bytes() -> None:
    assert _records(seed=11, count=3000) == _records(seed=11, count=3000)


def test_different_seed_different_bytes() -> None:
    assert _digest(_records(seed=11, count=500)) != _digest(_records(seed=12, count=500))


def test_records_continue_across_calls() -> None:
    one = Generator(5, 100, Mix())
    two = Generator(5, 100, Mix())
    assert list(one.records(300)) + list(one.records(200)) == list(two.records(500))


# Pinned: the same seed gives the same bytes on every run, machine and Python version. A
# deliberate change of the generator changes this digest; update it in the same commit.
PINNED_DIGEST = "c735602f424dbe73fdfc98a90d6c5ef09b6d9e9eebc5b335e4560f164019727b"


def test_known_digest_is_stable() -> None:
    assert _digest(_records(seed=2026, count=1000)) == PINNED_DIGEST


def test_mix_is_roughly_respected(records: list[SyntheticRecord]) -> None:
    counts = Counter(r.kind for r in records)
    shares = Mix().shares()
    assert set(counts) <= set(KINDS)
    for kind in KINDS:
        assert counts[kind] / len(records) == pytest.approx(shares[kind], abs=0.02), kind


def test_custom_mix_only_updates_after_creates() -> None:
    recs = _records(count=2000, keys=50, mix=Mix.parse("update=1"))
    kinds = Counter(r.kind for r in recs)
    # the first record must create; afterwards only updates are asked for
    assert kinds["create"] == 1
    assert kinds["update"] == len(recs) - 1


def test_mix_parse() -> None:
    assert Mix.parse("") == Mix()
    assert Mix.parse("create=0.5, delete=0.5") == Mix(0.5, 0, 0, 0, 0, 0.5)
    with pytest.raises(ValueError, match="bad mix item"):
        Mix.parse("creates=1")
    with pytest.raises(ValueError, match="negative"):
        Mix(create=-1)
    with pytest.raises(ValueError, match="zero"):
        Mix(0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("instance_bytes", [1000, 2000, 8000])
def test_instances_are_about_instance_bytes(instance_bytes: int) -> None:
    recs = _records(count=2000, instance_bytes=instance_bytes)
    sizes = [
        len(orjson.dumps(orjson.loads(r.value)["instance"]))
        for r in recs
        if r.value is not None and b'"instance"' in r.value
    ]
    mean = sum(sizes) / len(sizes)
    assert mean == pytest.approx(instance_bytes, rel=0.05)
    assert min(sizes) >= instance_bytes * 0.85
    assert max(sizes) <= instance_bytes * 1.15


def test_envelopes_follow_design(records: list[SyntheticRecord]) -> None:
    for r in records:
        assert r.key
        if r.value is None:
            assert r.kind == "delete"
            continue
        v = orjson.loads(r.value)
        assert isinstance(v, dict)
        assert set(v) <= ENVELOPE_MEMBERS
        assert v["entityType"] in {"service", "resource"}
        assert v.get("operation", "upsert") in {"upsert", "delete"}
        assert v.get("id", r.key.decode()) == r.key.decode()
        assert RFC3339_MS.match(v["observedAt"])
        assert v["observedAt"] == rfc3339_ms(r.timestamp_ms)
        if "correlationId" in v:
            assert isinstance(v["correlationId"], str)
            assert v["correlationId"]
        if v.get("operation") == "delete":
            assert r.kind == "delete"
            assert "instance" not in v
            continue
        inst = v["instance"]
        assert inst["id"] == r.key.decode()
        if v["entityType"] == "service":
            assert inst["@type"] == "Service"
            assert inst["href"] == f"/tmf-api/serviceInventory/v4/service/{inst['id']}"
            assert inst["state"] in SERVICE_STATES
            chars = inst["serviceCharacteristic"]
            assert inst["serviceSpecification"]["@referredType"] == "ServiceSpecification"
        else:
            assert inst["@type"] in {"LogicalResource", "PhysicalResource"}
            assert inst["href"] == f"/tmf-api/resourceInventoryManagement/v4/resource/{inst['id']}"
            for name, allowed in RESOURCE_STATES.items():
                assert inst[name] in allowed
            chars = inst["resourceCharacteristic"]
        assert chars
        assert all(set(c) == {"name", "valueType", "value"} for c in chars)
        assert isinstance(inst["note"], list)
        assert {"author", "date", "text"} <= set(inst["note"][0])


def test_observed_at_increases_with_step() -> None:
    recs = _records(count=2000, start_ms=1_767_225_600_000, step_ms=10)
    stamps = [r.timestamp_ms for r in recs]
    assert stamps == list(range(1_767_225_600_000, 1_767_225_600_000 + 10 * 2000, 10))
    assert rfc3339_ms(stamps[1]) == "2026-01-01T00:00:00.010Z"
    observed = [orjson.loads(r.value)["observedAt"] for r in recs if r.value is not None]
    assert observed == sorted(observed)
    assert len(set(observed)) == len(observed)


def test_lifecycle_is_consistent(records: list[SyntheticRecord]) -> None:
    """No delete or change of a key that is not live; re-creates after deletes happen."""
    live: dict[bytes, dict[str, Any]] = {}
    entity_types: dict[bytes, str] = {}
    recreated = 0
    seen: set[bytes] = set()
    for r in records:
        if r.kind == "delete":
            assert r.key in live, "delete of a key that is not live"
            del live[r.key]
            continue
        assert r.value is not None
        v = orjson.loads(r.value)
        # the entity type of a key never changes, even across delete and re-create
        assert entity_types.setdefault(r.key, v["entityType"]) == v["entityType"]
        inst = v["instance"]
        if r.kind == "create":
            assert r.key not in live
            recreated += r.key in seen
            seen.add(r.key)
        else:
            assert r.key in live
            _check_change(r.kind, v["entityType"], live[r.key], inst)
        live[r.key] = inst
    assert recreated > 0


def _public(instance: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in instance.items() if k != "note"}


def _check_change(kind: str, entity_type: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    state = STATE_FIELDS[entity_type]
    if kind == "noop":
        assert not changed
    elif kind == "private":
        assert changed == {"note"}
    elif kind == "state":
        assert changed and changed <= state
    elif kind == "update":
        assert changed and not changed & state and "note" not in changed
    assert _public(old) != _public(new) or kind in {"noop", "private"}


def test_both_delete_forms_present(records: list[SyntheticRecord]) -> None:
    deletes = [r for r in records if r.kind == "delete"]
    tombstones = [r for r in deletes if r.value is None]
    explicit = [r for r in deletes if r.value is not None]
    assert tombstones
    assert explicit
    assert all(orjson.loads(r.value)["operation"] == "delete" for r in explicit if r.value)


def test_optional_members_vary(records: list[SyntheticRecord]) -> None:
    values = [orjson.loads(r.value) for r in records if r.value is not None]
    assert any("correlationId" in v for v in values)
    assert any("correlationId" not in v for v in values)
    assert any("operation" not in v for v in values)
    assert {v["entityType"] for v in values} == {"service", "resource"}


def test_entity_types_can_be_restricted() -> None:
    recs = _records(count=500, entity_types=("resource",))
    assert {orjson.loads(r.value)["entityType"] for r in recs if r.value} == {"resource"}


def test_keys_stay_within_key_space() -> None:
    gen = Generator(3, 20, Mix())
    recs = list(gen.records(2000))
    assert len({r.key for r in recs}) <= 20
    assert {r.key.decode() for r in recs} <= {gen.key_of(i) for i in range(20)}
