"""The `tmf-events` command line (docs/design.md#interfaces).

Every command fails the same way (processor/errors.py): one line on stderr naming the
setting behind the failure and where its value came from, and an exit code from the
README's table: 0 success, 1 the command's own failure, 2 configuration or usage, 3 a
fatal Kafka error, 4 Kafka unreachable within `connect_timeout_ms`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from confluent_kafka import KafkaException

from processor.config import Settings, load_settings
from processor.errors import (
    FAILED,
    CommandError,
    KafkaFatalError,
    UsageError,
    port_failure,
    report,
    unreachable,
)
from processor.metrics import package_version
from processor.setting_errors import did_you_mean


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    from processor.logs import setup_logging

    overrides: dict[str, Any] = {"bootstrap_servers": getattr(args, "bootstrap_servers", None)}
    overrides.update(extra)
    settings = load_settings(args.config, **overrides)
    # Every command logs the same way, its Kafka clients through the repeat throttle.
    setup_logging(settings.log_format, settings.log_level)
    return settings


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C): the command ends its work and exits 0."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _serve(settings: Settings, command: str, *handlers: Any) -> Any:
    """The HTTP server of `command` on its port, bound now: a busy port is a usage error."""
    from processor.http import HttpServer

    port = settings.port_for(command)
    try:
        return HttpServer(port, *handlers)
    except OSError as exc:
        raise port_failure(exc, port, settings.origin("http_port")) from exc


# -- commands ------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from processor.replay import ReplayInputError, Summary, run_replay

    settings = _settings(args)
    summary = Summary()
    with contextlib.ExitStack() as files:
        try:
            source = (
                sys.stdin.buffer if args.file == "-" else files.enter_context(open(args.file, "rb"))
            )
        except OSError as exc:
            raise UsageError(
                f"cannot read {args.file}: {exc.strerror}", "check the path", origin="FILE argument"
            ) from exc
        try:
            out = (
                sys.stdout.buffer
                if args.output == "-"
                else files.enter_context(open(args.output, "wb"))
            )
        except OSError as exc:
            raise UsageError(
                f"cannot write {args.output}: {exc.strerror}",
                "check the path",
                origin="flag --output",
            ) from exc
        try:
            run_replay(source, out, settings, with_state=args.with_state, summary=summary)
        except ReplayInputError as exc:
            raise UsageError(
                str(exc), "fix the line; README.md (Replay) says what a line holds"
            ) from exc
    if not args.quiet:
        print(summary.text(), file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from processor.connect import call_failed, wait_for_kafka
    from processor.loop import FatalError, Processor
    from processor.metrics import Metrics
    from processor.progress import ProgressLog
    from processor.state.snapshot import check_state_dir
    from processor.topics import TopicError
    from processor.watchdog import Watchdog

    settings = _settings(args)
    if settings.state_dir is not None:
        try:
            check_state_dir(settings.state_dir)
        except FatalError as exc:
            raise UsageError(
                str(exc),
                "point state_dir at a writable directory",
                origin=settings.origin("state_dir"),
            ) from exc
    metrics = Metrics.of(settings)
    progress = ProgressLog(metrics, settings.progress_interval_s)
    processor = Processor(settings, metrics, _stop_on_signals(), on_commit=progress.observe)
    server = None
    if settings.port_for("run"):
        server = _serve(
            settings, "run", processor.metrics.registry, processor.health, processor.readiness
        )
    try:
        wait_for_kafka(settings)
        if processor.stop_event.is_set():
            return 0  # stopped while waiting for Kafka: nothing began
        if server is not None:
            server.start()
        watchdog = Watchdog(processor.health).start()
        progress.start()
        try:
            return processor.run()
        finally:
            progress.stop()
            watchdog.stop()
    except TopicError as exc:
        raise UsageError(str(exc)) from exc
    except KafkaException as exc:
        raise call_failed(settings, exc) from exc
    except FatalError as exc:
        raise KafkaFatalError(
            f"fatal: {exc}", "the replica stops; its orchestrator restarts it"
        ) from exc
    finally:
        if server is not None:
            server.stop()


def cmd_topics(args: argparse.Namespace) -> int:
    from processor.connect import call_failed, wait_for_kafka
    from processor.topics import TopicError, ensure_topics

    settings = _settings(args)
    wait_for_kafka(settings)
    try:
        counts = ensure_topics(
            settings, partitions=args.partitions, replication_factor=args.replication_factor
        )
    except TopicError as exc:
        raise UsageError(str(exc)) from exc
    except KafkaException as exc:
        raise call_failed(settings, exc) from exc
    for name, n in sorted(counts.items()):
        print(f"{name}\t{n} partitions")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from processor.dev.demo import run_demo
    from processor.logs import setup_logging

    setup_logging("text", "ERROR")
    try:
        return run_demo(args.bootstrap_servers)
    except KafkaException as exc:
        raise KafkaFatalError(f"Kafka failed: {exc}") from exc


def cmd_api(args: argparse.Namespace) -> int:
    from processor.api import Api, ChangelogView
    from processor.connect import wait_for_kafka

    settings = _settings(args)
    view = ChangelogView(settings)
    server = _serve(settings, "api", view.metrics.registry, view.health, view.ready, Api(view))
    done = _stop_on_signals()
    try:
        wait_for_kafka(settings)
        view.start()
        server.start()
        print(f"tmf-events api listening on port {server.port}", file=sys.stderr, flush=True)
        # The follower gives up only after its retries: then exit, to be restarted.
        while not done.wait(0.5):
            if view.dead.is_set():
                assert view.failure is not None
                raise view.failure
        return 0
    finally:
        server.stop()
        view.stop()


def cmd_tail(args: argparse.Namespace) -> int:
    from processor.connect import wait_for_kafka
    from processor.tail import Filter, follow

    settings = _settings(args)
    stop = _stop_on_signals()
    wait_for_kafka(settings)
    try:
        follow(
            settings,
            sys.stdout,
            stop,
            from_beginning=args.from_beginning,
            as_json=args.json,
            only=Filter(frozenset(args.subject or ()), frozenset(args.type or ())),
            count=args.count,
        )
    except BrokenPipeError:  # `tmf-events tail | head`: the reader has what it wanted
        sys.stdout = None  # no flush of a closed pipe at exit
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    from processor.hub.service import run_hub

    return run_hub(_settings(args))


def cmd_latest(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    settings = _settings(args)
    base = (args.url or f"http://localhost:{settings.port_for('api')}").rstrip("/")
    origin = "url from flag --url" if args.url else settings.origin("http_port")
    ident = urllib.parse.quote(args.id, safe="")
    path = (
        f"/instances/{ident}/events?limit={args.n}"
        if args.n
        else f"/instances/{ident}/events/latest"
    )
    try:
        with urllib.request.urlopen(base + path, timeout=args.timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):  # a problem body's detail
            detail = json.loads(detail).get("detail", detail)
        if exc.code == 404:
            raise CommandError(f"{exc.code}: {detail}", code=FAILED) from exc
        if exc.code == 400:
            raise UsageError(f"{exc.code}: {detail}", "fix -n") from exc
        raise CommandError(f"{exc.code}: {detail}", "retry later", origin=origin) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(
            f"cannot reach the query API at {base}: {reason}",
            "start `tmf-events api`, or pass --url",
            origin=origin,
        ) from exc
    print(json.dumps(json.loads(body), indent=2))
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from processor.dev.broker import (
        BrokerError,
        BrokerNotInstalledError,
        PortInUseError,
        run_foreground,
    )

    try:
        return run_foreground(args.kind, args.port, Path(args.data_dir) if args.data_dir else None)
    except PortInUseError as exc:
        raise UsageError(
            str(exc), "stop what holds it, or pass --port", origin="port from flag --port"
        ) from exc
    except BrokerNotInstalledError as exc:
        raise UsageError(str(exc)) from exc
    except BrokerError as exc:
        text, _, tail = str(exc).partition("; log tail:\n")
        if tail.strip():
            print(tail, file=sys.stderr)
        raise CommandError(text, "the broker's log tail is above" if tail.strip() else "") from exc


def cmd_load(args: argparse.Namespace) -> int:
    from processor import clients
    from processor.connect import wait_for_kafka
    from processor.dev.load import produce_load
    from processor.dev.synthetic import Generator

    settings = _settings(args)
    mix = _parse_mix(args.mix)
    wait_for_kafka(settings)
    # Record timestamps near now: older ones would fall out of the topic's retention at once.
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
    gen = Generator(seed=args.seed, keys=args.keys, mix=mix, start_ms=start_ms, step_ms=1)
    report_ = produce_load(
        clients.plain_producer(settings, "load"),
        args.topic or settings.input_topic,
        gen,
        args.count,
        args.rate,
        progress=not args.quiet,
    )
    print(
        f"sent {report_.sent} records in {report_.seconds:.1f} s"
        f" ({report_.sent / max(report_.seconds, 1e-9):,.0f} records/s), {report_.failed} failed"
    )
    if report_.unreachable:
        raise unreachable(
            settings.bootstrap_servers,
            settings.origin("bootstrap_servers"),
            settings.connect_timeout_ms / 1000,
            f"deliveries failed: {report_.first_error}",
        )
    if report_.failed:
        raise CommandError(
            f"{report_.failed} of {args.count} records were not delivered: {report_.first_error}",
            "see the broker's answer; the records that failed were not written",
        )
    return 0


def _parse_mix(text: str | None) -> Any:
    from processor.dev.synthetic import KINDS, Mix

    if not text:
        return Mix()
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            guess = did_you_mean(name, KINDS)
            raise UsageError(
                f"--mix: unknown kind {name!r}" if sep else f"--mix: {part!r} is not KIND=WEIGHT",
                (f"{guess} " if guess else "") + f"Kinds: {', '.join(KINDS)}",
                origin="mix from flag --mix",
            )
        try:
            weights[name] = float(weight)
        except ValueError:
            weights[name] = -1.0
        if not weights[name] >= 0:
            raise UsageError(
                f"--mix: weight {weight!r} of {name} is not a number ≥ 0",
                "e.g. --mix create=1,update=4",
                origin="mix from flag --mix",
            )
    try:
        return Mix(**weights)
    except ValueError as exc:
        raise UsageError(f"--mix: {exc}", origin="mix from flag --mix") from exc


# -- the parser ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tmf-events",
        description="Inventory change records in, TMF638/TMF639 events as CloudEvents out.",
        epilog="Exit codes: 0 success, 1 the command's own failure, 2 configuration or usage, "
        "3 fatal Kafka error, 4 Kafka unreachable within connect_timeout_ms.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"tmf-events {package_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind a failure")
    # Each subcommand takes --debug too (after its name); SUPPRESS keeps the global value.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common = argparse.ArgumentParser(add_help=False, parents=[debug])
    common.add_argument("--config", metavar="FILE", help="YAML settings file")
    kafka = argparse.ArgumentParser(add_help=False)
    kafka.add_argument(
        "--bootstrap-servers",
        metavar="HOSTS",
        help="Kafka bootstrap servers (setting bootstrap_servers, default localhost:9092)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, parents: list[Any], text: str) -> Any:
        return sub.add_parser(
            name, parents=parents, help=text, description=text, formatter_class=_Help
        )

    p = command(
        "replay",
        [common],
        "print the messages the processor would produce for a file of change records",
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="JSON Lines (change records, kcat -C -J envelopes or raw values), - for stdin",
    )
    p.add_argument("-o", "--output", default="-", help="output file, - for stdout")
    p.add_argument("--with-state", action="store_true", help="include the changelog messages")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=cmd_replay)

    p = command("run", [common, kafka], "run the stream processor")
    p.set_defaults(func=cmd_run)

    p = command(
        "demo",
        [debug, kafka],
        "run a sample change history through the embedded broker and print the events",
    )
    p.set_defaults(func=cmd_demo)

    p = command("topics", [common, kafka], "create all topics and exit")
    p.add_argument("--partitions", type=_count(1), default=6, help="for a new input topic")
    p.add_argument(
        "--replication-factor",
        type=_count(-1),
        default=-1,
        help="for new topics (-1: the broker's default)",
    )
    p.set_defaults(func=cmd_topics)

    p = command("api", [common, kafka], "serve the latest events of instances over HTTP")
    p.set_defaults(func=cmd_api)

    p = command(
        "tail",
        [common, kafka],
        "follow the output topics (read_committed) and print each event as it is committed",
    )
    p.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest event, not the end"
    )
    p.add_argument(
        "--json", action="store_true", help="one structured-mode CloudEvent (JSON) per line"
    )
    p.add_argument(
        "--subject", action="append", metavar="ID", help="only this instance (repeatable)"
    )
    p.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="only this event type, e.g. ServiceStateChangeEvent or the full ce_type (repeatable)",
    )
    p.add_argument(
        "--count", type=_count(0), default=0, help="exit after this many events, 0: never"
    )
    p.set_defaults(func=cmd_tail)

    p = command(
        "hub",
        [common, kafka],
        "TMF notification hub: REST listeners register with POST /hub, get events POSTed",
    )
    p.set_defaults(func=cmd_hub)

    p = command("latest", [common], "print an instance's latest event")
    p.add_argument("id", help="instance id")
    p.add_argument("--url", help="API base URL (default http://localhost:<the api's http_port>)")
    p.add_argument(
        "-n", type=_count(0), default=0, help="list the last N events instead, 0: only the latest"
    )
    p.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for the API")
    p.set_defaults(func=cmd_latest)

    p = command("broker", [debug], "run the embedded development broker in the foreground")
    p.add_argument("--kind", choices=["noida", "tansu"], default="noida", help="which broker")
    p.add_argument("--port", type=_count(0), default=9092, help="port on 127.0.0.1")
    p.add_argument("--data-dir", help="noida-db data folder (default: a temporary one)")
    p.set_defaults(func=cmd_broker)

    p = command("load", [common, kafka], "produce synthetic change records")
    p.add_argument("--count", type=_count(1), default=10_000, help="records to send")
    p.add_argument(
        "--rate",
        type=_positive,
        default=None,
        help="records per second (default: as fast as possible)",
    )
    p.add_argument("--keys", type=_count(1), default=1_000, help="distinct instance ids")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same records)")
    p.add_argument(
        "--mix",
        help="weights of the record kinds, e.g. create=1,update=4,state=1,noop=2,private=1,delete=1"
        " (kinds not named keep their default weight)",
    )
    p.add_argument("--topic", help="target topic (default: input_topic)")
    p.add_argument(
        "--start-ms",
        type=_count(0),
        default=None,
        help="first observedAt in epoch ms (default: now)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return report(exc, args.command, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
