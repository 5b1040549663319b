"""`nervenbahn connectors list|check|describe|run|status|errors|replay|reset|catalogue` and
`nervenbahn connector new` (a package).

See `connectors.host` for the configuration file and what a run does, and
docs/connectors.md for the tutorial. `list`, `check` and `describe` read only the configuration
file and the connectors' code: they need neither the store nor a broker, so a deployment can
check its file before anything runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.table import Table

from bus.topics import installation_topics
from connectors._recovery import reset_target
from connectors.host import (
    ConnectorConfig,
    ConnectorConfigError,
    ConnectorHost,
    ResetReport,
    read_config,
    resets_idempotently,
)
from connectors.scaffold import ScaffoldError, config_entry, write_connector
from domain.errors import InvalidCommandError, NervenbahnError
from nervenbahn.connector_catalogue import Format, render, sink_catalogue
from nervenbahn.container import connectors_file

from .exit_codes import EXIT_DEGRADED, EXIT_FAILED
from .render import emit_json, shown
from .session import Session, session

__all__ = ["app", "connector_app"]

log = structlog.get_logger("nervenbahn.cli.connectors")

app = typer.Typer(help="Run connectors and show their status.", no_args_is_help=True)
connector_app = typer.Typer(help="Write a new connector.", no_args_is_help=True)

EXIT_STOPPED = 1
EXIT_MISCONFIGURED = 3
"""`check`: a connector's configuration is wrong (the exit code of a ConnectorConfigError)."""

_RUN_EXIT = {"ok": 0, "degraded": EXIT_DEGRADED, "failed": EXIT_FAILED}


@contextmanager
def _connectors(ctx: typer.Context) -> Iterator[ConnectorHost]:
    rt = session(ctx)
    connectors = rt.container.connector_host()
    try:
        yield connectors
    finally:
        connectors.close()


def _config(rt: Session) -> tuple[Path, ConnectorConfig]:
    """The configuration file and what it configures (no store, no broker)."""
    path = connectors_file(rt.settings)
    return path, read_config(path)


@app.command("list")
def list_connectors(ctx: typer.Context) -> None:
    """The configured connectors: name, kind, class, and the problem of each that cannot be
    built (a class that does not import, options it refuses, a wrong table)."""
    rt = session(ctx)
    path, config = _config(rt)
    problems = config.check()
    if rt.as_json:
        emit_json(rt.console, {"file": str(path), "connectors": [
            _listed(config, name, problems[name]) for name in config.names()
        ]})
        return
    if not problems:
        rt.console.print(f"no connectors configured in {path}")
        return
    table = Table(title=f"Connectors in {path}", title_justify="left")
    for column in ("name", "kind", "class", "description", "problem"):
        table.add_column(column)
    for name in config.names():
        s = config.specs.get(name)
        problem = problems[name]
        table.add_row(name, s.kind if s else "?", s.class_path if s else "?",
                      s.description if s else "", _lines(problem))
    rt.console.print(table)


def _lines(error: Exception | None) -> str:
    """An error of several lines (one per refused option) as the table shows it."""
    return "\n".join(shown(line) for line in str(error or "").splitlines())


def _listed(config: ConnectorConfig, name: str,
            problem: ConnectorConfigError | None) -> dict[str, object]:
    s = config.specs.get(name)
    return {"name": name, "kind": s.kind if s else None, "class": s.class_path if s else None,
            "options": s.options if s else None, "problem": str(problem) if problem else None}


@app.command("check")
def check(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
) -> None:
    """Import, validate and build each connector (or NAME) without running it; one line per
    connector, exit 3 if any is wrong. Needs neither the store nor a broker."""
    rt = session(ctx)
    path, config = _config(rt)
    if name is not None and name not in config.names():
        config.spec(name)  # not configured: the error naming the configured ones
    results = config.check(name)
    if rt.as_json:
        emit_json(rt.console, {"file": str(path), "connectors": [
            {"name": n, "ok": error is None, "error": str(error) if error else None}
            for n, error in results.items()
        ]})
    elif not results:
        rt.console.print(f"no connectors configured in {path}")
    else:
        _print_checked(rt, config, results)
    if any(error is not None for error in results.values()):
        raise typer.Exit(EXIT_MISCONFIGURED)


