"""The Avro schemas of the bus and their released versions, and the one loader every codec uses.

The schema files come in groups, one folder each (`SCHEMA_GROUPS`): `case/` (case events),
`reporting/` (the pseudonymised reporting facts), `payments/` (payment-run events), `audit/`
(signed checkpoints) and `benefits/` (benefit-application events and the fund's decisions, which
use the case group's shared Actor and SealedPersonalData by full name beside their own
`benefits/_types.avsc`); `load_schema(group, name)` reads one, `schema_names(group)` lists them.
`case/<EventType>.avsc` is the current schema of one domain event type; named types used by
several of them (Actor, BudgetLine, SealedPersonalData) are defined once in `case/_types.avsc`
and inlined on first use by `event_schema`, so that the schema handed to a registry is
self-contained. `versions/<EventType>/v<N>.avsc` keeps every released version, self-contained
as it was registered; `bus.schema_check` checks the current files against all of them.
`reporting/<Record>.avsc` holds the records of the pseudonymised reporting topics (namespace
`ch.nervenbahn.reporting`, self-contained); their released versions live in `versions/` too.
Payment and audit schemas are self-contained as written and handed on exactly as written (the
checkpoint schema refers to its `ChainHead` by short name: resolving it would change the text
registered since its first release).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import NervenbahnError

__all__ = [
    "AUDIT_NAMESPACE",
    "BENEFITS_NAMESPACE",
    "NAMESPACE",
    "PAYMENTS_NAMESPACE",
    "REPORTING_NAMESPACE",
    "SCHEMA_DIR",
    "SCHEMA_GROUPS",
    "SchemaFileError",
    "SchemaGroup",
    "SchemasError",
    "event_schema",
    "event_type_names",
    "load_schema",
    "payment_record_names",
    "payment_schema",
    "record_name",
    "released_versions",
    "reporting_record_names",
    "reporting_schema",
    "schema_names",
    "subject_for",
    "version_path",
]

SCHEMA_DIR = Path(__file__).resolve().parent
"""The root of the schema files: `case/` (current) and `versions/` (released)."""

NAMESPACE = "ch.nervenbahn.casework"
"""The Avro namespace of every case event and of the named types they use."""

REPORTING_NAMESPACE = "ch.nervenbahn.reporting"
"""The Avro namespace of the records on the reporting topics."""

PAYMENTS_NAMESPACE = "ch.nervenbahn.payments"
"""The Avro namespace of the payment-run events."""

AUDIT_NAMESPACE = "ch.nervenbahn.audit"
"""The Avro namespace of the audit records (signed checkpoints)."""

BENEFITS_NAMESPACE = "ch.nervenbahn.benefits"
"""The Avro namespace of the benefit-application events and the fund's decisions."""

_TYPES_FILE = "_types.avsc"
_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAMED = frozenset({"record", "error", "enum", "fixed"})


class SchemasError(NervenbahnError):
    """One of our schemas (an Avro schema file, the SQL schema of a store) cannot be used."""


class SchemaFileError(SchemasError):
    """A schema file is missing, is not valid JSON, or uses a named type defined nowhere."""


@dataclass(frozen=True)
class SchemaGroup:
    """One folder of current schema files: its records' namespace, and whether named types are
    resolved on loading (shared ones from `_types.avsc` inlined where first used)."""

    folder: str
    namespace: str
    resolve_names: bool
    shared_from: tuple[str, ...] = ()
    """Other groups whose `_types.avsc` named types this group's schemas may use (by full
    name), e.g. the case group's Actor and SealedPersonalData."""


SCHEMA_GROUPS: dict[str, SchemaGroup] = {
    group.folder: group
    for group in (
        SchemaGroup("case", NAMESPACE, resolve_names=True),
        SchemaGroup("reporting", REPORTING_NAMESPACE, resolve_names=True),
        SchemaGroup("payments", PAYMENTS_NAMESPACE, resolve_names=False),
        SchemaGroup("audit", AUDIT_NAMESPACE, resolve_names=False),
        SchemaGroup("benefits", BENEFITS_NAMESPACE, resolve_names=True, shared_from=("case",)),
    )
}
"""The schema folders by name."""


