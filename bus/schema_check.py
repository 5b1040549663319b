"""Check the schema files before they reach a registry, and release new versions.

Runs with no network and no database (CI runs it): every domain event type must have a schema
that matches its fields, and each current schema (the reporting records' too) must be able to
read data written with *every* released version kept in `schemas/versions/`
(BACKWARD_TRANSITIVE). Optionally, the
registry in production is asked too. `release_schemas` copies a changed schema to its next
`v<N>.avsc`, only if the check passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bus.benefits_codec import benefit_schema_mismatches, fund_decision_mismatches
from bus.claims_codec import (
    CLAIM_RECORD,
    PAID_RECORD,
    claim_paid_mismatches,
    reimbursement_claim_mismatches,
)
from bus.codec import schema_mismatches
from bus.compatibility import (
    WHOLE_SCHEMA,
    SchemaProblem,
    compatibility_problems,
    fingerprint,
    validate_schema,
)
from bus.payments_codec import payment_schema_mismatches
from bus.registry import SchemaRegistry
from domain.benefits import APPLICATION_EVENT_TYPES
from domain.events import EVENT_TYPES
from domain.payments import RUN_EVENT_TYPES
from schemas import (
    AUDIT_NAMESPACE,
    BENEFITS_NAMESPACE,
    NAMESPACE,
    PAYMENTS_NAMESPACE,
    REPORTING_NAMESPACE,
    SCHEMA_DIR,
    SchemaFileError,
    event_schema,
    event_type_names,
    load_schema,
    payment_record_names,
    payment_schema,
    record_name,
    released_versions,
    reporting_record_names,
    reporting_schema,
    schema_names,
    subject_for,
    version_path,
)
from schemas.catalogue import SchemaCatalogue, load_catalogue, write_catalogue

__all__ = [
    "UNCATALOGUED",
    "Release",
    "catalogue_problems",
    "check_schemas",
    "pending_releases",
    "release_schemas",
]

UNCATALOGUED = "UNCATALOGUED"
"""The kind of problem of a released version without a catalogue entry: `schemas check` fails,
`schemas release` gives it the next id."""


@dataclass(frozen=True)
class Release:
    """A schema version written to `schemas/versions/`."""

    event_type: str
    version: int
    path: Path


def check_schemas(
    schema_dir: Path = SCHEMA_DIR,
    *,
    registry: SchemaRegistry | None = None,
    topic: str | None = None,
    event_types: Sequence[type[Any]] = EVENT_TYPES,
) -> list[SchemaProblem]:
    """Every problem of the schema files; [] if they may be released and registered.

    With a `registry` (and the `topic` whose subjects to ask about), the registry is asked
    too; RegistryError if it cannot be reached.
    """
    if registry is not None and topic is None:
        raise ValueError("checking against a registry needs the topic of its subjects")
    classes = {cls.__name__: cls for cls in event_types}
    files = set(event_type_names(schema_dir))
    problems = [
        SchemaProblem(_subject(name, topic), WHOLE_SCHEMA,
                      f"no schema file case/{name}.avsc for this domain event type", "MISSING")
        for name in sorted(classes.keys() - files)
    ]
    problems += [
        SchemaProblem(_subject(name, topic), WHOLE_SCHEMA,
                      f"case/{name}.avsc describes no domain event type", "UNKNOWN_EVENT_TYPE")
        for name in sorted(files - classes.keys())
    ]
    for name in sorted(classes.keys() & files):
        found = _check_one(name, classes[name], schema_dir, topic)
        if not found and registry is not None and topic is not None:
            found = registry.check_compatibility(
                subject_for(topic, name), event_schema(name, schema_dir)
            )
        problems += found
    # Reporting records are checked locally only: their subjects live on the reporting topic.
    for name in reporting_record_names(schema_dir):
        problems += _check_reporting(name, schema_dir, topic)
    # Payment-run events, likewise local: their subjects live on the payments topic.
    problems += _check_payments(schema_dir)
    # Audit records (signed checkpoints), likewise local: their subjects live on the audit topic.
    for name in _audit_record_names(schema_dir):
        problems += _check_audit(name, schema_dir)
    # Benefit-application events and the fund's decisions, local too (their own topics).
    problems += _check_benefits(schema_dir)
    return problems + catalogue_problems(schema_dir)


def catalogue_problems(schema_dir: Path = SCHEMA_DIR) -> list[SchemaProblem]:
    """Released versions without a catalogue entry, entries whose fingerprint is not their
    file's, and a catalogue that cannot be read (ids repeated, malformed entries)."""
    try:
        catalogue = load_catalogue(schema_dir)
    except SchemaFileError as exc:
        return [SchemaProblem("catalogue.json", WHOLE_SCHEMA, str(exc), "CATALOGUE")]
    problems = []
    for name in _schema_names(schema_dir):
        record = _record_of(name, schema_dir)
        try:
            released = released_versions(name, schema_dir)
        except SchemaFileError:
            continue  # reported by the record's own check
        for version, schema in released:
            entry = catalogue.entry(record, version)
            kind = "CATALOGUE"
            if entry is None:
                message = (f"released v{version} has no entry in catalogue.json (`nervenbahn "
                           "schemas release` gives it the next id)")
                kind = UNCATALOGUED
            elif entry.fingerprint != fingerprint(schema):
                message = (f"released v{version} differs from its catalogue entry (id "
                           f"{entry.schema_id}): a released version must never change")
            else:
                continue
            problems.append(SchemaProblem(record, WHOLE_SCHEMA, message, kind,
                                          version=version))
    return problems