def _print_checked(rt: Session, config: ConnectorConfig,
                   results: dict[str, ConnectorConfigError | None]) -> None:
    """`ok     NAME (kind, class)` or `error  NAME: reason` (further reasons indented)."""
    for name, error in results.items():
        if error is None:
            spec = config.specs[name]
            rt.console.print(f"ok     {name} ({spec.kind}, {spec.class_path})",
                             markup=False, highlight=False, soft_wrap=True)
            continue
        first, *more = str(error).splitlines()  # one line each, whatever the terminal's width
        rt.console.print(f"error  {name}: {first}", markup=False, highlight=False,
                         soft_wrap=True)
        for line in more:
            rt.console.print(f"       {line}", markup=False, highlight=False, soft_wrap=True)


@app.command("describe")
def describe(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connector's name in the configuration file.")],
) -> None:
    """What a connector is (kind, class, its topic or its input) and the options it takes:
    name, type, default, required, description. Also when its options are wrong."""
    rt = session(ctx)
    _, config = _config(rt)
    about = config.spec(name).describe()
    topic = _topic(rt, about.dataset) if about.dataset else None
    if rt.as_json:
        emit_json(rt.console, {**vars(about), "topic": topic})
        return
    rt.console.print(f"connector {about.name}: {about.kind}, class {about.class_path}",
                     markup=False)
    for label, value in (("description", about.description), ("class", about.summary),
                         ("dataset", about.dataset), ("topic", topic)):
        if value:
            rt.console.print(f"  {label}: {value}", markup=False, highlight=False)
    if not about.options:
        rt.console.print("  options: none", markup=False)
        return
    table = Table(title="Options", title_justify="left")
    for column in ("option", "type", "required", "default", "description"):
        table.add_column(column)
    for option in about.options:
        table.add_row(option.name, shown(option.type), "yes" if option.required else "no",
                      "" if option.default is None else shown(repr(option.default)),
                      shown(option.description))
    rt.console.print(table)


def _topic(rt: Session, dataset: str) -> str | None:
    """The topic of `dataset` under the configured prefix (no broker asked); None if the
    bus has no such dataset (`check` does not catch that: it needs no bus)."""
    names = {spec.dataset: spec.name for spec in installation_topics(rt.settings.kafka)}
    return names.get(dataset)


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The connector's name in the configuration file.")
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="Stop when nothing is left (a source at the end of its input, a sink caught "
            "up with its topic) instead of running until Ctrl-C.",
        ),
    ] = False,
    run_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Run every configured connector until idle, one after the other (with "
            "--until-idle); one that is misconfigured or fails is reported, the others run.",
        ),
    ] = False,
) -> None:
    """Run a connector until stopped (Ctrl-C / SIGTERM) or, with --until-idle, done."""
    rt = session(ctx)
    _check_run_arguments(name, until_idle=until_idle, run_all=run_all)
    if run_all:
        _run_all(ctx, rt)
        return
    assert name is not None  # checked above
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        with _connectors(ctx) as connectors:
            report = connectors.run(name, stop, until_idle=until_idle)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if rt.as_json:
        emit_json(rt.console, {**vars(report), "ok": report.ok, "outcome": report.outcome})
    else:
        rt.console.print(f"connector {name} ({report.kind}): {report.outcome}: "
                         f"{report.summary()}", soft_wrap=True)
        for written in report.delivered:
            rt.console.print(f"  delivered {written}", soft_wrap=True)
        if report.outcome == "degraded":  # a command to copy: never wrapped
            rt.console.print(f"  {report.rejected} events dead-lettered: fix the sink, then "
                             f"`nervenbahn connectors replay {name}`", soft_wrap=True)
    code = _RUN_EXIT.get(report.outcome, EXIT_STOPPED)
    if code:
        raise typer.Exit(code)


def _check_run_arguments(name: str | None, *, until_idle: bool, run_all: bool) -> None:
    if run_all == (name is not None):
        raise InvalidCommandError(
            "connectors run", [("NAME", "name one connector, or run them all with --all")]
        )
    if run_all and not until_idle:
        raise InvalidCommandError(
            "connectors run",
            [("--all", "runs the connectors one after the other: use it with --until-idle")],
        )


