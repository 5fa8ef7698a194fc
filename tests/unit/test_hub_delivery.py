"""One delivery (processor/hub/delivery.py): path, headers, signature and bounded I/O, against
real HTTP listeners on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from processor.hub.callbacks import check_callback, parse_allowed_hosts, parse_callback
from processor.hub.delivery import (
    SIGNATURE_HEADER,
    Poster,
    header_value,
    http_headers,
    listener_path,
    signature,
)
from processor.tmf import listener_name
from tests.listeners import Listener, Received

LOCAL = parse_allowed_hosts(["127.0.0.0/8"])
KAFKA_HEADERS: list[tuple[str, bytes | None]] = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"01900000-0000-7000-8000-000000000001"),
    ("ce_source", b"urn:tmf-events:tmf-events"),
    ("ce_type", b"org.tmforum.tmf638.v4.ServiceStateChangeEvent"),
    ("ce_time", b"2026-01-01T10:00:00.000Z"),
    ("ce_subject", "svc/ä 1".encode()),
    ("ce_previousid", None),
    ("content-type", b"application/json"),
    ("other", b"not a CloudEvents attribute"),
]


def local_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        ("ServiceCreateEvent", "serviceCreateEvent"),
        ("ServiceAttributeValueChangeEvent", "serviceAttributeValueChangeEvent"),
        ("ServiceOperatingStatusChangeEvent", "serviceOperatingStatusChangeEvent"),
        ("ResourceStateChangeEvent", "resourceStateChangeEvent"),
    ],
)
def test_listener_names_are_the_tmf_operations(event_type: str, name: str) -> None:
    assert listener_name(event_type) == name
    callback = parse_callback("http://l.example/tmf/")
    assert listener_path(callback, event_type) == f"/tmf/listener/{name}"
    assert listener_path(parse_callback("http://l.example"), event_type) == f"/listener/{name}"


def test_cloudevents_headers_in_the_http_binary_binding() -> None:
    headers = dict(http_headers(KAFKA_HEADERS, b"{}", None))
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == "01900000-0000-7000-8000-000000000001"
    assert headers["ce-type"] == "org.tmforum.tmf638.v4.ServiceStateChangeEvent"
    assert headers["ce-time"] == "2026-01-01T10:00:00.000Z"
    assert headers["ce-subject"] == "svc/%C3%A4%201"  # percent-encoded UTF-8, space too
    assert headers["Content-Type"] == "application/json"
    assert "ce-previousid" not in headers  # a null header is no attribute
    assert "other" not in headers and SIGNATURE_HEADER not in headers


def test_header_values_encode_only_what_http_needs() -> None:
    assert header_value(b"plain-ASCII_value:/?=") == "plain-ASCII_value:/?="
    assert header_value(b'a "quoted" 100%') == "a%20%22quoted%22%20100%25"
    assert header_value(b"\x00\x7f") == "%00%7F"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # The webhook signature test vector published with GitHub's documentation.
    assert signature(b"It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    headers = dict(http_headers(KAFKA_HEADERS, b'{"a":1}', b"k"))
    expected = hmac.new(b"k", b'{"a":1}', hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"


def poster(timeout_s: float = 5.0, max_response_bytes: int = 1024) -> Poster:
    return Poster(LOCAL, timeout_s, max_response_bytes, local_resolver)


def test_a_post_carries_the_body_and_headers_and_reuses_its_connection() -> None:
    with Listener() as listener:
        callback, _ = check_callback(listener.url + "/cb", LOCAL, local_resolver)
        p = poster()
        headers = http_headers(KAFKA_HEADERS, b'{"eventType":"x"}', None)
        first = p.post(
            callback, "/cb/listener/serviceStateChangeEvent", headers, b'{"eventType":"x"}'
        )
        conn = p.conn
        second = p.post(callback, "/cb/listener/serviceStateChangeEvent", headers, b"{}")
        assert first.delivered and first.status == 201 and first.sent
        assert conn is not None and second.delivered and p.conn is conn  # kept alive
        got = listener.requests()
        assert [r.path for r in got] == ["/cb/listener/serviceStateChangeEvent"] * 2
        assert got[0].body == b'{"eventType":"x"}'
        assert got[0].headers["ce-id"] == "01900000-0000-7000-8000-000000000001"
        assert got[0].headers["content-type"] == "application/json"
        assert got[0].headers["host"] == f"127.0.0.1:{listener.port}"
        p.close()


def test_the_host_name_goes_in_the_host_header_while_the_checked_address_is_dialled() -> None:
    allowed = parse_allowed_hosts(["listener.test"])
    with Listener() as listener:
        callback, _ = check_callback(
            f"http://listener.test:{listener.port}/x", allowed, local_resolver
        )
        outcome = Poster(allowed, 5, 1024, local_resolver).post(callback, "/x/listener/a", [], b"")
        assert outcome.delivered
        assert listener.requests()[0].headers["host"] == f"listener.test:{listener.port}"


def test_a_name_that_now_resolves_to_a_refused_address_is_not_called() -> None:
    # DNS rebinding: public at registration, private at delivery; nothing is dialled.
    answers = iter([["93.184.216.34"], ["10.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    callback, _ = check_callback("http://rebind.example/cb", parse_allowed_hosts([]), rebinding)
    outcome = Poster(parse_allowed_hosts([]), 5, 1024, rebinding).post(callback, "/cb", [], b"")
    assert not outcome.delivered and not outcome.sent and outcome.status is None
    assert outcome.error is not None and "private address 10.0.0.1" in outcome.error


def test_redirects_are_not_followed() -> None:
    with Listener() as listener:
        listener.respond = lambda r: (302, {"Location": f"{listener.url}/elsewhere"}, b"")
        callback, _ = check_callback(listener.url, LOCAL, local_resolver)
        outcome = poster().post(callback, "/listener/a", [], b"{}")
        assert not outcome.delivered and outcome.status == 302
        assert outcome.error == "listener answered 302"
        assert [r.path for r in listener.requests()] == ["/listener/a"]


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_non_2xx_answers_are_failures(status: int) -> None:
    with Listener() as listener:
        listener.respond = lambda r: (status, {}, b"no")
        callback, _ = check_callback(listener.url, LOCAL, local_resolver)
        outcome = poster().post(callback, "/listener/a", [], b"{}")
        assert (outcome.delivered, outcome.status, outcome.sent) == (False, status, True)


def test_a_large_answer_is_read_only_up_to_the_limit() -> None:
    with Listener() as listener:
        listener.respond = lambda r: (200, {}, b"x" * 5_000_000)
        callback, _ = check_callback(listener.url, LOCAL, local_resolver)
        p = poster(max_response_bytes=1000)
        outcome = p.post(callback, "/listener/a", [], b"{}")
        assert outcome.delivered and outcome.status == 200
        assert p.conn is None  # the unread rest makes the connection unusable: closed


def test_a_hanging_listener_times_out_and_the_request_counts_as_sent() -> None:
    with Listener() as listener:
        listener.hang()
        callback, _ = check_callback(listener.url, LOCAL, local_resolver)
        outcome = poster(timeout_s=0.3).post(callback, "/listener/a", [], b"{}")
        assert not outcome.delivered and outcome.sent and outcome.status is None
        assert outcome.error is not None and "timed out" in outcome.error
        listener.release()


def test_a_listener_that_is_down_is_a_failure_before_anything_was_sent() -> None:
    listener = Listener()  # never up: the port refuses connections
    callback, _ = check_callback(listener.url, LOCAL, local_resolver)
    outcome = poster().post(callback, "/listener/a", [], b"{}")
    assert not outcome.delivered and not outcome.sent
    assert outcome.error is not None and "ConnectionRefused" in outcome.error


def test_a_restarted_listener_gets_the_next_post_on_a_new_connection() -> None:
    listener = Listener().start()
    try:
        callback, _ = check_callback(listener.url, LOCAL, local_resolver)
        p = poster()
        assert p.post(callback, "/listener/a", [], b"1").delivered
        listener.down()
        assert not p.post(callback, "/listener/a", [], b"2").delivered
        listener.start()
        assert p.post(callback, "/listener/a", [], b"3").delivered
        assert [r.body for r in listener.requests()] == [b"1", b"3"]
    finally:
        listener.down()


def test_received_helper() -> None:
    r = Received("/x", {"ce-id": "a", "ce-subject": "s"}, b"")
    assert (r.ce_id, r.subject) == ("a", "s")
