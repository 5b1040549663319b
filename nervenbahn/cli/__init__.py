"""The `nervenbahn` command line: readable tables by default, `--json` for machines.

Errors are one clear line on stderr and a non-zero exit, never a traceback.

A command's module is imported only when the command runs (`COMMANDS`, `lazy.LazyGroup`), and
the table of foreseeable failures names its classes instead of importing them, so that
starting the CLI costs what the command needs, not what every command needs.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import structlog
import typer
from typer.exceptions import Abort, Exit, TyperException

from nervenbahn.logging import configure_logging_from_environment
from nervenbahn.private import private_umask
from nervenbahn.startup import imports_done

from .disk_full import disk_full
from .exit_codes import (
    EXIT_BUSY,
    EXIT_CHAIN_BROKEN,
    EXIT_DEGRADED,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERNAL,
    EXIT_NO_SPACE,
    EXIT_NOT_INITIALISED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)
from .lazy import LazyCommand, LazyGroup
from .session import Session

__all__ = [
    "COMMANDS",
    "EXIT_BUSY",
    "EXIT_CHAIN_BROKEN",
    "EXIT_DEGRADED",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERNAL",
    "EXIT_NOT_INITIALISED",
    "EXIT_NO_SPACE",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "app",
    "console_main",
    "exit_code_table",
    "main",
]


def _in(module: str, *commands: tuple[str, str, str]) -> tuple[LazyCommand, ...]:
    return tuple(
        LazyCommand(name, f"nervenbahn.cli.{module}", attribute, help_)
        for name, attribute, help_ in commands
    )


COMMANDS: tuple[LazyCommand, ...] = (
    *_in(
        "bus",
        (
            "broker",
            "broker",
            "Run the embedded Kafka broker (memory only: topics are "
            "gone when it stops) until Ctrl-C.",
        ),
    ),
    *_in(
        "serve",
        (
            "serve",
            "serve",
            "Run the API (OpenAPI docs at /docs), the relays and the projections until Ctrl-C.",
        ),
    ),
    *_in(
        "status",
        (
            "status",
            "status",
            "Relays (position, head, lag), read models (consumer "
            "lag, dead letters, freshness) and\nopen incidents; with --incidents, the "
            "incidents.",
        ),
    ),
    *_in(
        "asyncapi",
        (
            "asyncapi",
            "asyncapi",
            "Write the AsyncAPI 3.0.0 document of every topic this installation uses.",
        ),
    ),
    *_in(
        "init",
        (
            "init",
            "init",
            "Create the store's missing key files (idempotent); print what was created.",
        ),
    ),
    *_in(
        "migration",
        (
            "import",
            "import_history",
            "Import legacy history as a migration step "
            "(an administrator; all or nothing), keeping\noriginal recorded times; "
            "every event records the importer, the file and its SHA-256.",
        ),
    ),
    *_in(
        "demo",
        (
            "demo",
            "demo",
            "Seed a synthetic canton (13 social regions, two years of cases) and summarise it.",
        ),
    ),
    *_in("case", ("case", "app", "Record and query social-assistance cases.")),
    *_in("advances", ("advances", "app", "Advances in view of EL and their reimbursement.")),
    *_in("person", ("person", "app", "Personal data of household members.")),
    *_in(
        "schemas", ("schemas", "app", "Avro schemas of the bus: check, release, list and export.")
    ),
    *_in("relay", ("relay", "app", "The relay: every recorded event onto the bus.")),
    *_in("bus", ("topics", "topics_app", "Topics of the bus on NERVENBAHN_KAFKA.")),
    *_in(
        "projections",
        ("projections", "app", "Read models: rebuild them from the event store."),
        ("region", "region_app", "The social region's read model."),
    ),
    *_in("apikeys", ("apikeys", "app", "API keys of the HTTP API's consumers.")),
    *_in("users", ("users", "app", "Accounts of the web application.")),
    *_in("registry", ("registry", "app", "The schema registry served over HTTP.")),
    *_in("report", ("report", "app", "Reports for the canton, from the read models.")),
    *_in(
        "audit",
        (
            "audit",
            "app",
            "For auditors: state at any date, tamper evidence, the access log, reports.",
        ),
    ),
    *_in(
        "connectors",
        ("connectors", "app", "Run connectors and show their status."),
        ("connector", "connector_app", "Write a new connector."),
    ),
    *_in(
        "payments",
        (
            "payments",
            "app",
            "Payout accounts and monthly payment runs. A run is "
            "prepared by one person and approved by a second (`payments approve`) "
            "before its pain.001 file is released.",
        ),
    ),
    *_in("budgets", ("budgets", "app", "Budgets of all running cases.")),
    *_in(
        "benefits",
        ("benefits", "app", "Benefit applications (EL, IPV) and the fund's delegations."),
    ),
)
"""Every command of the root, in the order `--help` lists them: name, where it lives, and the
line listed for it (its help's first paragraph; tests/cli/test_cli_start.py keeps the two
equal)."""


class _Root(LazyGroup):
    lazy_commands = COMMANDS


app = typer.Typer(
    name="nervenbahn",
    help="nervenbahn: the event-sourced core for social administration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    cls=_Root,
)

_SESSIONS: list[Session] = []
"""The session of the invocation in progress, closed by `main` however the command ends."""

_EXIT_CODES: tuple[tuple[tuple[str, ...], int], ...] = (
    (("nervenbahn.cli.disk_full.DiskFullError",), EXIT_NO_SPACE),
    (("nervenbahn.audit.read_check.UnverifiedReadError",), EXIT_CHAIN_BROKEN),
    (("domain.errors.DomainError", "bus.errors.RelayStoppedError"), EXIT_REFUSED),
    (("nervenbahn.config.KeyMissingError",), EXIT_NOT_INITIALISED),
    (
        (
            "nervenbahn.config.ConfigError",
            "connectors.errors.ConnectorConfigError",
            "nervenbahn.container.StoreUnavailableError",
            "nervenbahn.audit.chain_existing.UnchainedEventsError",
            "nervenbahn.audit.errors.AccessLogUnavailableError",
            "bus.kafka_errors.BrokerUnavailableError",
            "bus.kafka_errors.BrokerStartError",
            "bus.kafka_errors.KafkaConfigError",
            "schemas.sql.SchemaVersionError",
            "nervenbahn.serve.InvalidNameError",
            "nervenbahn.supervision.WorkerFailedError",
            "schemas.postgres.DatabaseUnavailableError",
        ),
        EXIT_UNAVAILABLE,
    ),
    (("connectors.host.AlreadyRunningError",), EXIT_BUSY),
    (("domain.errors.NervenbahnError",), EXIT_REFUSED),
)
"""Foreseeable failures: their one-line message and exit code (first match wins). The last row
catches every other error of ours (a delivery file that does not parse, a checkpoint that cannot
be signed, …): each is foreseen by the code that raises it and says what happened in its
message, so it is one line and exit 1, never 70 with a traceback. A full disk, whatever error
carries it (`disk_full`), is translated into `DiskFullError` before the table is read.

