"""The TM Forum vocabulary the processor speaks: entity types, their APIs, event kinds and
names, listener names and state fields (docs/design.md#output-tmf-events-as-cloudevents).

Every other module takes these names from here.
"""

from __future__ import annotations

from typing import Final, Literal

EntityType = Literal["service", "resource"]
ENTITY_TYPES: Final[tuple[EntityType, ...]] = ("service", "resource")

#: The TMF resource name per entity type: the default `@type` and the event-name prefix.
ENTITY_NAME: Final[dict[str, str]] = {"service": "Service", "resource": "Resource"}

#: TMF API number per entity type (TMF638 Service Inventory, TMF639 Resource Inventory).
TMF_API: Final[dict[str, str]] = {"service": "tmf638", "resource": "tmf639"}

#: The API name in the REST base paths (`/tmf-api/<name>/<version>`) per entity type.
API_NAME: Final[dict[str, str]] = {
    "service": "serviceInventoryManagement",
    "resource": "resourceInventoryManagement",
}

#: TMF profiles the processor renders.
TMF_VERSIONS: Final[tuple[str, ...]] = ("v4", "v5")

EventKind = Literal[
    "Create", "AttributeValueChange", "StateChange", "OperatingStatusChange", "Delete"
]
#: Every kind, in the order one record's events are emitted (Create and Delete stand alone).
KINDS: Final[tuple[EventKind, ...]] = (
    "Create",
    "AttributeValueChange",
    "StateChange",
    "OperatingStatusChange",
    "Delete",
)
_V4_KINDS: Final[tuple[EventKind, ...]] = (
    "Create",
    "AttributeValueChange",
    "StateChange",
    "Delete",
)

#: The v5 Service member whose change is an OperatingStatusChange.
OPERATING_STATUS: Final[str] = "operatingStatus"


def kinds(entity_type: str, tmf_version: str) -> tuple[EventKind, ...]:
    """The event kinds of one entity type in one profile (v5 services add
    OperatingStatusChange)."""
    if tmf_version == "v5" and entity_type == "service":
        return (*_V4_KINDS[:3], "Delete", "OperatingStatusChange")
    return _V4_KINDS


def event_name(entity_type: str, kind: str) -> str:
    """`ServiceStateChangeEvent`, `ResourceCreateEvent`, ..."""
    return f"{ENTITY_NAME[entity_type]}{kind}Event"


def listener_name(event: str) -> str:
    """The TMF listener path segment of an event: `ServiceCreateEvent` → `serviceCreateEvent`."""
    return event[:1].lower() + event[1:]


#: State fields per TMF profile and entity type: a change of one is a StateChange.
DEFAULT_STATE_FIELDS: Final[dict[str, dict[EntityType, list[str]]]] = {
    "v4": {
        "service": ["state"],
        "resource": ["resourceStatus", "operationalState", "administrativeState", "usageState"],
    },
    "v5": {
        "service": ["state", OPERATING_STATUS],
        "resource": [
            "operationalState",
            "administrativeState",
            "usageState",
            "lifecycleState",
            "alarmStatus",
            "proceduralStatus",
            "availabilityStatus",
            "controlStatus",
            "unknownStatus",
            "allocationStatus",
            "standbyStatus",
            "powerConsumingState",
        ],
    },
}


#: `state` of a Service (ServiceStateType) per profile.
SERVICE_STATE: Final[dict[str, list[str]]] = {
    "v4": ["feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"],
    "v5": [
        "feasibilityChecked",
        "designed",
        "reserved",
        "inactive",
        "active",
        "terminated",
        "suspended",
    ],
}
#: `operatingStatus` of a v5 Service (ServiceOperatingStatusType).
SERVICE_OPERATING_STATUS: Final[list[str]] = [
    "pending",
    "configured",
    "starting",
    "running",
    "degraded",
    "failed",
    "limited",
    "stopping",
    "stopped",
    "unknown",
]

#: Resource state enums per profile (TMF639 v4 and v5).
RESOURCE_STATES: Final[dict[str, dict[str, list[str]]]] = {
    "v4": {
        "resourceStatus": ["standby", "alarm", "available", "reserved", "unknown", "suspended"],
        "operationalState": ["enable", "disable"],
        "administrativeState": ["locked", "unlocked", "shutdown"],
        "usageState": ["idle", "active", "busy"],
    },
    "v5": {
        "operationalState": ["enabled", "disabled"],
        "administrativeState": ["locked", "unlocked", "shuttingDown"],
        "usageState": ["idle", "active", "busy"],
        "lifecycleState": ["planned", "installed", "pendingRemoval"],
        "proceduralStatus": [
            "initializationRequired",
            "notInitialized",
            "initializing",
            "reporting",
            "terminating",
        ],
        "availabilityStatus": [
            "inTest",
            "failed",
            "powerOff",
            "online",
            "offline",
            "offDuty",
            "dependency",
            "degraded",
            "notInstalled",
            "logFull",
        ],
        "controlStatus": ["subjectToTest", "partOfServicesLocked", "reservedForTest", "suspended"],
        "standbyStatus": ["hotStandby", "coldStandby", "providingService"],
        "powerConsumingState": ["fullPower", "powerSaving", "sleeping", "shutdown"],
    },
}
#: The values of a v5 Resource's `alarmStatus` array.
RESOURCE_V5_ALARM_STATUS: Final[list[str]] = [
    "underRepair",
    "critical",
    "major",
    "minor",
    "alarmOutstanding",
]
