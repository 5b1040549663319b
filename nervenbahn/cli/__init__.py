"""The `nervenbahn` command line: readable tables by default, `--json` for machines.

Errors are one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from uuid import UUID

import structlog
import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table
from typer.exceptions import Abort, Exit, TyperException

from bus.errors import RelayStoppedError
from bus.kafka_errors import BrokerStartError, BrokerUnavailableError, KafkaConfigError
from connectors.host import AlreadyRunningError, ConnectorConfigError
from domain.application.importer import MigrationStep
from domain.commands import Actor, invalid_command
from domain.errors import DomainError, InvalidCommandError, NervenbahnError
from nervenbahn.audit.chain_existing import UnchainedEventsError
from nervenbahn.audit.errors import AccessLogUnavailableError
from nervenbahn.audit.read_check import UnverifiedReadError
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN
from nervenbahn.config import ConfigError, KeyMissingError
from nervenbahn.container import StoreUnavailableError, store_lost
from nervenbahn.identity import process_identity
from nervenbahn.logging import configure_logging_from_environment
from nervenbahn.private import private_umask
from nervenbahn.serve import InvalidNameError
from nervenbahn.supervision import WorkerFailedError
from schemas.postgres import DatabaseUnavailableError
from schemas.sql import SchemaVersionError

from . import (
    advances,
    apikeys,
    asyncapi,
    audit,
    benefits,
    budgets,
    bus,
    case,
    connectors,
    init,
    payments,
    projections,
    registry,
    relay,
    report,
    schemas,
    serve,
    status,
    users,
)
from .disk_full import DiskFullError, disk_full
from .inputs import checked_lines, open_regular, sha256_of
from .render import emit_json
from .session import Session, session

__all__ = ["app", "console_main", "main"]

app = typer.Typer(
    name="nervenbahn",
    help="nervenbahn: the event-sourced core for social administration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
person_app = typer.Typer(help="Personal data of household members.", no_args_is_help=True)
app.add_typer(case.app, name="case")
app.add_typer(advances.app, name="advances")
app.add_typer(person_app, name="person")
app.add_typer(schemas.app, name="schemas")
app.add_typer(relay.app, name="relay")
app.command("broker")(bus.broker)
app.add_typer(bus.topics_app, name="topics")
app.add_typer(projections.app, name="projections")
app.add_typer(projections.region_app, name="region")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(users.app, name="users")
app.add_typer(registry.app, name="registry")
app.add_typer(report.app, name="report")
app.command("serve")(serve.serve)
app.command("status")(status.status)
app.command("asyncapi")(asyncapi.asyncapi)
app.command("init")(init.init)
app.add_typer(audit.app, name="audit")
app.add_typer(connectors.app, name="connectors")
app.add_typer(connectors.connector_app, name="connector")
app.add_typer(payments.app, name="payments")
app.add_typer(budgets.app, name="budgets")
app.add_typer(benefits.app, name="benefits")
app.add_typer(advances.app, name="advances")

_SESSIONS: list[Session] = []
"""The session of the invocation in progress, closed by `main` however the command ends."""

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3
EXIT_INCOMPLETE = 4
"""`person erase`: the key is destroyed, but a place could not be reached."""
EXIT_BUSY = 75
"""Another process holds what the command needs (a connector's run): try again later
(sysexits' EX_TEMPFAIL)."""
EXIT_INTERNAL = 70
"""Only for what nobody foresaw; the error is logged with its traceback."""
EXIT_NO_SPACE = 74
"""The disk (or quota) is full: free space and run the command again (sysexits' EX_IOERR).
Files a later run depends on are written all or nothing, so nothing half-written is left."""
EXIT_NOT_INITIALISED = 78
"""A key the command needs does not exist yet: run `nervenbahn init` (sysexits' EX_CONFIG)."""
EXIT_DEGRADED = connectors.EXIT_DEGRADED
"""`connectors run`: a sink dead-lettered events (`connectors replay` after a fix);
`connectors replay`: dead letters are left."""
EXIT_FAILED = connectors.EXIT_FAILED
"""`connectors run`: a sink (on_error = "stop") stopped at an event it failed on; fix it and
run again."""

_EXIT_CODES: tuple[tuple[tuple[type[Exception], ...], int], ...] = (
    ((DiskFullError,), EXIT_NO_SPACE),
    ((UnverifiedReadError,), EXIT_CHAIN_BROKEN),
    ((DomainError, RelayStoppedError), EXIT_REFUSED),
    ((KeyMissingError,), EXIT_NOT_INITIALISED),
    ((ConfigError, ConnectorConfigError, StoreUnavailableError, UnchainedEventsError,
      AccessLogUnavailableError, BrokerUnavailableError, BrokerStartError, KafkaConfigError,
      SchemaVersionError, InvalidNameError, WorkerFailedError,
      DatabaseUnavailableError),
     EXIT_UNAVAILABLE),
    ((AlreadyRunningError,), EXIT_BUSY),
    ((NervenbahnError,), EXIT_REFUSED),
)
"""Foreseeable failures: their one-line message and exit code (first match wins). The last row
catches every other error of ours (a delivery file that does not parse, a checkpoint that cannot
be signed, …): each is foreseen by the code that raises it and says what happened in its
message, so it is one line and exit 1, never 70 with a traceback. A full disk, whatever error
carries it (`disk_full`), is translated into `DiskFullError` before the table is read."""


@app.callback()
def _options(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
    actor: Annotated[
        str | None,
        typer.Option(help="Acting user USER:ROLE:ORGANISATION (default: $NERVENBAHN_ACTOR)."),
    ] = None,
) -> None:
    ctx.obj = _SESSIONS[-1] if _SESSIONS else Session()
    ctx.obj.as_json, ctx.obj.actor_spec = as_json, actor


@person_app.command("erase")
def erase(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="The person id (UUID).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person's data for good (crypto-shredding, and the files that name them in
    clear); case histories stay replayable. Exits 4 if a place could not be reached."""
    from nervenbahn.erasure import erase_person

    rt = session(ctx)
    try:
        uid = UUID(person_id)
    except ValueError:
        raise InvalidCommandError(
            "erase", [("person_id", f"{person_id!r} is not a UUID")]
        ) from None
    if not yes and not typer.confirm(f"Erase all personal data of {uid} irreversibly?"):
        raise typer.Exit(EXIT_REFUSED)
    report = erase_person(rt.container, uid)
    places = [{"place": p.path, "outcome": p.outcome, "detail": p.detail}
              for p in report.places()]
    if rt.as_json:
        emit_json(rt.console, {"person_id": uid, "erased": report.key_existed,
                               "complete": report.complete, "places": places})
    else:
        table = Table("place", "outcome", "detail", title=f"Erasure of person {uid}",
                      title_justify="left")
        for row in places:
            table.add_row(row["place"], row["outcome"], row["detail"])
        rt.console.print(table)
    if not report.complete:
        typer.echo(f"error: the erasure of {uid} is incomplete: see the places not reached; "
                   "remove the cause and run `person erase` again", err=True)
        raise typer.Exit(EXIT_INCOMPLETE)


_ACTOR = TypeAdapter(Actor)
"""Validates a declared actor outside a command (the importer of a migration step)."""


@app.command("import")
def import_history(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="Legacy history as JSON Lines (a regular file; each line at "
                             "most 1 MiB).")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Import although the store already holds live "
                           "events (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why a forced import is needed (recorded on every "
                                 "imported event).")
    ] = None,
) -> None:
    """Import legacy history as a migration step (an administrator; all or nothing), keeping
    original recorded times; every event records the importer, the file and its SHA-256."""
    rt = session(ctx)
    if force != (reason is not None):
        raise InvalidCommandError(
            "import", [("reason" if force else "force",
                        "--force and --reason TEXT go together")])
    try:
        actor = _ACTOR.validate_python(rt.actor())
    except ValidationError as exc:
        refused = invalid_command("import", exc)
        raise InvalidCommandError(
            "import", [(f"actor.{field}", reason) for field, reason in refused.problems]
        ) from None
    with open_regular("import", path, "path") as file:
        digest = sha256_of(file)
        step = MigrationStep(importer=actor, recorded_by=process_identity(),
                             file_name=path.name, file_sha256=digest, forced_reason=reason)
        report = rt.service.import_records(checked_lines("import", file), step)
    figures = {
        "records": report.records,
        "events": report.events,
        "cases": report.cases,
        "seconds": round(report.seconds, 3),
        "file_sha256": digest,
    }
    if rt.as_json:
        emit_json(rt.console, figures)
    else:
        rt.console.print(
            f"imported {report.records} records: {report.events} events in {report.cases} cases "
            f"({report.seconds:.2f} s) from {path.name} (sha256 {digest})"
        )


@app.command("demo")
def demo(
    ctx: typer.Context,
    households: Annotated[
        int, typer.Option(help="Households in the synthetic canton.", min=1, max=200_000)
    ] = 4000,
    seed: Annotated[
        int, typer.Option(help="Random seed (the demo is deterministic).", min=0, max=2**63 - 1)
    ] = 2026,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the SQLite store first.")] = False,
    bus: Annotated[
        bool, typer.Option("--bus/--no-bus", help="Also relay to Kafka and subscribe.")
    ] = True,
) -> None:
    """Seed a synthetic canton (13 social regions, two years of cases) and summarise it."""
    from nervenbahn.demo import run_demo

    rt = session(ctx)
    run_demo(rt.container, rt.console, households=households, seed=seed, reset=reset, bus=bus)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    configure_logging_from_environment()  # before anything can log (never with locals)
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    _SESSIONS.append(Session())
    try:
        with private_umask():  # whatever a command or its child processes create is private
            result = command.main(args=args, prog_name="nervenbahn", standalone_mode=False)
    except Exit as exc:
        return exc.exit_code
    except Abort:
        return EXIT_REFUSED
    except TyperException as exc:  # usage errors: typer prints them with the usage line
        show = getattr(exc, "show", None)
        if callable(show):
            show()
            return exc.exit_code
        return _fail(exc.format_message(), exc.exit_code)
    except Exception as raised:  # the CLI never shows a traceback, nor the error's values
        error = disk_full(raised) or store_lost(raised) or raised
        for kinds, code in _EXIT_CODES:
            if isinstance(error, kinds):
                return _fail(str(error), code)
        structlog.get_logger("nervenbahn.cli").error("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(error).__name__} (logged)", EXIT_INTERNAL)
    finally:
        _close_runtime()
    return result if isinstance(result, int) else 0


def _close_runtime() -> None:
    while _SESSIONS:
        _SESSIONS.pop().close()


def _fail(message: str, code: int) -> int:
    typer.echo(f"error: {message}", err=True)
    return code


def console_main() -> None:
    """Entry point of the `nervenbahn` script."""
    raise SystemExit(main())
