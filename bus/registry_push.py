"""Push the released schemas into an external Confluent registry, keeping their ids and versions.

An installation that leaves its embedded registry for an external one (`nervenbahn schemas
push`, then NERVENBAHN_SCHEMA_REGISTRY) must find every released schema there under the id its
messages already carry (the catalogue's, `schemas/catalogue.json`) and as the same version.
Confluent's IMPORT mode allows exactly that: a subject in IMPORT mode (`PUT /mode/{subject}`
`{"mode": "IMPORT"}`, with `?force=true` when it already holds versions) accepts `POST
/subjects/{subject}/versions` with an `"id"` and a `"version"`, without a compatibility check;
the subject is put back to READWRITE after. Confluent refuses (HTTP 422, error 42205) an id
already bound to another schema and a version already held by another schema.

The push first reads what the target holds for every subject and refuses the whole push
(`SchemaConflictError`, naming subject, version and ids) if the target already assigned one
of our schemas, versions or ids differently: nothing is written then. A subject that already
holds exactly our versions is left alone, so a repeated push changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import structlog

from bus.compatibility import canonical_text, fingerprint
from bus.errors import RegistryError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaVersion
from bus.registry_http import ConfluentRegistryClient
from schemas.catalogue import SchemaCatalogue

log = structlog.get_logger("nervenbahn.bus.registry_push")

__all__ = [
    "PushedSubject",
    "ReleasedSchema",
    "SchemaConflictError",
    "catalogued",
    "push_schemas",
]


class SchemaConflictError(RegistryError):
    """The target registry holds a released schema's subject version or id with something
    else; nothing was pushed."""


@dataclass(frozen=True)
class ReleasedSchema:
    """A released version of a record under one subject, with its catalogue id."""

    subject: str
    version: int
    schema_id: int
    schema: dict[str, Any]


@dataclass(frozen=True)
class PushedSubject:
    """What a push did to one subject: the versions it imported, those already there."""

    subject: str
    imported: tuple[int, ...]
    present: tuple[int, ...]


def catalogued(
    released: Iterable[tuple[str, int, dict[str, Any]]], catalogue: SchemaCatalogue
) -> list[ReleasedSchema]:
    """Each (subject, released version, schema) with its catalogue id; SchemaError naming the
    subject and version if one is not in the catalogue (run `nervenbahn schemas check`)."""
    found = []
    for subject, version, schema in released:
        entry = catalogue.by_fingerprint(fingerprint(schema))
        if entry is None or entry.version != version:
            raise SchemaError(f"{subject} v{version}: not in schemas/catalogue.json as released "
                              "(run `nervenbahn schemas check`)")
        found.append(ReleasedSchema(subject, version, entry.schema_id, schema))
    return found


def push_schemas(
    target: ConfluentRegistryClient, schemas: Sequence[ReleasedSchema]
) -> list[PushedSubject]:
    """Import every schema of `schemas` missing in `target` under its id and version.

    SchemaConflictError (before anything is written) if the target assigned one differently;
    RegistryError if the target cannot be reached or refuses the import.
    """
    ordered = sorted(schemas, key=lambda s: (s.subject, s.version))
    plans = []
    conflicts: list[str] = []
    for subject, group in groupby(ordered, key=lambda s: s.subject):
        ours = list(group)
        held = target.versions(subject)
        conflicts += _conflicts(target, subject, ours, held)
        plans.append((subject, ours, held))
    if conflicts:
        raise SchemaConflictError(
            "the target registry assigned released schemas differently, nothing pushed: "
            + "; ".join(conflicts),
            url=target.url,
        )
    return [_push_subject(target, subject, ours, held) for subject, ours, held in plans]


def _conflicts(
    target: ConfluentRegistryClient,
    subject: str,
    ours: list[ReleasedSchema],
    held: list[SchemaVersion],
) -> list[str]:
    """Why our versions of `subject` cannot go into `target` as they are; [] if they can."""
    by_version = {version.version: version for version in held}
    found = []
    for schema in ours:
        there = by_version.get(schema.version)
        text = canonical_text(schema.schema)
        if there is not None:
            if there.schema_id != schema.schema_id or canonical_text(there.schema) != text:
                found.append(
                    f"{subject} version {schema.version} is id {there.schema_id} there, "
                    f"released as id {schema.schema_id}"
                    + ("" if canonical_text(there.schema) == text else " with another schema")
                )
            continue
        elsewhere = [v.version for v in held if canonical_text(v.schema) == text]
        if elsewhere:
            found.append(f"{subject} holds released version {schema.version} (id "
                         f"{schema.schema_id}) as version {elsewhere[0]}")
            continue
        try:
            bound = target.schema_by_id(schema.schema_id)
        except SchemaNotFoundError:
            continue
        if canonical_text(bound) != text:
            found.append(f"{subject} version {schema.version}: id {schema.schema_id} is "
                         f"another schema there ({bound.get('name', '?')})")
    return found


def _push_subject(
    target: ConfluentRegistryClient,
    subject: str,
    ours: list[ReleasedSchema],
    held: list[SchemaVersion],
) -> PushedSubject:
    present = {version.version for version in held}
    missing = [schema for schema in ours if schema.version not in present]
    if missing:
        before = target.subject_mode(subject)
        target.set_mode(subject, "IMPORT", force=bool(held))
        try:
            for schema in missing:
                target.import_version(subject, schema.schema, schema_id=schema.schema_id,
                                      version=schema.version)
        except Exception:
            _restore_mode(target, subject, before, failing=True)
            raise
        _restore_mode(target, subject, before, failing=False)
    return PushedSubject(
        subject,
        tuple(schema.version for schema in missing),
        tuple(schema.version for schema in ours if schema.version in present),
    )


def _restore_mode(target: ConfluentRegistryClient, subject: str, before: str | None, *,
                  failing: bool) -> None:
    """Give `subject` back the mode it had (its own, or none: the global one). While an import
    is failing, a failed restore is logged and the import's error is the one raised."""
    try:
        if before is None:
            target.delete_mode(subject)
        else:
            target.set_mode(subject, before)
    except RegistryError as exc:
        if not failing:
            raise
        log.error("subject left in IMPORT mode", subject=subject, error=str(exc))
