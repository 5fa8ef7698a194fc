"""`tmf-events replay` (docs/design.md#interfaces): line rules, output, the CLI with files, stdin,
env, YAML."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pytest

from processor import cli
from processor.replay import ReplayInputError, parse_line, replay, run_replay
from tests.schema_check import assert_valid_event

TOPIC = "inventory.changes"
T0 = "2026-01-01T10:00:00.000Z"


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _line(**members) -> bytes:
    return orjson.dumps(members)


def _create(key="svc-1", **extra) -> dict:
    record = {
        "entityType": "service",
        "observedAt": T0,
        "instance": {"id": key, "name": "Internet", "state": "designed"},
    }
    record.update(extra)
    return record


def _lines(*records) -> list[bytes]:
    return [orjson.dumps(r) if isinstance(r, dict) else r for r in records]


def _out(captured: bytes) -> list[dict]:
    return [orjson.loads(line) for line in captured.splitlines()]


# --------------------------------------------------------------------------------------
# parse_line


def test_record_members_are_removed_from_the_value():
    line = _line(
        key="svc-1",
        partition=3,
        offset=77,
        timestamp=1234,
        headers={"traceparent": "00-a-b-01", "x": None},
        **_create(),
    )
    record = parse_line(line, 5, TOPIC)
    assert record.topic == TOPIC
    assert (record.partition, record.offset, record.timestamp_ms) == (3, 77, 1234)
    assert record.key == b"svc-1"
    assert record.headers == [("traceparent", b"00-a-b-01"), ("x", None)]
    assert orjson.loads(record.value) == _create()


def test_defaults_partition_0_offset_line_number_no_timestamp_no_headers():
    record = parse_line(_line(**_create()), 9, TOPIC)
    assert (record.partition, record.offset, record.timestamp_ms) == (0, 9, None)
    assert record.headers == []


def test_tombstone_line():
    record = parse_line(_line(key="svc-1", value=None, timestamp=5), 0, TOPIC)
    assert (record.key, record.value, record.timestamp_ms) == (b"svc-1", None, 5)


def test_raw_line_is_the_value_as_is():
    for raw in (b"not json", b"[1, 2]", b'"text"', b"42", b"\xff\xfe", b"{broken"):
        record = parse_line(raw, 4, TOPIC)
        assert (record.key, record.value, record.offset, record.partition) == (None, raw, 4, 0)


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"id": "from-id", "entityType": "service"}, b"from-id"),
        (_create("from-instance"), b"from-instance"),
        ({"id": "from-id", **_create("from-instance")}, b"from-id"),
        ({"entityType": "service", "instance": {"id": 5}}, None),
        ({"entityType": "service", "instance": "x"}, None),
        ({"entityType": "service"}, None),
    ],
)
def test_key_defaults_to_id_then_instance_id(record, key):
    assert parse_line(orjson.dumps(record), 0, TOPIC).key == key


def test_explicit_null_key_means_no_key():
    assert parse_line(_line(key=None, **_create()), 0, TOPIC).key is None


@pytest.mark.parametrize(
    "members",
    [
        {"key": 5},
        {"partition": "0"},
        {"partition": True},
        {"offset": 1.5},
        {"timestamp": "now"},
        {"headers": ["a"]},
        {"headers": {"a": 1}},
    ],
)
def test_bad_record_members_raise_replay_input_error(members):
    with pytest.raises(ReplayInputError, match="line 3"):
        parse_line(_line(**members, **_create()), 2, TOPIC)


# --------------------------------------------------------------------------------------
# replay()


def test_replay_output_shape(make_harness):
    settings = make_harness().settings
    lines = _lines(
        {**_create(), "headers": {"traceparent": TRACEPARENT}},
        b"this is not json",
        {"key": "svc-1", "value": None, "timestamp": 1_767_261_601_000},
    )
    out = list(replay(lines, settings))
    assert [m["topic"] for m in out] == [
        "tmf.service.events",
        "tmf-events-dlq",
        "tmf.service.events",
    ]
    create, letter, delete = out
    assert create["partition"] is None and create["key"] == "svc-1"
    assert create["headers"]["ce_traceparent"] == TRACEPARENT
    assert create["value"]["eventType"] == "ServiceCreateEvent"
    assert assert_valid_event(create) == create["value"]
    assert letter == {
        "topic": "tmf-events-dlq",
        "partition": 0,
        "key": None,
        "headers": {
            "tmf-events-error": "invalid_json",
            "tmf-events-error-message": letter["headers"]["tmf-events-error-message"],
            "tmf-events-source-topic": TOPIC,
            "tmf-events-source-partition": "0",
            "tmf-events-source-offset": "1",
        },
        "value": "this is not json",
    }
    assert delete["value"]["eventType"] == "ServiceDeleteEvent"
    assert delete["value"]["eventTime"] == "2026-01-01T10:00:01.000Z"
    assert delete["headers"]["ce_previousid"] == create["headers"]["ce_id"]


def test_replay_skips_blank_lines_but_counts_them_as_offsets(make_harness):
    settings = make_harness().settings
    out = list(replay([b"\n", b"   \r\n", b"garbage\r\n"], settings))
    (letter,) = out
    assert letter["headers"]["tmf-events-source-offset"] == "2"
    assert letter["value"] == "garbage"


def test_replay_missing_timestamp_and_tombstone_without_timestamp(make_harness):
    settings = make_harness().settings
    record = _create()
    del record["observedAt"]
    out = list(replay(_lines(record, {"key": "svc-1", "value": None}), settings))
    assert [m["headers"]["tmf-events-error"] for m in out] == [
        "missing_timestamp",
        "missing_timestamp",
    ]


def test_replay_dead_letter_of_a_json_line_carries_the_record_value(make_harness):
    settings = make_harness().settings
    line = _line(key="svc-1", offset=7, entityType="product", instance={"id": "svc-1"})
    (letter,) = replay([line], settings)
    assert letter["headers"]["tmf-events-error"] == "unknown_entity_type"
    assert letter["headers"]["tmf-events-source-offset"] == "7"
    assert letter["key"] == "svc-1"
    assert orjson.loads(letter["value"]) == {"entityType": "product", "instance": {"id": "svc-1"}}


def test_replay_with_state_adds_changelog_messages(make_harness):
    settings = make_harness().settings
    lines = _lines(
        _create(partition=2),
        _create(partition=2),  # unchanged: no state write
        {"key": "svc-1", "value": None, "timestamp": 1_767_261_601_000, "partition": 2},
    )
    out = list(replay(lines, settings, with_state=True))
    assert [m["topic"] for m in out] == [
        "tmf.service.events",
        "tmf-events-state-changelog",
        "tmf.service.events",
        "tmf-events-state-changelog",
    ]
    create, state1, delete, state2 = out
    assert state1["partition"] == 2 and state1["key"] == "svc-1"
    assert state1["value"]["version"] == 1
    assert state1["value"]["deleted"] is False
    assert state1["value"]["lastEventId"] == create["headers"]["ce_id"]
    assert state1["value"]["offset"] == 0
    assert len(bytes.fromhex(state1["value"]["hash"])) == 16
    (stored,) = state1["value"]["events"]
    assert stored["id"] == create["headers"]["ce_id"]
    assert stored["type"] == "ServiceCreateEvent"
    assert state2["value"]["version"] == 2
    assert state2["value"]["deleted"] is True
    assert state2["value"]["lastEventId"] == delete["headers"]["ce_id"]


def test_run_replay_writes_json_lines_and_counts(make_harness):
    settings = make_harness().settings
    sink = io.BytesIO()
    count = run_replay(io.BytesIO(b"\n".join(_lines(_create(), b"x"))), sink, settings)
    assert count == 2
    lines = sink.getvalue().splitlines()
    assert len(lines) == 2 and sink.getvalue().endswith(b"\n")


# --------------------------------------------------------------------------------------
# the CLI

HISTORY = [
    _create(headers={"traceparent": TRACEPARENT}),
    _create(instance={"id": "svc-1", "name": "Fibre", "state": "active"}, observedAt=None),
    b"not a record",
    {"key": "svc-1", "value": None},
]


def _history_file(tmp_path) -> str:
    records = []
    for i, item in enumerate(HISTORY):
        if isinstance(item, dict):
            record = {k: v for k, v in item.items() if v is not None or k == "value"}
            record.setdefault("timestamp", 1_767_261_600_000 + 1000 * i)
            records.append(record)
        else:
            records.append(item)
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(_lines(*records)) + b"\n")
    return str(path)


def test_cli_replay_file(tmp_path, capsysbinary):
    assert cli.main(["replay", _history_file(tmp_path)]) == 0
    captured = capsysbinary.readouterr()
    out = _out(captured.out)
    events = [m for m in out if m["topic"] == "tmf.service.events"]
    assert [m["value"]["eventType"] for m in events] == [
        "ServiceCreateEvent",
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
        "ServiceDeleteEvent",
    ]
    for event in events:
        assert_valid_event(event)
    assert [m["topic"] for m in out].count("tmf-events-dlq") == 1
    assert events[-1]["value"]["eventTime"] == "2026-01-01T10:00:03.000Z"


def test_cli_replay_is_deterministic(tmp_path, capsysbinary):
    path = _history_file(tmp_path)
    cli.main(["replay", path])
    first = capsysbinary.readouterr().out
    cli.main(["replay", path])
    assert capsysbinary.readouterr().out == first


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_cli_replay_from_stdin(tmp_path, capsysbinary, monkeypatch):
    path = _history_file(tmp_path)
    cli.main(["replay", path])
    from_file = capsysbinary.readouterr().out
    monkeypatch.setattr(sys, "stdin", _Stdin(Path(path).read_bytes()))
    assert cli.main(["replay", "-"]) == 0
    assert capsysbinary.readouterr().out == from_file


def test_cli_replay_with_state(tmp_path, capsysbinary):
    assert cli.main(["replay", "--with-state", _history_file(tmp_path)]) == 0
    topics = [m["topic"] for m in _out(capsysbinary.readouterr().out)]
    assert topics.count("tmf-events-state-changelog") == 3
    assert topics.count("tmf.service.events") == 4


def test_cli_replay_to_an_output_file(tmp_path, capsysbinary):
    target = tmp_path / "out.jsonl"
    assert cli.main(["replay", _history_file(tmp_path), "-o", str(target)]) == 0
    assert capsysbinary.readouterr().out == b""
    assert len(target.read_bytes().splitlines()) == 5


def test_cli_replay_settings_from_env(tmp_path, capsysbinary, monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_TMF_VERSION", "v5")
    monkeypatch.setenv("TMF_EVENTS_PAYLOAD", "delta")
    monkeypatch.setenv("TMF_EVENTS_SERVICE_TOPIC", "svc.out")
    monkeypatch.setenv("TMF_EVENTS_ENVELOPE__DOMAIN", "inventory")
    assert cli.main(["replay", _history_file(tmp_path)]) == 0
    out = _out(capsysbinary.readouterr().out)
    events = [m for m in out if m["topic"] == "svc.out"]
    assert len(events) == 4
    for event in events:
        assert_valid_event(event)
        assert event["headers"]["ce_type"].startswith("org.tmforum.tmf638.v5.")
        assert event["value"]["domain"] == "inventory"
    assert events[1]["value"]["event"]["service"] == {
        "id": "svc-1",
        "@type": "Service",
        "name": "Fibre",
    }


def test_cli_replay_settings_from_config_file(tmp_path, capsysbinary, monkeypatch):
    config = tmp_path / "settings.yaml"
    config.write_text(
        "app_id: inventory\n"
        "private_fields: [name]\n"
        "type_prefix: com.example\n"
        "reporting_system:\n  name: OSS\n"
    )
    monkeypatch.setenv("TMF_EVENTS_TYPE_PREFIX", "net.example")  # env beats the file
    assert cli.main(["replay", "--config", str(config), _history_file(tmp_path)]) == 0
    out = _out(capsysbinary.readouterr().out)
    events = [m for m in out if m["topic"] == "tmf.service.events"]
    # `name` is private: the second record only changes the state
    assert [e["value"]["eventType"] for e in events] == [
        "ServiceCreateEvent",
        "ServiceStateChangeEvent",
        "ServiceDeleteEvent",
    ]
    assert all("name" not in e["value"]["event"]["service"] for e in events)
    assert events[0]["headers"]["ce_source"] == "urn:tmf-events:inventory"
    assert events[0]["headers"]["ce_type"] == "net.example.tmf638.v4.ServiceCreateEvent"
    assert [m["topic"] for m in out].count("inventory-dlq") == 1


def test_cli_replay_bad_config_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_PAYLOAD", "everything")
    assert cli.main(["replay", _history_file(tmp_path)]) == 2
    assert "payload" in capsys.readouterr().err


def test_cli_replay_bad_line_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_line(partition="zero", **_create()) + b"\n")
    assert cli.main(["replay", str(path)]) == 2
    assert "line 1: partition must be an integer" in capsys.readouterr().err


def test_cli_replay_missing_file_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl" in err and "No such file" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("offset", [2**63, 2**64 - 1])
def test_cli_replay_offset_beyond_kafkas_range_exits_2(tmp_path, capsys, offset):
    """Kafka offsets are signed 64-bit; a line with a larger one is bad replay input."""
    path = tmp_path / "big-offset.jsonl"
    path.write_bytes(_line(offset=offset, **_create()) + b"\n")
    assert cli.main(["replay", str(path)]) == 2
    assert "line 1: offset" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# kcat's JSON envelope (`kcat -C -J`)


def _kcat(payload, key="svc-1", **members) -> bytes:
    envelope = {
        "topic": TOPIC,
        "partition": 3,
        "offset": 77,
        "tstype": "create",
        "ts": 1_767_261_600_000,
        "broker": 1,
        "headers": ["traceparent", TRACEPARENT, "x", None, "x", "again"],
        "key": key,
        "payload": payload,
    }
    envelope.update(members)
    return orjson.dumps(envelope)


def test_a_kcat_envelope_is_the_record_it_was_taken_from():
    # Duplicate members: any re-serialisation would drop one; the value is kept byte for byte.
    value = '{"entityType": "service",  "entityType": "service", "instance": {"id": "svc-1"}}'
    record = parse_line(_kcat(value), 5, "other.topic")
    assert record.value == value.encode()
    assert (record.topic, record.partition, record.offset) == (TOPIC, 3, 77)
    assert record.timestamp_ms == 1_767_261_600_000
    assert record.key == b"svc-1"
    assert record.headers == [
        ("traceparent", TRACEPARENT.encode()),
        ("x", None),
        ("x", b"again"),
    ]


def test_kcat_tombstones_null_keys_and_missing_timestamps():
    line = orjson.dumps({"topic": TOPIC, "partition": 0, "offset": 9, "broker": 1,
                         "key": "svc-1", "payload": None})  # fmt: skip
    record = parse_line(line, 0, TOPIC)
    assert (record.key, record.value, record.timestamp_ms, record.headers) == (
        b"svc-1",
        None,
        None,
        [],
    )
    record = parse_line(_kcat("x", key=None, tstype="unknown", ts=-1), 0, TOPIC)
    assert (record.key, record.timestamp_ms) == (None, None)


def test_kcat_binary_values_keep_their_bytes():
    """kcat escapes control characters but writes other bytes into its JSON strings
    unchecked: a binary value makes a line that is not UTF-8."""
    value = b"\x00\x02\xff\xfeavro\x80\n"
    line = (
        b'{"topic":"inventory.changes","partition":1,"offset":4,"tstype":"create",'
        b'"ts":1767261600000,"broker":1,"key":"svc-1",'
        + b'"payload":"\\u0000\\u0002\xff\xfeavro\x80\\n"}'
    )
    record = parse_line(line, 0, TOPIC)
    assert record.value == value
    assert (record.partition, record.offset) == (1, 4)


def test_kcat_header_map_form():
    record = parse_line(_kcat("x", headers={"a": ["1", "2"], "b": [None]}), 0, TOPIC)
    assert record.headers == [("a", b"1"), ("a", b"2"), ("b", None)]


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({"payload": {"decoded": "by kcat -s avro"}}, "payload must be a string or null"),
        ({"payload": None, "payload_error": "schema 7 not found"}, "schema 7 not found"),
        ({"headers": ["only-a-name"]}, "headers must be a flat array"),
        ({"partition": -1}, "partition must be an integer"),
        ({"key": 12}, "key must be a string or null"),
    ],
)
def test_bad_kcat_envelopes_raise_replay_input_error(members, words):
    line = _kcat("x", **{k: v for k, v in members.items() if k != "payload"})
    if "payload" in members:
        envelope = orjson.loads(line)
        envelope.update(members)
        line = orjson.dumps(envelope)
    with pytest.raises(ReplayInputError, match=words):
        parse_line(line, 0, TOPIC)


def test_a_change_record_with_kcat_like_members_is_still_a_change_record():
    line = _line(topic="x", payload="y", **_create())
    record = parse_line(line, 0, TOPIC)
    assert record.topic == TOPIC
    assert orjson.loads(record.value)["payload"] == "y"


def test_a_kcat_line_replays_like_the_stand_in_line_of_the_same_record(make_harness):
    plain = _line(key="svc-1", partition=3, offset=77, timestamp=1_767_261_600_000, **_create())
    value = orjson.dumps(_create()).decode()
    kcat = _kcat(value, headers=[])
    settings = make_harness().settings
    assert list(replay([plain], settings)) == list(replay([kcat], settings))
    assert len(list(replay([kcat], settings))) == 1


# --------------------------------------------------------------------------------------
# the summary


def test_the_summary_counts_by_outcome_and_reason(tmp_path, capsys):
    assert cli.main(["replay", "-o", str(tmp_path / "out.jsonl"), _history_file(tmp_path)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "replay: 4 records",
        "  emitted       3 records, 4 events: ServiceAttributeValueChangeEvent 1, "
        "ServiceCreateEvent 1, ServiceDeleteEvent 1, ServiceStateChangeEvent 1",
        "  dead letters  1: invalid_json 1",
    ]
    assert cli.main(["replay", "--quiet", "-o", "-", _history_file(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
