"""`nervenbahn schemas …`: check the bus's Avro schemas and release new versions.

`check` needs no network and no database (CI runs it); `--registry-url` also asks a live
Confluent-compatible registry. Exit 1 when a schema is refused, one line per problem naming
subject and field; exit 3 when the registry cannot be reached.

`list` and `export DIR` show every released schema of every topic of the installation by
registry subject (topic prefix from NERVENBAHN_TOPIC_PREFIX); with `--registered`, also the id
each has in the installation's registry (NERVENBAHN_SCHEMA_REGISTRY, else the store's own).

`push --registry URL [--user NAME --password-file FILE]` imports every released schema of the
installation's subjects into an external Confluent registry under its catalogue id and released
version (IMPORT mode, `bus.registry_push`); exit 1 when the target assigned one differently
(nothing pushed), exit 3 when it cannot be reached or refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bus.asyncapi import PublishedSchema, published_schemas
from bus.compatibility import SchemaProblem
from bus.errors import RegistryError, SchemaError
from bus.registry_http import ConfluentRegistryClient
from bus.registry_push import SchemaConflictError, catalogued, push_schemas
from bus.schema_check import check_schemas, pending_releases, release_schemas
from nervenbahn.config import load_kafka_settings
from schemas import SCHEMA_DIR, event_type_names
from schemas.catalogue import load_catalogue

from .render import emit_json
from .session import session

__all__ = ["app"]

app = typer.Typer(
    help="Avro schemas of the bus: check, release, list and export.", no_args_is_help=True
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
    """Copy each changed, compatible schema to its next versions/<EventType>/v<N>.avsc and give
    every released version without one its id in catalogue.json."""
    before = set(load_catalogue(schema_dir).entries)
    releases, problems = release_schemas(schema_dir)
    if problems:
        _report(problems)
        raise typer.Exit(EXIT_INCOMPATIBLE)
    for done in releases:
        typer.echo(f"released {done.event_type} v{done.version}: {done.path}")
    added = sorted(set(load_catalogue(schema_dir).entries) - before, key=lambda e: e.schema_id)
    for entry in added:
        typer.echo(f"catalogued {entry.record} v{entry.version} as id {entry.schema_id}")
    if not releases and not added:
        typer.echo("nothing to release: every schema equals its latest released version")


Registered = Annotated[
    bool,
    typer.Option("--registered", help="Also give each schema's id in the installation's "
                 "registry (opens the store or NERVENBAHN_SCHEMA_REGISTRY)."),
]


@app.command("list")
def list_(ctx: typer.Context, registered: Registered = False) -> None:
    """Every released schema of every topic: subject, record, version, catalogue id (and the
    id in the installation's registry)."""
    rt = session(ctx)
    rows = [_row(found) for found in _published(ctx, registered)]
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    for row in rows:
        catalogued = "" if row["catalogue_id"] is None else f"  id {row['catalogue_id']}"
        in_registry = "" if row["schema_id"] is None else f"  registry id {row['schema_id']}"
        rt.console.print(f"{row['subject']}  v{row['version']}{catalogued}{in_registry}",
                         highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write (created if missing).",
                                              file_okay=False)],
    registered: Registered = False,
) -> None:
    """Write one <subject>/v<N>.avsc per released schema and an index.json listing them."""
    index = []
    for found in _published(ctx, registered):
        path = Path(found.subject) / f"v{found.version}.avsc"
        (directory / path.parent).mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(json.dumps(found.schema, indent=2) + "\n", "utf-8")
        index.append({**_row(found), "file": path.as_posix()})
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n", "utf-8")
    typer.echo(f"exported {len(index)} schemas to {directory}")


@app.command("push")
def push(
    registry: Annotated[str, typer.Option("--registry", help="The target registry's URL "
                                          "(Confluent API).")],
    user: Annotated[str | None, typer.Option("--user", help="HTTP Basic user name (an API "
                                             "key) for the target.")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="File holding the password (API secret) of --user.",
        exists=True, dir_okay=False)] = None,
) -> None:
    """Import every released schema into an external registry, keeping ids and versions."""
    if (user is None) != (password_file is None):
        raise typer.BadParameter("--user and --password-file go together",
                                 param_hint="--password-file")
    auth = None
    if user is not None and password_file is not None:
        auth = (user, password_file.read_text(encoding="utf-8").strip())
    released = [(p.subject, p.version, p.schema) for p in published_schemas(load_kafka_settings())]
    try:
        pushed = push_schemas(ConfluentRegistryClient(registry, auth=auth),
                              catalogued(released, load_catalogue()))
    except (SchemaConflictError, SchemaError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INCOMPATIBLE) from exc
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from exc
    for subject in pushed:
        imported = ", ".join(f"v{v}" for v in subject.imported) or "nothing"
        typer.echo(f"{subject.subject}: imported {imported}, {len(subject.present)} already there")
    total = sum(len(subject.imported) for subject in pushed)
    typer.echo(f"pushed {total} schemas to {registry} ({len(pushed)} subjects)")


def _published(ctx: typer.Context, registered: bool) -> list[PublishedSchema]:
    kafka = load_kafka_settings()
    if not registered:
        return published_schemas(kafka)
    return published_schemas(kafka, session(ctx).container.registry)


def _row(found: PublishedSchema) -> dict[str, Any]:
    return {"subject": found.subject, "record": found.record, "version": found.version,
            "catalogue_id": found.catalogue_id, "schema_id": found.schema_id}


def _report(problems: list[SchemaProblem]) -> None:
    for problem in problems:
        typer.echo(str(problem))
    typer.echo(f"schemas incompatible: {len(problems)} problem(s)", err=True)