def _run_all(ctx: typer.Context, rt: Session) -> None:
    """Each configured connector until idle, in name order. A connector that cannot run — its
    configuration is wrong, another process runs it, the broker it needs is away — is
    reported and the next one runs (issue 20: one typo used to stop every connector), also one
    whose sink raises outside its events (logged with its traceback); the exit is the worst of
    theirs (`_SEVERITY`). Ctrl-C stops the one running and skips the rest."""
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    outcomes: list[dict[str, object]] = []
    try:
        with _connectors(ctx) as connectors:
            for name in connectors.names():
                if stop.is_set():
                    break
                outcomes.append(_run_one(connectors, name, stop))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if rt.as_json:
        emit_json(rt.console, outcomes)
    else:
        for outcome in outcomes:
            rt.console.print(f"connector {outcome['name']}: {outcome['summary']}",
                             markup=False, highlight=False)
    codes = [int(str(outcome["exit"])) for outcome in outcomes]
    worst = max(codes, default=0, key=lambda code: _SEVERITY.get(code, 1))
    if worst:
        raise typer.Exit(worst)


_SEVERITY = {0: 0, EXIT_DEGRADED: 2, EXIT_FAILED: 3, EXIT_MISCONFIGURED: 4}
"""Which exit of `run --all` wins when its connectors ended differently: the worst, so that a
scheduler tells "replay needed" (5) from "a sink failed" (6) and "fix the configuration" (3);
anything else (stopped, busy, refused) ranks as 1."""


def _run_one(connectors: ConnectorHost, name: str, stop: threading.Event) -> dict[str, object]:
    try:
        report = connectors.run(name, stop, until_idle=True)
    except ConnectorConfigError as exc:
        return {"name": name, "ok": False, "summary": f"not run: {exc}", "report": None,
                "exit": EXIT_MISCONFIGURED}
    except NervenbahnError as exc:  # foreseen, and this connector's alone: the others run
        return {"name": name, "ok": False, "summary": f"not run: {exc}", "report": None,
                "exit": EXIT_STOPPED}
    except Exception as exc:  # a bug of this connector's (its setup, its deliver): the others run
        log.exception("connector run failed", connector=name)
        return {"name": name, "ok": False, "report": None, "exit": EXIT_STOPPED,
                "summary": f"not run: {type(exc).__name__}: {exc} (see the log)"}
    return {"name": name, "ok": report.ok, "exit": _RUN_EXIT.get(report.outcome, EXIT_STOPPED),
            "summary": f"({report.kind}) {report.summary()}",
            "report": {**vars(report), "ok": report.ok, "outcome": report.outcome}}


@app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
) -> None:
    """Position, lag, errors (count and most recent) and last run of each connector."""
    rt = session(ctx)
    with _connectors(ctx) as connectors:
        statuses = [connectors.status_of(name)] if name else connectors.status()
    if rt.as_json:
        emit_json(rt.console, statuses)
        return
    if not statuses:
        rt.console.print(f"no connectors configured in {connectors_file(rt.settings)}")
        return
    table = Table(title="Connectors", title_justify="left")
    for column in ("name", "kind", "outcome", "position", "lag", "errors", "last error",
                   "last run"):
        table.add_column(column)
    for s in statuses:
        table.add_row(
            s.name,
            s.kind,
            (s.outcome or "never ran") + (f" ({s.dead_letters} dead letters)"
                                          if s.dead_letters else ""),
            s.position or "-",
            str(s.lag) if s.lag is not None else f"? {s.lag_note}",
            str(s.error_count),
            s.errors[0] if s.errors else "",
            s.last_run or "never",
        )
    rt.console.print(table)


@app.command("errors")
def errors(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connector's name.")],
) -> None:
    """Every error recorded for a connector, most recent first."""
    rt = session(ctx)
    with _connectors(ctx) as connectors:
        connectors.spec(name)
        entries = connectors.state.errors(name)
    if rt.as_json:
        emit_json(rt.console, entries)
        return
    if not entries:
        rt.console.print(f"connector {name}: no errors")
    for entry in entries:
        rt.console.print(entry.line())


