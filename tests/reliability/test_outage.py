"""Broker outage in the middle of a load: every connection between the processor and the
broker is cut, new ones are refused, and after a while the broker is reachable again. The
processor resumes by itself; nothing is lost, nothing diverges (docs/runtime.md#exactly-once).

"By itself" is what a deployment sees: the processor rides out the outage in its process,
or it exits 3 by design and the test restarts it once, as Kubernetes or compose would:
when the broker fenced it meanwhile (a static member whose session expired during the outage can be
fenced on rejoining, docs/runtime.md#exactly-once), or when its watchdog found the loop stuck in a
client call for 90 s (processor/watchdog.py). Any other exit, a second one, or a processor that
neither resumes nor exits fails the test. The report says which way it resumed.

- `test_proxy_outage_tansu`: the issue's setup. The processor reaches the broker through
  `tests/reliability/proxy.py`, which resets every connection and stops listening. Kafka
  clients connect to the address the broker advertises in its metadata, so the broker must
  advertise the proxy. noida-db cannot: its `--host`/`--kafka-port` are both where it listens
  and what it advertises, and it has no advertised-listener setting (checked with 0.2.3:
  `--host 0.0.0.0` advertises `0.0.0.0`, `--host localhost` binds and advertises
  `127.0.0.1`), so `EmbeddedBroker` cannot be put behind a proxy. This variant runs on Tansu
  (`--advertised-listener-url`, started by `AdvertisedTansu`); its read_committed shows
  aborted records, so copies are counted and reported, not failed.
- `test_frozen_broker_noida`: the broker process is frozen (SIGSTOP) for the outage and
  thawed (SIGCONT): requests time out, sessions expire, nothing answers. noida-db has real
  transactions, so the output must be exact: 0 copies too. (Stopping noida-db and starting it again
  is no outage test: it forgets idempotent producers' sequence numbers when it restarts, so every
  idempotent or transactional producer, the processor's included, gets a fatal
  OUT_OF_ORDER_SEQUENCE_NUMBER, and the processor rightly exits 3, docs/runtime.md#exactly-once.)

Short profile: 10 s outages; long: 30 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from processor.config import Settings
from processor.dev.broker import BrokerNotInstalledError, EmbeddedBroker
from tests.http_client import call
from tests.kafka_helpers import create_topics
from tests.loads import PacedProducer, synthetic
from tests.processes import ProcessorProcess, processor_fields
from tests.reliability import harness
from tests.reliability.proxy import TcpProxy

UniqueName = Callable[[str], str]

PARTITIONS = 6
SEED = 640
RATE = 200
# After the outage new input must be committed within this (or the replica exit 3, which
# its watchdog makes it do after 90 s stuck).
RESUME_TIMEOUT_S = harness.pick(150, 240)
FATAL_EXIT = 3  # the processor's exit code when fenced or stuck (processor/cli.py)
T = TypeVar("T")


class ProcessorBugError(AssertionError):
    """The processor did not ride out the outage: it exited badly, or it got stuck."""


def _healthz(proc: ProcessorProcess) -> str:
    try:
        reply = call(proc.port, "/healthz", timeout=5)
    except OSError as exc:
        return repr(exc)
    return f"{reply.status} {reply.body[:200]!r}"


def _stack(proc: ProcessorProcess) -> str:
    """Where a stuck processor is stuck: `py-spy dump --native` when py-spy is installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).is_file():
        return "(py-spy not installed)"
    try:
        done = subprocess.run(
            [spy, "dump", "--native", "--pid", str(proc.pid)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy failed: {exc!r})"
    main = done.stdout.split("\nThread ", 2)
    return "\n".join(main[:2])[:3000] or done.stderr[:500]


def _outage_run(
    bootstrap: str,
    name: str,
    tmp_path: Path,
    *,
    cut: Callable[[], str],
    resume: Callable[[], None],
    title: str,
    allow_copies: bool,
    load_config: dict[str, object] | None = None,
) -> None:
    outage_s = harness.pick(10.0, 30.0)
    # Enough records that the load runs before, during and after the outage.
    records = int(RATE * (outage_s + harness.pick(15, 45)))
    fields = processor_fields(bootstrap, name, instance_id="outage-0")
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: PARTITIONS})
    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    load = PacedProducer(
        bootstrap, settings.input_topic, synthetic(SEED, records, 1_000), RATE, config=load_config
    )
    restarts: list[str] = []

    def supervised(step: Callable[[], T]) -> T:
        """Run `step`; a replica that exited 3 (fenced, or stuck) is restarted once, as an
        orchestrator would; any other exit, or a second one, is a bug."""
        while True:
            try:
                return step()
            except harness.ReplicaDiedError as exc:
                code = proc.returncode()
                if code != FATAL_EXIT or restarts:
                    raise ProcessorBugError(
                        f"the processor exited with {code} after the broker outage instead of"
                        f" resuming (restarts so far: {restarts}):\n{exc}"
                    ) from exc
                fatal = [line for line in proc.log().splitlines() if "fatal" in line.lower()]
                restarts.append(f"exit {code}: {(fatal or ['?'])[-1][-160:]}")
                proc.start()
                proc.wait_ready(180)

    with harness.closing(proc):
        proc.start()
        proc.wait_ready(120)
        load.start()
        try:
            before = harness.wait_progress(
                bootstrap, name, settings.input_topic, PARTITIONS, records // 4, 300, [proc]
            )
            what = cut()
            cut_at = time.monotonic()
            # The outage itself: a fault that lasts `outage_s`, not a synchronisation.
            time.sleep(outage_s)
            resume()
            outage = time.monotonic() - cut_at

            def resumed() -> int:
                try:
                    return harness.wait_progress(
                        bootstrap,
                        name,
                        settings.input_topic,
                        PARTITIONS,
                        before + RATE,
                        RESUME_TIMEOUT_S,
                        [proc],
                    )
                except harness.ReplicaDiedError:
                    raise
                except AssertionError as exc:
                    raise ProcessorBugError(
                        f"the processor is alive but committed nothing new within"
                        f" {RESUME_TIMEOUT_S} s after the outage ({exc}); /healthz:"
                        f" {_healthz(proc)}; its main thread:\n{_stack(proc)}\nlog ends:\n"
                        + "\n".join(proc.log().splitlines()[-40:])
                    ) from exc

            supervised(resumed)
            sent = load.wait(600)
            inputs = supervised(
                lambda: harness.drain(bootstrap, settings, sent, timeout=600, alive=[proc])
            )
        finally:
            load.stop()
        assert proc.starts == 1 + len(restarts)
        assert proc.ready(), proc.readyz()
        assert proc.terminate(120) == 0, proc.log()[-4000:]
    title = f"{title}, {outage:.0f} s"
    notes = [
        f"cut at committed {before}: {what}",
        "resumed in the same process"
        if not restarts
        else f"exited 3 after the outage, restarted once as an orchestrator would: {restarts}",
    ]
    report, _, _ = harness.history(bootstrap, settings, inputs, title, notes=notes)
    report.assert_exact(allow_copies=allow_copies)
    harness.assert_no_traceback(proc)