def pending_releases(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Event types and reporting records whose current schema differs from their latest
    released version."""
    pending = []
    for name in _schema_names(schema_dir):
        released = released_versions(name, schema_dir)
        if not released or fingerprint(released[-1][1]) != fingerprint(
            _current_schema(name, schema_dir)
        ):
            pending.append(name)
    return pending


def release_schemas(
    schema_dir: Path = SCHEMA_DIR, *, event_types: Sequence[type[Any]] = EVENT_TYPES
) -> tuple[list[Release], list[SchemaProblem]]:
    """Write each changed schema as its next version, if the check passes.

    Returns what was released and the problems; nothing is written when there are problems.
    """
    problems = [
        problem for problem in check_schemas(schema_dir, event_types=event_types)
        if problem.kind != UNCATALOGUED  # given their ids below
    ]
    if problems:
        return [], problems
    releases = []
    catalogue = _with_uncatalogued(load_catalogue(schema_dir), schema_dir)
    for name in pending_releases(schema_dir):
        released = released_versions(name, schema_dir)
        version = released[-1][0] + 1 if released else 1
        path = version_path(name, version, schema_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_current_schema(name, schema_dir), indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        catalogue = _catalogued(catalogue, name, version, schema_dir)
        releases.append(Release(name, version, path))
    if catalogue != load_catalogue(schema_dir):
        write_catalogue(catalogue, schema_dir)
    return releases, []


def _with_uncatalogued(catalogue: SchemaCatalogue, schema_dir: Path) -> SchemaCatalogue:
    """`catalogue` with the next ids for released versions it lacks (one released on a branch
    without the catalogue, merged since), in the catalogue's order: record, then version."""
    for name in _schema_names(schema_dir):
        record = _record_of(name, schema_dir)
        for version, schema in released_versions(name, schema_dir):
            if catalogue.entry(record, version) is None:
                catalogue = catalogue.with_release(record, version, fingerprint(schema))
    return catalogue


def _catalogued(
    catalogue: SchemaCatalogue, name: str, version: int, schema_dir: Path
) -> SchemaCatalogue:
    """`catalogue` with the newly released `version` of `name` under the next id."""
    schema = released_versions(name, schema_dir)[-1][1]
    return catalogue.with_release(_record_of(name, schema_dir), version, fingerprint(schema))


def _check_one(
    name: str, event_class: type[Any], schema_dir: Path, topic: str | None
) -> list[SchemaProblem]:
    subject = _subject(name, topic)
    try:
        schema = event_schema(name, schema_dir)
        released = released_versions(name, schema_dir)
    except SchemaFileError as exc:
        return [SchemaProblem(subject, WHOLE_SCHEMA, str(exc), "SCHEMA_FILE")]
    problems = validate_schema(subject, schema)
    if problems:
        return problems
    problems = [
        SchemaProblem(subject, field, message, "DOMAIN_MISMATCH")
        for field, message in schema_mismatches(event_class, schema)
    ]
    return problems + _released_problems(subject, schema, released)


def _check_reporting(name: str, schema_dir: Path, topic: str | None) -> list[SchemaProblem]:
    subject = _subject(name, topic, REPORTING_NAMESPACE)
    return _check_record(subject, name, REPORTING_NAMESPACE, reporting_schema, schema_dir)


def _check_record(
    subject: str,
    name: str,
    namespace: str,
    load: Callable[[str, Path], dict[str, Any]],
    schema_dir: Path,
) -> list[SchemaProblem]:
    """A record schema that is not an event (a reporting fact, an audit checkpoint): valid,
    named `namespace.name` as its file, and able to read every released version."""
    try:
        schema = load(name, schema_dir)
        released = released_versions(name, schema_dir)
    except SchemaFileError as exc:
        return [SchemaProblem(subject, WHOLE_SCHEMA, str(exc), "SCHEMA_FILE")]
    problems = validate_schema(subject, schema)
    if problems:
        return problems
    if (schema.get("name"), schema.get("namespace")) != (name, namespace):
        problems.append(
            SchemaProblem(subject, WHOLE_SCHEMA,
                          f"record must be {namespace}.{name}, named as its file",
                          "DOMAIN_MISMATCH")
        )
    return problems + _released_problems(subject, schema, released)


Mismatches = Callable[[dict[str, Any]], list[tuple[str, str]]]
"""(field, problem) for each difference between a schema and the class it describes."""


def _check_payments(schema_dir: Path) -> list[SchemaProblem]:
    """Each payment-run event type has a schema matching its fields, readable from every
    released version (the same rules as the case events, namespace ch.nervenbahn.payments)."""
    checks: dict[str, Mismatches] = {
        cls.__name__: partial(payment_schema_mismatches, cls) for cls in RUN_EVENT_TYPES
    }
    return _check_group("payments", PAYMENTS_NAMESPACE, "payment event type", checks, schema_dir)


def _check_benefits(schema_dir: Path) -> list[SchemaProblem]:
    """Each benefit-application event type has a schema matching its fields, and
    `FundDecision` one matching `bus.benefits_codec.FundDecision` (and `ReimbursementClaim`,
    `ClaimPaid` theirs in `bus.claims_codec`), each readable from every
    released version (the same rules as the case events, namespace ch.nervenbahn.benefits)."""
    checks: dict[str, Mismatches] = {
        cls.__name__: partial(benefit_schema_mismatches, cls) for cls in APPLICATION_EVENT_TYPES
    }
    checks["FundDecision"] = fund_decision_mismatches
    checks[CLAIM_RECORD] = reimbursement_claim_mismatches
    checks[PAID_RECORD] = claim_paid_mismatches
    return _check_group("benefits", BENEFITS_NAMESPACE, "benefit event type or decision",
                        checks, schema_dir)


def _check_group(
    group: str, namespace: str, what: str, checks: dict[str, Mismatches], schema_dir: Path
) -> list[SchemaProblem]:
    """A schema file per record of `checks`, none other, each matching its class (its
    `checks` entry) and readable from every released version; nothing for a schema tree
    without the group's folder (as for reporting)."""
    if not (schema_dir / group).is_dir():
        return []
    files = set(schema_names(group, schema_dir))
    problems = [
        SchemaProblem(record_name(name, namespace), WHOLE_SCHEMA,
                      f"no schema file {group}/{name}.avsc for this {what}", "MISSING")
        for name in sorted(checks.keys() - files)
    ] + [
        SchemaProblem(record_name(name, namespace), WHOLE_SCHEMA,
                      f"{group}/{name}.avsc describes no {what}", "UNKNOWN_EVENT_TYPE")
        for name in sorted(files - checks.keys())
    ]
    for name in sorted(checks.keys() & files):
        subject = record_name(name, namespace)
        try:
            schema = load_schema(group, name, schema_dir)
            released = released_versions(name, schema_dir)
        except SchemaFileError as exc:
            problems.append(SchemaProblem(subject, WHOLE_SCHEMA, str(exc), "SCHEMA_FILE"))
            continue
        found = validate_schema(subject, schema)
        if not found:
            found = [
                SchemaProblem(subject, field, message, "DOMAIN_MISMATCH")
                for field, message in checks[name](schema)
            ]
            found += _released_problems(subject, schema, released)
        problems += found
    return problems


def _benefit_record_names(schema_dir: Path) -> list[str]:
    return schema_names("benefits", schema_dir)


def _benefit_schema(name: str, schema_dir: Path) -> dict[str, Any]:
    return load_schema("benefits", name, schema_dir)


def _audit_record_names(schema_dir: Path) -> list[str]:
    return schema_names("audit", schema_dir)


def _audit_schema(name: str, schema_dir: Path) -> dict[str, Any]:
    return load_schema("audit", name, schema_dir)


def _check_audit(name: str, schema_dir: Path) -> list[SchemaProblem]:
    """An audit record (e.g. Checkpoint) is valid, named as its file, and reads every released
    version."""
    subject = record_name(name, AUDIT_NAMESPACE)
    return _check_record(subject, name, AUDIT_NAMESPACE, _audit_schema, schema_dir)


def _released_problems(
    subject: str, schema: dict[str, Any], released: list[tuple[int, dict[str, Any]]]
) -> list[SchemaProblem]:
    """Gaps in the released versions, unreadable ones, and versions `schema` cannot read."""
    problems: list[SchemaProblem] = []
    numbers = [version for version, _ in released]
    if numbers != list(range(1, len(numbers) + 1)):
        listed = ", ".join(f"v{number}" for number in numbers)
        problems.append(
            SchemaProblem(subject, WHOLE_SCHEMA,
                          f"released versions must be v1..vN without gaps, found {listed}",
                          "VERSION_FILES")
        )
    unreadable = [
        SchemaProblem(subject, problem.field, f"released v{version}: {problem.message}",
                      problem.kind, version=version)
        for version, old in released
        for problem in validate_schema(subject, old)
    ]
    if unreadable:
        return problems + unreadable
    return problems + compatibility_problems(subject, schema, released)


def _subject(name: str, topic: str | None, namespace: str = NAMESPACE) -> str:
    return subject_for(topic, name, namespace) if topic else record_name(name, namespace)


def _schema_names(schema_dir: Path) -> list[str]:
    return (
        event_type_names(schema_dir)
        + reporting_record_names(schema_dir)
        + payment_record_names(schema_dir)
        + _audit_record_names(schema_dir)
        + _benefit_record_names(schema_dir)
    )


def _record_of(name: str, schema_dir: Path) -> str:
    """The full record name of `name` (by the group whose folder holds its current schema)."""
    for namespace, names in (
        (REPORTING_NAMESPACE, reporting_record_names(schema_dir)),
        (PAYMENTS_NAMESPACE, payment_record_names(schema_dir)),
        (AUDIT_NAMESPACE, _audit_record_names(schema_dir)),
        (BENEFITS_NAMESPACE, _benefit_record_names(schema_dir)),
    ):
        if name in names:
            return record_name(name, namespace)
    return record_name(name, NAMESPACE)


def _current_schema(name: str, schema_dir: Path) -> dict[str, Any]:
    if name in reporting_record_names(schema_dir):
        return reporting_schema(name, schema_dir)
    if name in payment_record_names(schema_dir):
        return payment_schema(name, schema_dir)
    if name in _audit_record_names(schema_dir):
        return _audit_schema(name, schema_dir)
    if name in _benefit_record_names(schema_dir):
        return _benefit_schema(name, schema_dir)
    return event_schema(name, schema_dir)
