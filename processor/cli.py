"""The `tmf-events` command line (docs/design.md#interfaces)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from processor.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {"bootstrap_servers": getattr(args, "bootstrap_servers", None)}
    overrides.update(extra)
    return load_settings(args.config, **overrides)


def _kafka_error(exc: Exception) -> str:
    err = exc.args[0] if exc.args else exc
    return str(err.str()) if hasattr(err, "str") else str(err)


def cmd_replay(args: argparse.Namespace) -> int:
    from processor.replay import ReplayInputError, run_replay

    settings = _settings(args)
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        if args.file == "-":
            run_replay(sys.stdin.buffer, out, settings, with_state=args.with_state)
        else:
            with open(args.file, "rb") as source:
                run_replay(source, out, settings, with_state=args.with_state)
    except ReplayInputError as exc:
        print(f"tmf-events replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tmf-events replay: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from confluent_kafka import KafkaException

    from processor.http import HttpServer
    from processor.logs import setup_logging
    from processor.loop import FatalError, Processor
    from processor.topics import TopicError
    from processor.watchdog import Watchdog

    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    processor = Processor(settings)

    def _stop(signum: int, _frame: object) -> None:
        processor.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = None
    if settings.port_for("run"):
        server = HttpServer(
            settings.port_for("run"),
            processor.metrics.registry,
            processor.health,
            processor.readiness,
        ).start()
    watchdog = Watchdog(processor.health).start()
    try:
        return processor.run()
    except TopicError as exc:
        print(f"tmf-events run: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(
            f"tmf-events run: Kafka at {settings.bootstrap_servers}: {_kafka_error(exc)}",
            file=sys.stderr,
        )
        return 1
    except FatalError as exc:
        print(f"tmf-events run: fatal: {exc}", file=sys.stderr)
        return 3
    finally:
        watchdog.stop()
        if server is not None:
            server.stop()


def cmd_topics(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from processor.logs import setup_logging
    from processor.topics import TopicError, ensure_topics

    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    try:
        counts = ensure_topics(
            settings, partitions=args.partitions, replication_factor=args.replication_factor
        )
    except TopicError as exc:
        print(f"tmf-events topics: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(
            f"tmf-events topics: Kafka at {settings.bootstrap_servers}: {_kafka_error(exc)}",
            file=sys.stderr,
        )
        return 1
    for name, n in sorted(counts.items()):
        print(f"{name}\t{n} partitions")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from processor.dev.demo import run_demo
    from processor.logs import setup_logging

    setup_logging("text", "ERROR")
    return run_demo(args.bootstrap_servers)


def cmd_api(args: argparse.Namespace) -> int:
    import signal
    import threading

    from processor.api import Api, ChangelogView
    from processor.http import HttpServer
    from processor.logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    view = ChangelogView(settings).start()
    server = HttpServer(
        settings.port_for("api"), view.metrics.registry, view.health, view.ready, Api(view)
    ).start()
    print(f"tmf-events api listening on port {server.port}", file=sys.stderr)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()
    view.stop()
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    from processor.hub.service import run_hub
    from processor.logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    return run_hub(settings)


def cmd_latest(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    settings = _settings(args)
    base = (args.url or f"http://localhost:{settings.port_for('api')}").rstrip("/")
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
        print(f"tmf-events latest: {exc.code}: {detail}", file=sys.stderr)
        return 1 if exc.code == 404 else 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"tmf-events latest: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(json.loads(body), indent=2))
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from processor.dev.broker import run_foreground

    return run_foreground(args.kind, args.port, Path(args.data_dir) if args.data_dir else None)


def cmd_load(args: argparse.Namespace) -> int:
    from processor import clients
    from processor.dev.load import produce_load
    from processor.dev.synthetic import Generator, Mix

    settings = _settings(args)
    mix = Mix(**_parse_mix(args.mix)) if args.mix else Mix()
    # Record timestamps near now: older ones would fall out of the topic's retention at once.
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
    gen = Generator(seed=args.seed, keys=args.keys, mix=mix, start_ms=start_ms, step_ms=1)
    report = produce_load(
        clients.plain_producer(settings, "load"),
        args.topic or settings.input_topic,
        gen,
        args.count,
        args.rate,
        progress=not args.quiet,
    )
    print(
        f"sent {report.sent} records in {report.seconds:.1f} s"
        f" ({report.sent / max(report.seconds, 1e-9):,.0f} records/s), {report.failed} failed"
    )
    return 0 if report.failed == 0 else 1


def _parse_mix(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight)
        except ValueError:
            raise ConfigError(f"--mix: {part!r} is not NAME=WEIGHT") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmf-events",
        description="Inventory change records in, TMF638/TMF639 events as CloudEvents out.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="YAML settings file")
    kafka = argparse.ArgumentParser(add_help=False)
    kafka.add_argument("--bootstrap-servers", metavar="HOSTS", help="Kafka bootstrap servers")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "replay",
        parents=[common],
        help="print the messages the processor would produce for a file of change records",
    )
    p.add_argument("file", metavar="FILE", help="JSON Lines of change records, - for stdin")
    p.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    p.add_argument("--with-state", action="store_true", help="include the changelog messages")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("run", parents=[common, kafka], help="run the stream processor")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "demo",
        parents=[kafka],
        help="run a sample change history through the embedded broker and print the events",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("topics", parents=[common, kafka], help="create all topics and exit")
    p.add_argument("--partitions", type=int, default=6, help="for a new input topic")
    p.add_argument(
        "--replication-factor", type=int, default=-1, help="for new topics (-1: broker default)"
    )
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser(
        "api", parents=[common, kafka], help="serve the latest events of instances over HTTP"
    )
    p.set_defaults(func=cmd_api)

    p = sub.add_parser(
        "hub",
        parents=[common, kafka],
        help="TMF notification hub: REST listeners register with POST /hub, get events POSTed",
    )
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("latest", parents=[common], help="print an instance's latest event")
    p.add_argument("id", help="instance id")
    p.add_argument("--url", help="API base URL (default http://localhost:<the api's http_port>)")
    p.add_argument("-n", type=int, default=0, help="list the last N events instead")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_latest)

    p = sub.add_parser("broker", help="run the embedded development broker in the foreground")
    p.add_argument("--kind", choices=["noida", "tansu"], default="noida")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--data-dir", help="noida-db data folder (default: a temporary one)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("load", parents=[common, kafka], help="produce synthetic change records")
    p.add_argument("--count", type=int, default=10_000, help="records to send")
    p.add_argument("--rate", type=float, default=None, help="records per second (default: max)")
    p.add_argument("--keys", type=int, default=1_000, help="distinct instance ids")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same records)")
    p.add_argument(
        "--mix",
        help="weights, e.g. create=1,update=4,state=1,noop=2,private=1,delete=1",
    )
    p.add_argument("--topic", help="target topic (default: input_topic)")
    p.add_argument(
        "--start-ms", type=int, default=None, help="first observedAt in epoch ms (default: now)"
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
    except ConfigError as exc:
        print(f"tmf-events: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
