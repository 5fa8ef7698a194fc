"""`tmf-events hub`: the parts put together, and how the command fails.

Start-up: bind the HTTP port (busy: exit 2 naming `http_port`), reach Kafka (no answer
within `connect_timeout_ms`: exit 4), check that the output topics exist (else exit 2 naming
the topic's setting) and create the hub topic, read the hub topic, serve HTTP and join the
group. SIGTERM: workers write their positions, the replica leaves the group, exit 0. Every
failure is a CommandError, told in one line like every command's (processor/errors.py).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping

from confluent_kafka import KafkaException

from processor.config import Settings
from processor.connect import call_failed, wait_for_kafka
from processor.errors import KafkaFatalError, port_failure
from processor.http import Answer, HttpServer, Request, problem
from processor.hub.callbacks import Resolver, parse_allowed_hosts, system_resolver
from processor.hub.dispatch import Dispatcher
from processor.hub.metrics import HubMetrics
from processor.hub.parts import HubParts
from processor.hub.routes import HubRoutes
from processor.hub.store import HubStore, ensure_hub_topic

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, settings: Settings, resolve: Resolver = system_resolver) -> None:
        self.settings = settings
        self.resolve = resolve
        self.metrics = HubMetrics()
        self.metrics.start_at_zero(settings.tmf_version, settings.entity_types)
        self.allowed = parse_allowed_hosts(settings.hub_allowed_callback_hosts)
        self.topics = [settings.topic_for(t) for t in settings.entity_types]
        self.stop_event = threading.Event()
        self.store: HubStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.routes: HubRoutes | None = None

    def prepare(self) -> Mapping[str, int]:
        """Topics checked and created, the hub topic followed; raises HubSetupError or
        KafkaException."""
        partitions = ensure_hub_topic(self.settings, self.topics)
        store = self.store = HubStore(self.settings).start()
        parts = HubParts(self.settings, store, self.metrics, self.allowed, self.resolve)
        dispatcher = self.dispatcher = Dispatcher(parts, self.topics)
        self.routes = HubRoutes(
            parts,
            partitions,
            forget=dispatcher.forget,
            poke=dispatcher.wake.set,
        )
        return partitions

    def handle(self, request: Request) -> Answer:
        if self.routes is None or self.store is None or not self.store.caught_up:
            return Answer.of(problem(503, "Service Unavailable", "the hub is starting"))
        return self.routes(request)

    def readiness(self) -> tuple[bool, str]:
        if self.store is None:
            return False, "starting"
        ok, detail = self.store.ready()
        self.metrics.ready.set(1 if ok else 0)
        return ok, detail

    def health(self) -> tuple[bool, str]:
        if self.store is None or self.dispatcher is None:
            return True, "starting"
        import time

        idle = time.monotonic() - self.store.heartbeat
        if idle >= 60:
            return False, f"hub topic follower last turned {idle:.0f} s ago"
        return self.dispatcher.health()

    def run(self) -> None:
        assert self.dispatcher is not None and self.store is not None
        try:
            self.dispatcher.run(self.stop_event)
        finally:
            self.store.stop()


def run_hub(settings: Settings) -> int:
    """The command: 0 once stopped; a failure raises a CommandError (2 configuration, 3 a
    fatal Kafka error, 4 Kafka unreachable at start-up)."""
    import signal

    port = settings.port_for("hub")
    hub = Hub(settings)
    try:
        server = HttpServer(
            port, hub.metrics.registry, hub.health, hub.readiness, routes=hub.handle
        )
    except OSError as exc:
        raise port_failure(exc, port, settings.origin("http_port")) from exc
    try:
        wait_for_kafka(settings)
        hub.prepare()  # HubSetupError is a usage error already
    except KafkaException as exc:
        server.stop()
        raise call_failed(settings, exc) from exc
    except BaseException:
        server.stop()
        raise

    def _stop(_signum: int, _frame: object) -> None:
        hub.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    log.info("tmf-events hub listening on port %s", server.port)
    print(f"tmf-events hub listening on port {server.port}", file=sys.stderr)
    try:
        hub.run()
    except KafkaException as exc:
        failure = call_failed(settings, exc)
        raise KafkaFatalError(
            failure.what, "the replica stops; its orchestrator restarts it", origin=failure.origin
        ) from exc
    finally:
        server.stop()
    return 0
