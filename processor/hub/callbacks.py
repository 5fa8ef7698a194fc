"""Which callback URLs the hub may call (server-side request forgery is the risk).

A callback is an absolute `http` or `https` URL without credentials or fragment. Its host
is resolved and every address it resolves to must be public: loopback, private, link-local,
multicast, unspecified and reserved addresses are refused, unless the host name or the
address is listed in `hub_allowed_callback_hosts` (host names, or CIDRs). Delivery resolves
again and connects to an address this check passed, so a name that later resolves elsewhere
(DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (socket.getaddrinfo by default)
Resolver = Callable[[str, int], list[str]]

MAX_CALLBACK_LENGTH = 2048


class CallbackError(ValueError):
    """A callback the hub refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    names: frozenset[str]
    networks: tuple[IpNetwork, ...]

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_address(self, address: IpAddress) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)


@dataclass(frozen=True, slots=True)
class Callback:
    """A checked callback: where to connect and what to send as Host and SNI."""

    url: str
    scheme: str
    host: str  # as written, without brackets
    port: int
    base_path: str  # without a trailing slash; `/listener/<name>` follows


def parse_allowed_hosts(entries: Iterable[str]) -> AllowedHosts:
    names: set[str] = set()
    networks: list[IpNetwork] = []
    for entry in entries:
        text = entry.strip().lower()
        try:
            networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            continue
        except ValueError:
            if "/" in text:
                raise ValueError(f"hub_allowed_callback_hosts: {entry!r} is no CIDR") from None
        if not text or any(c in text for c in " /:@?#[]"):
            raise ValueError(
                f"hub_allowed_callback_hosts: {entry!r} is neither a host name nor a CIDR"
            )
        names.add(text.rstrip("."))
    return AllowedHosts(frozenset(names), tuple(networks))


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def forbidden_reason(address: IpAddress) -> str | None:
    """Why an address is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def parse_callback(url: str) -> Callback:
    """The parts of a callback URL; raises CallbackError when it is not one the hub calls."""
    if len(url) > MAX_CALLBACK_LENGTH:
        raise CallbackError(f"callback is longer than {MAX_CALLBACK_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise CallbackError("callback contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackError(f"callback is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise CallbackError(f"callback scheme must be http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise CallbackError("callback must not carry credentials (use hub_signing_secret)")
    if parts.fragment or "#" in url:
        raise CallbackError("callback must not have a fragment")
    if parts.query:
        raise CallbackError("callback must not have a query: /listener/<event> is appended")
    host = parts.hostname
    if not host:
        raise CallbackError("callback has no host")
    return Callback(
        url=url,
        scheme=scheme,
        host=host,
        port=port if port is not None else (443 if scheme == "https" else 80),
        base_path=parts.path.rstrip("/"),
    )


def allowed_addresses(
    callback: Callback, allowed: AllowedHosts, resolve: Resolver = system_resolver
) -> list[str]:
    """The addresses the callback's host resolves to, all of them allowed; raises
    CallbackError when it does not resolve or any address is refused."""
    try:
        literal: IpAddress | None = ipaddress.ip_address(callback.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = resolve(callback.host, callback.port)
        except (OSError, UnicodeError) as exc:
            raise CallbackError(
                f"callback host {callback.host!r} does not resolve: {exc}"
            ) from None
        if not addresses:
            raise CallbackError(f"callback host {callback.host!r} does not resolve")
    if allowed.allows_name(callback.host):
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = forbidden_reason(address)
        if reason is not None and not allowed.allows_address(address):
            raise CallbackError(
                f"callback host {callback.host!r} resolves to the {reason} address {address}; "
                "list it in hub_allowed_callback_hosts to allow it"
            )
    return addresses


def check_callback(
    url: str, allowed: AllowedHosts, resolve: Resolver = system_resolver
) -> tuple[Callback, Sequence[str]]:
    callback = parse_callback(url)
    return callback, allowed_addresses(callback, allowed, resolve)
