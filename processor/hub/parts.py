"""`HubParts`: what the dispatcher, the routes and every delivery worker of one hub replica
share, handed over as one value."""

from __future__ import annotations

from dataclasses import dataclass

from processor.config import Settings
from processor.hub.callbacks import AllowedHosts, Resolver
from processor.hub.metrics import HubMetrics
from processor.hub.store import HubStore


@dataclass(frozen=True)
class HubParts:
    settings: Settings
    store: HubStore
    metrics: HubMetrics
    allowed: AllowedHosts  # where callbacks may point (hub_allowed_callback_hosts)
    resolve: Resolver  # host name -> addresses, checked against `allowed` on every request
