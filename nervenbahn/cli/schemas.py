"""`nervenbahn schemas …`: check the bus's Avro schemas and release new versions.

`check` needs no network and no database (CI runs it); `--registry-url` also asks a live
Confluent-compatible registry. Exit 1 when a schema is refused, one line per problem naming
subject and field; exit 3 when the registry cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus.compatibility import SchemaProblem
from bus.errors import RegistryError
from bus.registry_http import ConfluentRegistryClient
from bus.schema_check import check_schemas, pending_releases, release_schemas
from schemas import SCHEMA_DIR, event_type_names

__all__ = ["app"]

app = typer.Typer(
    help="Avro schemas of the case events on the bus: check and release.", no_args_is_help=True
)

EXIT_INCOMPATIBLE = 1
EXIT_UNAVAILABLE = 3

SchemaDir = Annotated[
    Path,
    typer.Option(
        "--schema-dir",
        help="The schema root holding case/ and versions/.",
        exists=True,
        file_okay=False,
    ),
]


@app.command("check")
def check(
    schema_dir: SchemaDir = SCHEMA_DIR,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="Also ask this schema registry (Confluent API)."),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="The topic whose subjects to ask the registry about."),
    ] = None,
) -> None:
    """Check every schema against the domain and all released versions (BACKWARD_TRANSITIVE)."""
    if registry_url is not None and topic is None:
        raise typer.BadParameter("--registry-url needs --topic", param_hint="--topic")
    registry = ConfluentRegistryClient(registry_url) if registry_url else None
    try:
        problems = check_schemas(schema_dir, registry=registry, topic=topic)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from exc
    if problems:
        _report(problems)
        raise typer.Exit(EXIT_INCOMPATIBLE)
    typer.echo(f"schemas compatible: {len(event_type_names(schema_dir))} subjects")
    pending = pending_releases(schema_dir)
    if pending:
        typer.echo(f"not released yet: {', '.join(pending)} (run `nervenbahn schemas release`)")


@app.command("release")
def release(schema_dir: SchemaDir = SCHEMA_DIR) -> None:
    """Copy each changed, compatible schema to its next versions/<EventType>/v<N>.avsc."""
    releases, problems = release_schemas(schema_dir)
    if problems:
        _report(problems)
        raise typer.Exit(EXIT_INCOMPATIBLE)
    for done in releases:
        typer.echo(f"released {done.event_type} v{done.version}: {done.path}")
    if not releases:
        typer.echo("nothing to release: every schema equals its latest released version")


def _report(problems: list[SchemaProblem]) -> None:
    for problem in problems:
        typer.echo(str(problem))
    typer.echo(f"schemas incompatible: {len(problems)} problem(s)", err=True)
