"""`tmf-events tail`'s output and filters (processor/tail.py); the command itself runs against a
broker in tests/integration/test_cli_kafka.py."""

from __future__ import annotations

import orjson

from processor.tail import Filter, header_row, header_text, json_line, table_row

HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"0190f0e2-6a00-7000-8000-000000000001"),
    ("ce_source", b"urn:tmf-events:inv"),
    ("ce_type", b"org.tmforum.tmf638.v4.ServiceStateChangeEvent"),
    ("ce_time", b"2026-01-01T10:00:00.000Z"),
    ("ce_subject", b"svc-1"),
    ("ce_entityversion", b"2"),
    ("content-type", b"application/json"),
    ("traceparent-ish", b"not a CloudEvents attribute"),
]


def test_a_row_per_event_under_a_header_of_the_same_widths() -> None:
    row = table_row(header_text(HEADERS))
    assert row.split() == [
        "2026-01-01T10:00:00.000Z",
        "svc-1",
        "ServiceStateChangeEvent",
        "2",
        "0190f0e2-6a00-7000-8000-000000000001",
    ]
    header = header_row()
    assert header.split() == ["time", "subject", "type", "version", "id"]
    assert header.index("subject") == row.index("svc-1")
    assert header.index("id") == row.index("0190f0e2")


def test_json_is_the_structured_cloudevent_on_one_line() -> None:
    value = b'{\n  "eventId": "x",\n  "eventType": "ServiceStateChangeEvent"\n}'
    line = json_line(HEADERS, value)
    assert b"\n" not in line
    event = orjson.loads(line)
    assert event["type"] == "org.tmforum.tmf638.v4.ServiceStateChangeEvent"
    assert event["subject"] == "svc-1"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == {"eventId": "x", "eventType": "ServiceStateChangeEvent"}
    assert "traceparent-ish" not in event


def test_filters_by_subject_and_by_type_in_full_or_short() -> None:
    headers = header_text(HEADERS)
    assert Filter()(headers)
    assert Filter(subjects={"svc-1"})(headers)
    assert not Filter(subjects={"svc-2"})(headers)
    assert Filter(types={"ServiceStateChangeEvent"})(headers)
    assert Filter(types={"org.tmforum.tmf638.v4.ServiceStateChangeEvent"})(headers)
    assert not Filter(types={"ServiceCreateEvent"})(headers)
    assert not Filter(subjects={"svc-1"}, types={"ServiceCreateEvent"})(headers)