def schema_names(group: str, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The records of `group` that have a current schema file, sorted (`_types` excluded)."""
    folder = schema_dir / SCHEMA_GROUPS[group].folder
    return sorted(path.stem for path in folder.glob("*.avsc") if not path.stem.startswith("_"))


def load_schema(group: str, name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of record `name` in `group` (e.g. `"case"`, `"CaseOpened"`), as a
    registry gets it: self-contained. SchemaFileError if it is missing, not JSON or not a
    record, or names a type defined nowhere."""
    kind = SCHEMA_GROUPS[group]
    folder = schema_dir / kind.folder
    path = folder / f"{name}.avsc"
    schema = _load_json(path)
    if kind.resolve_names:
        named: dict[str, dict[str, Any]] = {}
        for other in kind.shared_from:
            named.update(_named_types(schema_dir / SCHEMA_GROUPS[other].folder / _TYPES_FILE))
        named.update(_named_types(folder / _TYPES_FILE))
        schema = _inline(schema, kind.namespace, named, set())
    if not isinstance(schema, dict):
        raise SchemaFileError(f"{path}: the schema must be a JSON object (a record)")
    return schema


def record_name(event_type: str, namespace: str = NAMESPACE) -> str:
    """The full Avro record name of an event type, e.g. `ch.nervenbahn.casework.CaseOpened`."""
    return f"{namespace}.{event_type}"


def subject_for(topic: str, event_type: str, namespace: str = NAMESPACE) -> str:
    """The registry subject of an event type on a topic (TopicRecordNameStrategy)."""
    return f"{topic}-{record_name(event_type, namespace)}"


def event_type_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The event types that have a current schema file, sorted."""
    return schema_names("case", schema_dir)


def event_schema(event_type: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of `event_type`, self-contained (shared named types inlined)."""
    return load_schema("case", event_type, schema_dir)


def reporting_record_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The reporting records that have a current schema file, sorted."""
    return schema_names("reporting", schema_dir)


def reporting_schema(name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of reporting record `name` (self-contained: no shared types)."""
    return load_schema("reporting", name, schema_dir)


def payment_record_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The payment event types that have a current schema file, sorted."""
    return schema_names("payments", schema_dir)


def payment_schema(name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of payment event type `name` (self-contained as written)."""
    return load_schema("payments", name, schema_dir)


def version_path(event_type: str, version: int, schema_dir: Path = SCHEMA_DIR) -> Path:
    """Where released version `version` of `event_type` is kept."""
    return schema_dir / "versions" / event_type / f"v{version}.avsc"


def released_versions(
    event_type: str, schema_dir: Path = SCHEMA_DIR
) -> list[tuple[int, dict[str, Any]]]:
    """Every released version of `event_type` as (version, schema), oldest first."""
    folder = schema_dir / "versions" / event_type
    found: list[tuple[int, dict[str, Any]]] = []
    for path in folder.glob("v*.avsc"):
        number = path.stem[1:]
        if not number.isdigit():
            raise SchemaFileError(f"{path}: released versions are named v<N>.avsc")
        found.append((int(number), _load_json(path)))
    return sorted(found, key=lambda item: item[0])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaFileError(f"{path}: no such schema file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaFileError(f"{path}: not a readable JSON schema ({exc})") from exc


def _named_types(path: Path) -> dict[str, dict[str, Any]]:
    """The shared named types by full name; none if the file does not exist."""
    if not path.exists():
        return {}
    definitions = _load_json(path)
    if not isinstance(definitions, list):
        raise SchemaFileError(f"{path}: expected a JSON array of named types")
    named: dict[str, dict[str, Any]] = {}
    for definition in definitions:
        if not isinstance(definition, dict) or definition.get("type") not in _NAMED:
            raise SchemaFileError(f"{path}: every entry must be a record, enum or fixed type")
        named[_fullname(definition, NAMESPACE)] = definition
    return named


def _fullname(definition: dict[str, Any], namespace: str) -> str:
    name = str(definition.get("name", ""))
    if "." in name:
        return name
    return f"{definition.get('namespace', namespace)}.{name}"


def _inline(node: Any, namespace: str, named: dict[str, dict[str, Any]], defined: set[str]) -> Any:
    """`node` with each shared named type defined where it is first used, referenced after."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        fullname = node if "." in node else f"{namespace}.{node}"
        if fullname in defined:
            return fullname
        if fullname not in named:
            raise SchemaFileError(f"type {node!r} is not defined (not in {_TYPES_FILE} either)")
        return _inline(named[fullname], namespace, named, defined)
    if isinstance(node, list):
        return [_inline(branch, namespace, named, defined) for branch in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in _NAMED:
        fullname = _fullname(node, namespace)
        defined.add(fullname)
        inner = fullname.rpartition(".")[0]
        if kind in ("record", "error"):
            fields = [
                {**field, "type": _inline(field.get("type"), inner, named, defined)}
                for field in node.get("fields", [])
            ]
            return {**node, "fields": fields}
        return dict(node)
    if kind == "array":
        return {**node, "items": _inline(node.get("items"), namespace, named, defined)}
    if kind == "map":
        return {**node, "values": _inline(node.get("values"), namespace, named, defined)}
    if isinstance(kind, list | dict) or (isinstance(kind, str) and kind not in _PRIMITIVES):
        return _inline(kind, namespace, named, defined)  # {"type": <a type>} is that type
    return dict(node)
