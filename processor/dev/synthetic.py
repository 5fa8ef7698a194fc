"""Deterministic synthetic change records (docs/design.md#input-change-records) for load tests,
benchmarks and tests.

Pure: one seeded `random.Random`, no wall clock, no global state. The same arguments and the
same sequence of `records()` calls give the same bytes on every run and every machine.

Each key is one TMF638 v4 Service or TMF639 v4 Resource instance whose id is the key. A record
is one of these kinds, drawn with the weights of a `Mix`:

| kind | record | what the processor should emit |
|---|---|---|
| `create` | upsert of a new instance (a key that is not live, possibly deleted before) | Create |
| `update` | upsert, one non-state attribute changed | AttributeValueChange |
| `state` | upsert, one state field changed | StateChange |
| `noop` | upsert of the same instance again | nothing (`unchanged`) |
| `private` | upsert, only the private field `note` changed | nothing (`unchanged`) |
| `delete` | explicit `{"operation": "delete"}` record or tombstone (value None) | Delete |

A kind that needs a live instance while none is live becomes a `create`; a `create` while every
key is live becomes an `update`. So no record deletes a key that was never created, and the
`kind` of each `SyntheticRecord` says what was really generated.

Deletes are explicit `{"operation": "delete"}` records or tombstones (`tombstone_share`);
`correlationId` is present in `correlation_share` of the records and `operation: "upsert"` is
left out of one upsert in ten (it is the default). Instances are padded with characteristics
to about `instance_bytes` of compact JSON (never less than about 0.95 KB: the fixed attributes
plus two characteristics). Memory grows with the live keys: about `instance_bytes` each.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from random import Random
from typing import Any

import orjson

from processor.tmf import RESOURCE_STATES, SERVICE_STATE

__all__ = [
    "DEFAULT_START_MS",
    "KINDS",
    "Generator",
    "Mix",
    "SyntheticRecord",
    "rfc3339_ms",
]

KINDS: tuple[str, ...] = ("create", "update", "state", "noop", "private", "delete")
DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Json = dict[str, Any]


@lru_cache(maxsize=1024)
def _second(seconds: int) -> str:
    return f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"


def rfc3339_ms(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds and `Z` (integer arithmetic)."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@dataclass(frozen=True)
class Mix:
    """Relative weights of the record kinds (they need not sum to 1)."""

    create: float = 0.10
    update: float = 0.45
    state: float = 0.15
    noop: float = 0.20
    private: float = 0.05
    delete: float = 0.05

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 for w in weights):
            raise ValueError(f"mix weights must not be negative: {self}")
        if sum(weights) <= 0:
            raise ValueError("mix weights must not all be zero")

    def weights(self) -> tuple[float, ...]:
        """The weights in the order of `KINDS`."""
        return tuple(float(getattr(self, kind)) for kind in KINDS)

    def shares(self) -> dict[str, float]:
        """The weights normalised to sum to 1, by kind."""
        total = sum(self.weights())
        return {kind: w / total for kind, w in zip(KINDS, self.weights(), strict=True)}

    @classmethod
    def parse(cls, text: str) -> Mix:
        """`"create=0.1,update=0.6,delete=0.1"` → Mix; kinds not named get weight 0.

        An empty string gives the default mix.
        """
        text = text.strip()
        if not text:
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = dict.fromkeys(known, 0.0)
        for part in text.split(","):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise ValueError(
                    f"bad mix item {part!r}: expected KIND=WEIGHT with KIND one of "
                    f"{', '.join(KINDS)}"
                )
            try:
                values[name] = float(raw)
            except ValueError:
                raise ValueError(f"bad weight in mix item {part!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class SyntheticRecord:
    """One Kafka record: key = instance id (UTF-8), value = change record JSON or None."""

    key: bytes
    value: bytes | None
    timestamp_ms: int
    kind: str


# --- vocabulary -------------------------------------------------------------------------

_SERVICE_STATES = tuple(SERVICE_STATE["v4"])
# The synthetic instances are v4 data.
_RESOURCE_STATES = {field: tuple(values) for field, values in RESOURCE_STATES["v4"].items()}
_SERVICE_TYPES: tuple[tuple[str, str], ...] = (
    ("broadband", "Fibre Broadband"),
    ("voice", "VoIP Line"),
    ("iptv", "IPTV"),
    ("mobile", "Mobile Subscription"),
    ("vpn", "IP VPN Site"),
    ("ethernet", "Ethernet Access"),
)
_RESOURCE_KINDS: tuple[tuple[str, str, str], ...] = (
    # @type, category, name prefix
    ("LogicalResource", "ip", "IPv4 Address"),
    ("LogicalResource", "network", "VLAN"),
    ("LogicalResource", "numbering", "MSISDN"),
    ("PhysicalResource", "access", "ONT"),
    ("PhysicalResource", "cpe", "Home Gateway"),
    ("PhysicalResource", "network", "OLT Port"),
)
_PEOPLE = (
    "Ada Byron",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "John Backus",
    "Margaret Hamilton",
    "Ken Thompson",
)
_ORGS = ("NetCo Field Services", "Acme Fibre", "Metro Access Ltd", "Backbone Ops")
_CITIES = ("Lisbon", "Porto", "Madrid", "Lyon", "Milan", "Ghent", "Utrecht", "Graz", "Aarhus")
_STREETS = ("Rua Augusta", "Calle Mayor", "Rue de la Paix", "Via Roma", "Hoofdstraat")
_NOTE_TEXTS = (
    "Customer asked to be called before the technician visit.",
    "Installation rescheduled at the customer's request.",
    "Line test passed, no further action.",
    "Port swapped after a CRC error burst.",
    "Billing account migrated from the legacy stack.",
    "Escalated to the second line for a speed complaint.",
    "Access key kept at the building reception.",
    "Router firmware upgraded remotely.",
)
_QOS = ("BRONZE", "SILVER", "GOLD", "PLATINUM")
_TECH = ("GPON", "XGS-PON", "VDSL2", "5G-FWA", "DOCSIS3.1")
_CPE_MODELS = ("HG8245Q2", "FRITZ!Box 7590", "Archer AX55", "ONT-2426G")

# Characteristic name → value type. Values come from `_characteristic_value`.
_CHARACTERISTICS: tuple[tuple[str, str], ...] = (
    ("downloadSpeedMbps", "integer"),
    ("uploadSpeedMbps", "integer"),
    ("accessTechnology", "string"),
    ("qosProfile", "string"),
    ("vlanId", "integer"),
    ("ipv4Address", "string"),
    ("ipv6Prefix", "string"),
    ("cpeModel", "string"),
    ("cpeSerialNumber", "string"),
    ("staticIp", "boolean"),
    ("mtu", "integer"),
    ("circuitId", "string"),
    ("slaAvailabilityPercent", "number"),
    ("contractTermMonths", "integer"),
    ("autoRenew", "boolean"),
    ("installationType", "string"),
    ("maxLatencyMs", "integer"),
    ("dnsServers", "string"),
    ("routingProtocol", "string"),
    ("billingReference", "string"),
)


_MIN_CHARACTERISTICS = 2


def _characteristic_value(rng: Random, name: str, value_type: str) -> Any:
    base = name.rstrip("0123456789-")
    if value_type == "boolean":
        return rng.random() < 0.5
    if value_type == "number":
        return round(rng.uniform(99.0, 99.999), 3)
    if value_type == "integer":
        if base.startswith("downloadSpeed"):
            return rng.choice((100, 200, 500, 1000, 2000, 5000, 10000))
        if base.startswith("uploadSpeed"):
            return rng.choice((20, 50, 100, 200, 500, 1000))
        if base == "vlanId":
            return rng.randrange(2, 4095)
        if base == "mtu":
            return rng.choice((1492, 1500, 9000))
        if base == "contractTermMonths":
            return rng.choice((0, 12, 24, 36))
        return rng.randrange(1, 250)
    if base == "accessTechnology":
        return rng.choice(_TECH)
    if base == "qosProfile":
        return rng.choice(_QOS)
    if base == "ipv4Address":
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if base == "ipv6Prefix":
        return f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::/56"
    if base == "cpeModel":
        return rng.choice(_CPE_MODELS)
    if base == "cpeSerialNumber":
        return f"SN{rng.getrandbits(40):010X}"
    if base == "circuitId":
        return f"CIR-{rng.choice(_CITIES)[:3].upper()}-{rng.randrange(1_000_000):06d}"
    if base == "installationType":
        return rng.choice(("selfInstall", "technicianVisit", "remoteActivation"))
    if base == "dnsServers":
        return f"10.0.{rng.randrange(256)}.53,10.0.{rng.randrange(256)}.54"
    if base == "routingProtocol":
        return rng.choice(("static", "BGP", "OSPF"))
    if base == "billingReference":
        return f"BA-{rng.randrange(10**9):09d}"
    return f"{base}-{rng.getrandbits(32):08x}"


def _characteristic(rng: Random, index: int) -> Json:
    name, value_type = _CHARACTERISTICS[index % len(_CHARACTERISTICS)]
    if index >= len(_CHARACTERISTICS):
        name = f"{name}{index // len(_CHARACTERISTICS) + 1}"
    return {
        "name": name,
        "valueType": value_type,
        "value": _characteristic_value(rng, name, value_type),
    }


def _json_len(value: Any) -> int:
    return len(orjson.dumps(value))


class Generator:
    """A deterministic stream of change records over a fixed key space.

    `records(count)` continues where the previous call stopped (timestamps, instance states),
    so `records(10)` twice gives the same bytes as `records(20)` once.
    """

    def __init__(
        self,
        seed: int,
        keys: int,
        mix: Mix,
        start_ms: int = DEFAULT_START_MS,
        step_ms: int = 10,
        instance_bytes: int = 1000,
        entity_types: tuple[str, ...] = ("service", "resource"),
        *,
        tombstone_share: float = 0.5,
        correlation_share: float = 0.75,
    ) -> None:
        if keys < 1:
            raise ValueError("keys must be at least 1")
        if step_ms < 0:
            raise ValueError("step_ms must not be negative")
        if not entity_types or any(t not in ("service", "resource") for t in entity_types):
            raise ValueError(f"entity_types must be service and/or resource, not {entity_types}")
        self.seed = seed
        self.keys = keys
        self.mix = mix
        self.start_ms = start_ms
        self.step_ms = step_ms
        self.instance_bytes = instance_bytes
        self.entity_types = entity_types
        self.tombstone_share = tombstone_share
        self.correlation_share = correlation_share

        self._rng = Random(seed)
        self._thresholds = self._cumulative(mix)
        self._seq = 0  # records generated so far
        # live instances by slot, as compact JSON: memory ~ live keys * instance_bytes
        self._instances: dict[int, bytes] = {}
        # live / dead slot sets with O(1) random pick and removal
        self._live: list[int] = []
        self._dead: list[int] = list(range(keys))
        self._pos: list[int] = list(range(keys))  # index of the slot in _live or _dead

    # -- public --------------------------------------------------------------------------

    def records(self, count: int) -> Iterator[SyntheticRecord]:
        """The next `count` records."""
        for _ in range(count):
            yield self._next()

    def key_of(self, slot: int) -> str:
        """The instance id of key slot `slot` (0 <= slot < keys); independent of the rng."""
        return self._slot(slot)[0]

    def entity_type_of(self, slot: int) -> str:
        """The entity type of key slot `slot`; fixed for the life of the key."""
        return self._slot(slot)[1]

    def _slot(self, slot: int) -> tuple[str, str]:
        # derived from (seed, slot) on demand: no per-key memory for keys never touched
        digest = hashlib.blake2b(
            f"{self.seed}:{slot}".encode(), digest_size=20, person=b"tmf-synth"
        ).digest()
        key = str(uuid.UUID(bytes=digest[:16], version=4))
        entity_type = self.entity_types[int.from_bytes(digest[16:], "big") % len(self.entity_types)]
        return key, entity_type

    @property
    def live_keys(self) -> int:
        return len(self._live)

    # -- machinery -----------------------------------------------------------------------

    @staticmethod
    def _cumulative(mix: Mix) -> list[float]:
        total = sum(mix.weights())
        acc = 0.0
        out: list[float] = []
        for w in mix.weights():
            acc += w / total
            out.append(acc)
        out[-1] = 1.0
        return out

    def _draw_kind(self) -> str:
        r = self._rng.random()
        for kind, threshold in zip(KINDS, self._thresholds, strict=True):
            if r < threshold:
                return kind
        return KINDS[-1]

    def _move(self, slot: int, to_live: bool) -> None:
        src, dst = (self._dead, self._live) if to_live else (self._live, self._dead)
        i = self._pos[slot]
        last = src[-1]
        src[i] = last
        self._pos[last] = i
        src.pop()
        self._pos[slot] = len(dst)
        dst.append(slot)

    def _next(self) -> SyntheticRecord:
        rng = self._rng
        ts = self.start_ms + self._seq * self.step_ms
        self._seq += 1
        kind = self._draw_kind()
        if kind == "create" and not self._dead:
            kind = "update"
        elif kind != "create" and not self._live:
            kind = "create"

        if kind == "create":
            slot = self._dead[rng.randrange(len(self._dead))]
            self._move(slot, to_live=True)
        else:
            slot = self._live[rng.randrange(len(self._live))]
        key, entity_type = self._slot(slot)

        if kind == "delete":
            self._move(slot, to_live=False)
            del self._instances[slot]
            if rng.random() < self.tombstone_share:
                return SyntheticRecord(key.encode(), None, ts, kind)
            envelope: Json = {
                "entityType": entity_type,
                "operation": "delete",
                "id": key,
                "observedAt": rfc3339_ms(ts),
            }
            self._maybe_correlation(envelope)
            return SyntheticRecord(key.encode(), orjson.dumps(envelope), ts, kind)

        if kind == "create":
            rendered = orjson.dumps(self._new_instance(key, entity_type, ts))
            self._instances[slot] = rendered
        elif kind == "noop":  # the same instance again
            rendered = self._instances[slot]
        else:
            instance: Json = orjson.loads(self._instances[slot])
            if kind == "update":
                self._change_attribute(instance)
            elif kind == "state":
                self._change_state(instance, entity_type)
            else:  # private
                self._change_note(instance, ts)
            rendered = orjson.dumps(instance)
            self._instances[slot] = rendered

        envelope = {"entityType": entity_type}
        if rng.random() < 0.9:  # `operation` is optional; default upsert
            envelope["operation"] = "upsert"
        envelope["id"] = key
        envelope["observedAt"] = rfc3339_ms(ts)
        self._maybe_correlation(envelope)
        # `{...head..., "instance": <stored JSON>}` without parsing the instance again
        value = b"".join((orjson.dumps(envelope)[:-1], b',"instance":', rendered, b"}"))
        return SyntheticRecord(key.encode(), value, ts, kind)

    def _maybe_correlation(self, envelope: Json) -> None:
        if self._rng.random() < self.correlation_share:
            envelope["correlationId"] = f"ORD-{self._rng.randrange(10**8):08d}"

    # -- instances -----------------------------------------------------------------------

    def _note(self, ts: int) -> Json:
        rng = self._rng
        return {
            "id": f"N{rng.randrange(10**6):06d}",
            "author": rng.choice(_PEOPLE),
            "date": rfc3339_ms(ts),
            "text": rng.choice(_NOTE_TEXTS),
        }

    def _pad(self, instance: Json, list_name: str) -> None:
        """Append characteristics until the instance is about `instance_bytes` long."""
        chars: list[Json] = instance[list_name]
        size = _json_len(instance)
        while True:
            item = _characteristic(self._rng, len(chars))
            grow = _json_len(item) + (1 if chars else 0)
            # at least _MIN_CHARACTERISTICS; then stop when the next item would overshoot
            # the target by more than it would undershoot it
            over = size + grow - self.instance_bytes > self.instance_bytes - size
            if len(chars) >= _MIN_CHARACTERISTICS and over:
                break
            chars.append(item)
            size += grow

    def _new_instance(self, key: str, entity_type: str, ts: int) -> Json:
        if entity_type == "service":
            return self._new_service(key, ts)
        return self._new_resource(key, ts)

    def _new_service(self, key: str, ts: int) -> Json:
        rng = self._rng
        service_type, label = rng.choice(_SERVICE_TYPES)
        spec_id = f"{service_type}-{rng.randrange(1, 6)}"
        resource_id = f"res-{rng.getrandbits(32):08x}"
        instance: Json = {
            "id": key,
            "href": f"/tmf-api/serviceInventory/v4/service/{key}",
            "@type": "Service",
            "name": f"{label} {key[:8]}",
            "description": f"{label}, {rng.choice(_CITIES)}",
            "category": rng.choice(("CFS", "RFS")),
            "serviceType": service_type,
            "state": rng.choice(("feasibilityChecked", "designed", "reserved")),
            "startDate": rfc3339_ms(ts),
            "serviceSpecification": {
                "id": spec_id,
                "href": f"/tmf-api/serviceCatalogManagement/v4/serviceSpecification/{spec_id}",
                "@referredType": "ServiceSpecification",
            },
            "relatedParty": [
                {
                    "id": f"{rng.randrange(10**7):07d}",
                    "name": rng.choice(_PEOPLE),
                    "role": "Customer",
                    "@referredType": "Individual",
                }
            ],
            "supportingResource": [
                {
                    "id": resource_id,
                    "href": f"/tmf-api/resourceInventoryManagement/v4/resource/{resource_id}",
                    "@referredType": rng.choice(("LogicalResource", "PhysicalResource")),
                }
            ],
            "note": [self._note(ts)],
            "serviceCharacteristic": [],
        }
        self._pad(instance, "serviceCharacteristic")
        return instance

    def _new_resource(self, key: str, ts: int) -> Json:
        rng = self._rng
        at_type, category, label = rng.choice(_RESOURCE_KINDS)
        spec_id = f"{category}-{label.lower().replace(' ', '-')}-{rng.randrange(1, 4)}"
        instance: Json = {
            "id": key,
            "href": f"/tmf-api/resourceInventoryManagement/v4/resource/{key}",
            "@type": at_type,
            "name": f"{label} {key[:8]}",
            "description": f"{label}, {rng.choice(_CITIES)}",
            "category": category,
            "resourceStatus": rng.choice(("standby", "reserved", "available")),
            "operationalState": rng.choice(_RESOURCE_STATES["operationalState"]),
            "administrativeState": rng.choice(("locked", "unlocked")),
            "usageState": "idle",
            "startOperatingDate": rfc3339_ms(ts),
            "resourceSpecification": {
                "id": spec_id,
                "href": f"/tmf-api/resourceCatalogManagement/v4/resourceSpecification/{spec_id}",
                "@referredType": "ResourceSpecification",
            },
            "place": {
                "id": f"{rng.randrange(10**8):08d}",
                "role": "installationAddress",
                "@referredType": "GeographicAddress",
            },
            "note": [self._note(ts)],
            "resourceCharacteristic": [],
        }
        if at_type == "PhysicalResource":
            instance["serialNumber"] = f"SN{rng.getrandbits(40):010X}"
        else:
            instance["value"] = f"{label.split()[0]}-{rng.randrange(10**6):06d}"
        self._pad(instance, "resourceCharacteristic")
        return instance

    # -- changes (in place; each really changes the public rendering) --------------------

    def _change_attribute(self, instance: Json) -> None:
        rng = self._rng
        list_name = (
            "serviceCharacteristic"
            if "serviceCharacteristic" in instance
            else "resourceCharacteristic"
        )
        chars: list[Json] = instance[list_name]
        if chars and rng.random() < 0.85:
            i = rng.randrange(len(chars))
            old = chars[i]
            value = old["value"]
            if old["valueType"] == "boolean":
                value = not value
            else:
                for _ in range(8):
                    value = _characteristic_value(rng, old["name"], old["valueType"])
                    if value != old["value"]:
                        break
                else:
                    value = f"{old['value']}-{self._seq}"
            chars[i] = {"name": old["name"], "valueType": old["valueType"], "value": value}
            return
        # otherwise a top-level text attribute; the sequence number makes it new
        if rng.random() < 0.5:
            instance["description"] = (
                f"{instance['description'].split(' (rev ', 1)[0]} (rev {self._seq})"
            )
        else:
            instance["name"] = f"{instance['name'].split(' (rev ', 1)[0]} (rev {self._seq})"

    def _change_state(self, instance: Json, entity_type: str) -> None:
        rng = self._rng
        if entity_type == "service":
            field, values = "state", _SERVICE_STATES
        else:
            field = rng.choice(tuple(_RESOURCE_STATES))
            values = _RESOURCE_STATES[field]
        current = instance.get(field)
        instance[field] = rng.choice([v for v in values if v != current])

    def _change_note(self, instance: Json, ts: int) -> None:
        # replace the note (keeps the size stable); the sequence number makes it new
        note = self._note(ts)
        note["id"] = f"N{self._seq:06d}"
        instance["note"] = [note]
