"""Callback safety (processor/hub/callbacks.py): schemes, addresses, the allow list.

Resolution is injected: no test resolves a name through DNS or connects anywhere.
"""

from __future__ import annotations

import pytest

from processor.config import ConfigError, load_settings
from processor.hub.callbacks import (
    CallbackError,
    check_callback,
    forbidden_reason,
    parse_allowed_hosts,
    parse_callback,
)

PUBLIC = "93.184.216.34"
NOBODY = parse_allowed_hosts([])


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


def test_a_public_https_callback_is_taken_apart() -> None:
    callback, addresses = check_callback(
        "https://listener.example.com:8443/tmf/cb/",
        NOBODY,
        resolver({"listener.example.com": [PUBLIC]}),
    )
    assert (callback.scheme, callback.host, callback.port) == (
        "https",
        "listener.example.com",
        8443,
    )
    assert callback.base_path == "/tmf/cb"
    assert addresses == [PUBLIC]


def test_default_ports() -> None:
    assert parse_callback("http://a.example").port == 80
    assert parse_callback("HTTPS://a.example").port == 443
    assert parse_callback("http://a.example").base_path == ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://a.example/x", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("gopher://a.example", "scheme must be http or https"),
        ("a.example/listener", "scheme must be http or https"),
        ("http:///nohost", "no host"),
        ("http://user:pw@a.example/", "credentials"),
        ("http://a.example/#frag", "fragment"),
        ("http://a.example/?x=1", "query"),
        ("http://a.example:99999/", "not a URL"),
        ("http://a.example/ x", "spaces or control characters"),
        ("http://a.example/\nx", "spaces or control characters"),
        ("http://" + "a" * 3000 + ".example/", "longer than"),
    ],
)
def test_malformed_callbacks_are_refused(url: str, reason: str) -> None:
    with pytest.raises(CallbackError, match=reason):
        check_callback(url, NOBODY, resolver({"a.example": [PUBLIC]}))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(CallbackError, match=f"the {kind} address"):
        check_callback(f"http://{host}:8080/cb", NOBODY, resolver({}))
    # ... also when a name resolves there
    with pytest.raises(CallbackError, match="list it in hub_allowed_callback_hosts"):
        check_callback("http://inside.example/cb", NOBODY, resolver({"inside.example": [address]}))


def test_one_bad_address_among_good_ones_refuses_the_callback() -> None:
    with pytest.raises(CallbackError, match="private"):
        check_callback(
            "http://mixed.example/", NOBODY, resolver({"mixed.example": [PUBLIC, "10.0.0.7"]})
        )


def test_public_addresses_pass() -> None:
    assert forbidden_reason(__import__("ipaddress").ip_address(PUBLIC)) is None
    assert forbidden_reason(__import__("ipaddress").ip_address("2606:4700::1111")) is None


def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(CallbackError, match="does not resolve"):
        check_callback("http://nowhere.example/", NOBODY, resolver({}))
    with pytest.raises(CallbackError, match="does not resolve"):
        check_callback("http://empty.example/", NOBODY, resolver({"empty.example": []}))


def test_allow_list_by_cidr() -> None:
    allowed = parse_allowed_hosts(["127.0.0.0/8", "10.20.0.0/16"])
    check_callback("http://127.0.0.1:9/cb", allowed, resolver({}))
    check_callback("http://svc.internal/cb", allowed, resolver({"svc.internal": ["10.20.3.4"]}))
    with pytest.raises(CallbackError, match="private"):
        check_callback("http://svc.internal/cb", allowed, resolver({"svc.internal": ["10.21.0.1"]}))
    with pytest.raises(CallbackError, match="loopback"):
        check_callback("http://[::1]:9/cb", allowed, resolver({}))  # an IPv4 range only


def test_allow_list_by_host_name_and_single_address() -> None:
    allowed = parse_allowed_hosts(["Listener.Local", "192.168.7.7"])
    check_callback("http://listener.local./x", allowed, resolver({"listener.local.": ["10.0.0.1"]}))
    check_callback("http://192.168.7.7/x", allowed, resolver({}))
    with pytest.raises(CallbackError):
        check_callback("http://192.168.7.8/x", allowed, resolver({}))


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "http://x", "a@b", "", "x/y"])
def test_bad_allow_list_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ValueError, match="hub_allowed_callback_hosts"):
        parse_allowed_hosts([entry])
    with pytest.raises(ConfigError, match="hub_allowed_callback_hosts"):
        load_settings(hub_allowed_callback_hosts=[entry])


def test_settings_take_host_names_and_cidrs() -> None:
    settings = load_settings(hub_allowed_callback_hosts=["127.0.0.0/8", "listener", "::1"])
    allowed = parse_allowed_hosts(settings.hub_allowed_callback_hosts)
    assert allowed.names == frozenset({"listener"})
    assert len(allowed.networks) == 2
