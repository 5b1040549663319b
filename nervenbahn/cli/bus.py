"""`nervenbahn broker` and `nervenbahn topics …`: the embedded broker and the bus's topics.

`broker` runs the embedded Kafka broker (Tansu, memory only) in the foreground until Ctrl-C;
`topics create` and `topics list` work on the brokers named by NERVENBAHN_KAFKA.
Exit 3 when no broker is configured or reachable, 1 when a topic cannot be created.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from bus.broker import EmbeddedBroker
from bus.errors import BusError
from bus.kafka_errors import BrokerStartError, BrokerUnavailableError, KafkaConfigError
from bus.kafka_settings import NO_BROKER_HINT, KafkaSettings
from bus.topics import ensure_topics, installation_topics, list_topics, topic_message_counts
from nervenbahn.config import load_kafka_settings

from .render import emit_json
from .session import session

__all__ = ["broker", "topics_app"]

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3
DEFAULT_LOG_DIR = Path(".nervenbahn/broker")

topics_app = typer.Typer(help="Topics of the bus on NERVENBAHN_KAFKA.", no_args_is_help=True)


def broker(
    ctx: typer.Context,
    port: Annotated[
        int | None,
        typer.Option(help="Loopback port to listen on (default: a free one).", min=1, max=65535),
    ] = None,
    log_dir: Annotated[
        Path, typer.Option("--log-dir", help="Where the broker writes its log.", file_okay=False)
    ] = DEFAULT_LOG_DIR,
) -> None:
    """Run the embedded Kafka broker (memory only: topics are gone when it stops) until Ctrl-C."""
    rt = session(ctx)
    with (
        _bus_errors(),
        EmbeddedBroker(log_dir, port=port) as running,
        _stop_requested() as stop,
    ):
        if rt.as_json:
            emit_json(rt.console, {"NERVENBAHN_KAFKA": running.bootstrap,
                                   "log": str(running.log_path), "pid": running.pid})
        else:
            typer.echo(f"NERVENBAHN_KAFKA={running.bootstrap}")
            typer.echo(f"embedded broker running (log {running.log_path}); "
                       "Ctrl-C stops it and forgets every topic", err=True)
        while not stop.wait(0.5):
            if not running.is_running():
                raise BrokerStartError(
                    f"the embedded broker stopped by itself; its log ends with:\n"
                    f"{running.log_tail()}"
                )
    if not rt.as_json:
        typer.echo("embedded broker stopped", err=True)


@topics_app.command("create")
def create(
    ctx: typer.Context,
    partitions: Annotated[
        int | None,
        typer.Option(help="Partitions of new topics (default: NERVENBAHN_KAFKA_PARTITIONS).",
                     min=1, max=10_000),
    ] = None,
    dead_letter_group: Annotated[
        list[str] | None,
        typer.Option("--dead-letter-group", help="Also create this consumer group's DLQ topic."),
    ] = None,
) -> None:
    """Create every topic of the installation that does not exist yet (case events, reporting,
    audit checkpoints, payments; existing ones are left as they are). An existing topic whose
    partition count differs from the one asked for is named with a warning: Kafka's count is
    not changed (docs/operations.md, "Partitions")."""
    rt = session(ctx)
    with _bus_errors():
        settings = _external_settings(partitions)
        specs = installation_topics(settings, dead_letter_group or ())
        created = ensure_topics(settings, specs)
        held = list_topics(settings)
    existing = [spec.name for spec in specs if spec.name not in created]
    differ = {spec.name: {"partitions": held[spec.name], "asked": spec.partitions}
              for spec in specs
              if spec.name in existing and held.get(spec.name, spec.partitions) != spec.partitions}
    if rt.as_json:
        emit_json(rt.console, {"created": created, "existing": existing,
                               "partitions_differ": differ})
        return
    for name in created:
        typer.echo(f"created {name}")
    for name in existing:
        typer.echo(f"exists  {name}")
    for name, counts in differ.items():
        typer.echo(f"warning: {name} has {counts['partitions']} partitions, not "
                   f"{counts['asked']}: the count of an existing topic is left as it is "
                   "(docs/operations.md, Partitions)", err=True)


@topics_app.command("list")
def list_(ctx: typer.Context) -> None:
    """The bus's topics with partitions and messages held (catalogue topics not yet created
    are listed as missing)."""
    rt = session(ctx)
    with _bus_errors():
        settings = _external_settings(None)
        partitions: dict[str, int | None] = dict(list_topics(settings))
        counts = topic_message_counts(settings, sorted(partitions))
    for spec in installation_topics(settings):
        partitions.setdefault(spec.name, None)
    rows = [
        {"name": name, "partitions": partitions[name], "messages": counts.get(name)}
        for name in sorted(partitions)
    ]
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    for row in rows:
        if row["partitions"] is None:
            rt.console.print(f"{row['name']}  missing (run `nervenbahn topics create`)")
        else:
            rt.console.print(
                f"{row['name']}  {row['partitions']} partitions  {row['messages']} messages"
            )


def _external_settings(partitions: int | None) -> KafkaSettings:
    settings = load_kafka_settings()
    if settings.embedded:
        raise KafkaConfigError(f"NERVENBAHN_KAFKA is not set: {NO_BROKER_HINT}")
    if partitions is None:
        return settings
    return KafkaSettings.model_validate({**settings.model_dump(), "partitions": partitions})


@contextmanager
def _bus_errors() -> Iterator[None]:
    """A bus error becomes one line on stderr and exit 3 (unavailable) or 1 (refused)."""
    try:
        yield
    except BusError as exc:
        typer.echo(f"error: {exc}", err=True)
        unavailable = (BrokerUnavailableError, BrokerStartError, KafkaConfigError)
        code = EXIT_UNAVAILABLE if isinstance(exc, unavailable) else EXIT_REFUSED
        raise typer.Exit(code) from exc


@contextmanager
def _stop_requested() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM while the block runs."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, request_stop)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