def test_proxy_outage_tansu(embedded_only: None, unique_name: UniqueName, tmp_path: Path) -> None:
    tansu = harness.AdvertisedTansu(tmp_path / "tansu.log")
    proxy = TcpProxy(("127.0.0.1", tansu.port)).start()
    try:
        tansu.start(proxy.address)

        def cut() -> str:
            connections = proxy.connections
            proxy.cut()
            return f"{connections} connections reset, port closed"

        _outage_run(
            proxy.address,
            unique_name("rel-outage"),
            tmp_path,
            cut=cut,
            resume=proxy.resume,
            title="proxy outage on tansu",
            allow_copies=True,
        )
    finally:
        proxy.close()
        tansu.stop()


def test_frozen_broker_noida(embedded_only: None, unique_name: UniqueName, tmp_path: Path) -> None:
    broker = EmbeddedBroker("noida")
    try:
        broker.start()
    except BrokerNotInstalledError as exc:
        pytest.skip(str(exc))
    try:
        pid = broker.pid
        assert pid is not None

        def cut() -> str:
            os.kill(pid, signal.SIGSTOP)
            return "broker frozen (SIGSTOP)"

        def resume() -> None:
            os.kill(pid, signal.SIGCONT)

        try:
            _outage_run(
                broker.bootstrap_servers,
                unique_name("rel-freeze"),
                tmp_path,
                cut=cut,
                resume=resume,
                title="noida broker frozen",
                allow_copies=False,
            )
        finally:
            os.kill(pid, signal.SIGCONT)  # never leave it stopped, whatever happened
    finally:
        broker.stop()
