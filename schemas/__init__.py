"""The Avro schemas of the bus (case events and reporting facts) and their released versions.

`case/<EventType>.avsc` is the current schema of one domain event type; named types used by
several of them (Actor, BudgetLine, SealedPersonalData) are defined once in `case/_types.avsc`
and inlined on first use by `event_schema`, so that the schema handed to a registry is
self-contained. `versions/<EventType>/v<N>.avsc` keeps every released version, self-contained
as it was registered; `bus.schema_check` checks the current files against all of them.
`reporting/<Record>.avsc` holds the records of the pseudonymised reporting topics (namespace
`ch.nervenbahn.reporting`, self-contained); their released versions live in `versions/` too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "NAMESPACE",
    "REPORTING_NAMESPACE",
    "SCHEMA_DIR",
    "SchemaFileError",
    "event_schema",
    "event_type_names",
    "record_name",
    "released_versions",
    "reporting_record_names",
    "reporting_schema",
    "subject_for",
    "version_path",
]

SCHEMA_DIR = Path(__file__).resolve().parent
"""The root of the schema files: `case/` (current) and `versions/` (released)."""

NAMESPACE = "ch.nervenbahn.casework"
"""The Avro namespace of every case event and of the named types they use."""

REPORTING_NAMESPACE = "ch.nervenbahn.reporting"
"""The Avro namespace of the records on the reporting topics."""

_TYPES_FILE = "_types.avsc"
_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAMED = frozenset({"record", "error", "enum", "fixed"})


class SchemaFileError(Exception):
    """A schema file is missing, is not valid JSON, or uses a named type defined nowhere."""


def record_name(event_type: str, namespace: str = NAMESPACE) -> str:
    """The full Avro record name of an event type, e.g. `ch.nervenbahn.casework.CaseOpened`."""
    return f"{namespace}.{event_type}"


def subject_for(topic: str, event_type: str, namespace: str = NAMESPACE) -> str:
    """The registry subject of an event type on a topic (TopicRecordNameStrategy)."""
    return f"{topic}-{record_name(event_type, namespace)}"


def event_type_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The event types that have a current schema file, sorted."""
    return sorted(
        path.stem for path in (schema_dir / "case").glob("*.avsc") if not path.stem.startswith("_")
    )


def event_schema(event_type: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of `event_type`, self-contained (shared named types inlined)."""
    case_dir = schema_dir / "case"
    schema = _load_json(case_dir / f"{event_type}.avsc")
    named = _named_types(case_dir / _TYPES_FILE)
    expanded = _inline(schema, NAMESPACE, named, set())
    if not isinstance(expanded, dict):
        raise SchemaFileError(f"{event_type}.avsc: the schema must be a JSON object (a record)")
    return expanded


def reporting_record_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The reporting records that have a current schema file, sorted."""
    return sorted(path.stem for path in (schema_dir / "reporting").glob("*.avsc"))


def reporting_schema(name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of reporting record `name` (self-contained: no shared types)."""
    schema = _load_json(schema_dir / "reporting" / f"{name}.avsc")
    expanded = _inline(schema, REPORTING_NAMESPACE, {}, set())
    if not isinstance(expanded, dict):
        raise SchemaFileError(f"{name}.avsc: the schema must be a JSON object (a record)")
    return expanded


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