@app.command("catalogue")
def catalogue(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (default: print it).")
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="md (docs/connector-catalogue.md) or json.")
    ] = "md",
) -> None:
    """What a sink receives: every event on every topic, its fields (bus and domain names,
    type, meaning), the phase changes of a case, an example `Received` per event."""
    text = render(sink_catalogue(), fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")

@app.command("replay")
def replay(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The sink's name.")],
) -> None:
    """Hand a sink's dead letters to it again, after a fix: each once (one whose event took
    effect already is skipped), none twice. Exit 5 if dead letters are left."""
    rt = session(ctx)
    with _connectors(ctx) as connectors:
        report = connectors.replay(name)
    if rt.as_json:
        emit_json(rt.console, {**vars(report), "ok": report.ok})
    else:
        rt.console.print(f"connector {name}: {report.summary()}")
        for line in (*report.failed, *report.unreplayable):
            rt.console.print(f"  {line}", markup=False)
        for written in report.delivered:
            rt.console.print(f"  delivered {written}")
    if not report.ok:
        raise typer.Exit(EXIT_DEGRADED)


RESET_WARNING = (
    "Events from there on are handled again. Output the sink wrote for them before may be "
    "written a second time unless the sink makes a reset idempotent (Sink.on_reset, "
    "docs/connectors.md)."
)


@app.command("reset")
def reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The sink's name.")],
    to: Annotated[
        str,
        typer.Option("--to", help="earliest, latest, or a date / date-time (ISO 8601; without a "
                     "zone: Swiss time): the first message the broker received from then on."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a sink's offsets (its position in its topic); the sink must not be running."""
    rt = session(ctx)
    target = reset_target(to)
    with _connectors(ctx) as connectors:
        hook = resets_idempotently(connectors.sink(name, "reset"))
        typer.echo(f"warning: resetting {name} to {to}. {RESET_WARNING} {name} "
                   + ("defines on_reset." if hook else "does NOT define on_reset."), err=True)
        if not yes and not typer.confirm(f"Reset {name}?", default=False, err=True):
            typer.echo(f"{name} not reset", err=True)
            raise typer.Exit(EXIT_STOPPED)
        report = connectors.reset(name, target)
    _show_reset(rt, report)


def _show_reset(rt: Session, report: ResetReport) -> None:
    if rt.as_json:
        emit_json(rt.console, report)
        return
    rt.console.print(f"connector {report.name} reset to {report.to}: "
                     f"{report.before or 'never read'} -> {report.after or 'from the start'}")
    if report.forgot_processed:
        idempotent = ("its on_reset makes it idempotent" if report.idempotent else
                      "it defines no on_reset: what it wrote may be written twice")
        rt.console.print(f"  the events from there on are handled again; {idempotent}")


@connector_app.command("new")
def new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Package name: lower-case letters, digits, '_'.")],
    kind: Annotated[str, typer.Option("--kind", help="source or sink.")] = "source",
    into: Annotated[
        Path,
        typer.Option("--into", help="The folder the package folder NAME/ is written into."),
    ] = Path("."),
) -> None:
    """Write a connector package `NAME/` (pyproject.toml, the connector, its passing tests)."""
    rt = session(ctx)
    try:
        written = write_connector(name, kind, into)
    except ScaffoldError as exc:
        raise InvalidCommandError("connector new", [(exc.field, str(exc))]) from None
    entry = config_entry(name, kind)
    package = into / name
    if rt.as_json:
        emit_json(rt.console, {"package": str(package), "written": [str(p) for p in written],
                               "config": entry})
        return
    # Paths and commands to copy: never wrapped at the terminal's width (soft_wrap).
    for path in written:
        rt.console.print(f"wrote {path}", soft_wrap=True, markup=False, highlight=False)
    rt.console.print(
        f"\ninstall it into this environment: pip install -e {package}\n"
        f"run its tests:                    cd {package} && pytest\n"
        "then add to your connectors file (NERVENBAHN_CONNECTORS):\n",
        markup=False, highlight=False, soft_wrap=True,
    )
    rt.console.print(entry, markup=False, highlight=False, soft_wrap=True)