Classes are named `module.Class` (the module that defines them) and not imported: an error is
an instance of a class only if that class's module has been imported, so a class whose module
is not in `sys.modules` cannot match and is skipped (`_listed`). `exit_code_table` imports them
(for tests)."""


def exit_code_table() -> tuple[tuple[tuple[type[Exception], ...], int], ...]:
    """`_EXIT_CODES` with its classes imported."""
    return tuple((tuple(_class(name) for name in names), code) for names, code in _EXIT_CODES)


def _class(name: str) -> type[Exception]:
    module, _, attribute = name.rpartition(".")
    kind = getattr(importlib.import_module(module), attribute)
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        raise TypeError(f"{name} is not an exception class")
    return kind


def _listed(error: BaseException, names: tuple[str, ...]) -> bool:
    """Whether `error` is an instance of one of the named classes (see `_EXIT_CODES`)."""
    for name in names:
        module, _, attribute = name.rpartition(".")
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(error, getattr(loaded, attribute)):
            return True
    return False


@app.callback()
def _options(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
    actor: Annotated[
        str | None,
        typer.Option(help="Acting user USER:ROLE:ORGANISATION (default: $NERVENBAHN_ACTOR)."),
    ] = None,
) -> None:
    imports_done()  # the command's modules are imported: the cycle collector runs from here
    ctx.obj = _SESSIONS[-1] if _SESSIONS else Session()
    ctx.obj.as_json, ctx.obj.actor_spec = as_json, actor


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
        error = disk_full(raised) or _store_lost(raised) or raised
        for names, code in _EXIT_CODES:
            if _listed(error, names):
                return _fail(str(error), code)
        structlog.get_logger("nervenbahn.cli").error("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(error).__name__} (logged)", EXIT_INTERNAL)
    finally:
        _close_runtime()
    return result if isinstance(result, int) else 0


def _store_lost(raised: Exception) -> Exception | None:
    """`nervenbahn.container.store_lost`, imported only on this error path."""
    from nervenbahn.container import store_lost

    return store_lost(raised)


def _close_runtime() -> None:
    while _SESSIONS:
        _SESSIONS.pop().close()


def _fail(message: str, code: int) -> int:
    typer.echo(f"error: {message}", err=True)
    return code


def console_main() -> None:
    """Run the CLI and exit with its code (`nervenbahn.startup.main`, the script's entry
    point, calls it)."""
    raise SystemExit(main())
