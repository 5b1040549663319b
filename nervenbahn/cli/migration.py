"""`nervenbahn import`: legacy history as a migration step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from domain.application.importer import MigrationStep
from domain.commands import Actor, invalid_command
from domain.errors import InvalidCommandError
from nervenbahn.identity import process_identity

from .inputs import checked_lines, open_regular, sha256_of
from .render import emit_json
from .session import session

__all__ = ["import_history"]

_ACTOR = TypeAdapter(Actor)
"""Validates a declared actor outside a command (the importer of a migration step)."""


def import_history(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="Legacy history as JSON Lines (a regular file; each line at most 1 MiB)."
        ),
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Import although the store already holds live events (needs --reason)."
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="Why a forced import is needed (recorded on every imported event)."),
    ] = None,
) -> None:
    """Import legacy history as a migration step (an administrator; all or nothing), keeping
    original recorded times; every event records the importer, the file and its SHA-256."""
    rt = session(ctx)
    if force != (reason is not None):
        raise InvalidCommandError(
            "import", [("reason" if force else "force", "--force and --reason TEXT go together")]
        )
    try:
        actor = _ACTOR.validate_python(rt.actor())
    except ValidationError as exc:
        refused = invalid_command("import", exc)
        raise InvalidCommandError(
            "import", [(f"actor.{field}", reason) for field, reason in refused.problems]
        ) from None
    with open_regular("import", path, "path") as file:
        digest = sha256_of(file)
        step = MigrationStep(
            importer=actor,
            recorded_by=process_identity(),
            file_name=path.name,
            file_sha256=digest,
            forced_reason=reason,
        )
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
