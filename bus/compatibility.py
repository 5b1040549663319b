"""May a new schema version follow the earlier ones? BACKWARD_TRANSITIVE, field by field.

A new version is accepted only if a consumer reading with it can still read data written with
*every* earlier version of the subject. The Apache `avro` checker
(`avro.compatibility.ReaderWriterCompatibilityChecker`) decides; this module runs it once per
top-level field so that each problem names its field, and adds what the checker does not look
at: a changed logical type (a decimal whose scale moves from 2 to 3 reads 12.34 as 1.234) and
a default that does not fit its field's type (it would only fail when a consumer needs it).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)

from bus.errors import IncompatibleSchemaError, SchemaError

__all__ = [
    "WHOLE_SCHEMA",
    "SchemaProblem",
    "canonical_text",
    "compatibility_problems",
    "ensure_compatible",
    "field_path",
    "fingerprint",
    "parse_avro",
    "validate_schema",
]

WHOLE_SCHEMA = "(schema)"
"""The `field` of a problem that concerns the schema as a whole (e.g. its record name)."""


@dataclass(frozen=True)
class SchemaProblem:
    """One reason a schema cannot be registered: which subject, which field, what is wrong.

    `kind` is the incompatibility in the registry's words (TYPE_MISMATCH,
    READER_FIELD_MISSING_DEFAULT_VALUE, ..., LOGICAL_TYPE_MISMATCH, INVALID_DEFAULT),
    `location` the path in the new schema (`/fields/7/type`), `version` the earlier version.
    """

    subject: str
    field: str
    message: str
    kind: str = ""
    location: str = ""
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.subject}: {self.field}: {self.message}"


def canonical_text(schema: dict[str, Any]) -> str:
    """The schema as compact JSON with sorted keys: equal schemas give equal text."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: dict[str, Any]) -> str:
    """SHA-256 of the canonical text (docs and defaults included: they are part of a version)."""
    return hashlib.sha256(canonical_text(schema).encode("utf-8")).hexdigest()


_PARSE_ERRORS = (
    avro.errors.AvroException,
    fastavro.schema.SchemaParseException,
    fastavro.schema.UnknownType,
    json.JSONDecodeError,
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
)
"""What the Apache parser and fastavro raise for a malformed schema (translated here)."""


def parse_avro(schema: dict[str, Any]) -> avro.schema.Schema:
    """Parse with the Apache parser (the checker's); raise SchemaError if it is not Avro."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", avro.errors.IgnoredLogicalType)
            return avro.schema.parse(json.dumps(schema))
    except avro.errors.IgnoredLogicalType as exc:
        raise SchemaError(f"{_name_of(schema)}: invalid logical type: {exc}") from exc
    except _PARSE_ERRORS as exc:
        raise SchemaError(f"{_name_of(schema)}: not a valid Avro schema: {exc}") from exc


def validate_schema(subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
    """Problems of one schema on its own: both parsers (the checker's and the codec's) must
    accept it, and every default must fit its field's type."""
    try:
        parsed = parse_avro(schema)
    except SchemaError as exc:
        return [SchemaProblem(subject, WHOLE_SCHEMA, str(exc), kind="INVALID_SCHEMA")]
    problems: list[SchemaProblem] = []
    _check_defaults(subject, parsed, "", problems, set())
    if problems:
        return problems
    try:
        fastavro.parse_schema(schema)
    except _PARSE_ERRORS as exc:
        message = f"{_name_of(schema)}: not a valid Avro schema for fastavro: {exc}"
        return [SchemaProblem(subject, WHOLE_SCHEMA, message, kind="INVALID_SCHEMA")]
    return []


def compatibility_problems(
    subject: str, schema: dict[str, Any], earlier: Sequence[tuple[int, dict[str, Any]]]
) -> list[SchemaProblem]:
    """Why `schema` cannot read data written with each earlier (version, schema); [] if it can."""
    reader = parse_avro(schema)
    problems: list[SchemaProblem] = []
    for version, old in earlier:
        writer = parse_avro(old)
        problems.extend(_checker_problems(subject, schema, reader, writer, version))
        problems.extend(_logical_problems(subject, reader, writer, version))
    return problems


def ensure_compatible(
    subject: str, schema: dict[str, Any], earlier: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """Raise IncompatibleSchemaError naming subject and field unless `schema` may follow."""
    problems = validate_schema(subject, schema) or compatibility_problems(subject, schema, earlier)
    if problems:
        first = problems[0]
        message = "; ".join(
            p.message if p.field == first.field else f"{p.field}: {p.message}" for p in problems
        )
        raise IncompatibleSchemaError(subject, first.field, message, problems)


def field_path(schema: dict[str, Any], location: str) -> str:
    """The dotted field path (`lines[].amount`) of a location (`/fields/9/type/items/fields/1`)."""
    names = _named_definitions(schema)
    steps = [step for step in location.split("/") if step]
    node: Any = schema
    parts: list[str] = []
    index = 0
    try:
        while index < len(steps):
            node = names.get(node, node) if isinstance(node, str) else node
            step = steps[index]
            if step == "fields":
                node = node["fields"][int(steps[index + 1])]
                parts.append(str(node["name"]))
                index += 2
                continue
            if step in ("type", "items", "values"):
                node = node[step]
                if step != "type" and parts:
                    parts[-1] += "[]" if step == "items" else "{}"
            elif step.isdigit() and isinstance(node, list):
                node = node[int(step)]
            else:
                break
            index += 1
    except (IndexError, KeyError, ValueError, TypeError):
        pass
    return ".".join(parts)


# --- the checker, one top-level field at a time ---------------------------------------------

_INCOMPATIBLE = SchemaCompatibilityType.incompatible
_NO_DEFAULT = (
    "new field has no default, so data written with version {version} cannot be read; "
    "give it a default"
)
_TYPE_MISMATCH = re.compile(r"reader type: (\S+) not compatible with writer type: (\S+)")


def _checker_problems(
    subject: str,
    schema: dict[str, Any],
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    version: int,
) -> list[SchemaProblem]:
    overall = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if overall.compatibility is not _INCOMPATIBLE:
        return []
    record = avro.schema.RecordSchema
    if not (isinstance(reader, record) and isinstance(writer, record)):
        return _from_result(subject, schema, overall, version, WHOLE_SCHEMA)
    problems: list[SchemaProblem] = []
    if not schema_name_equals(reader, writer):
        problems.append(
            SchemaProblem(
                subject, WHOLE_SCHEMA,
                f"record renamed from {writer.fullname} to {reader.fullname} without an alias "
                f"(written with version {version})",
                kind="NAME_MISMATCH", location="/name", version=version,
            )
        )
    for index, field in enumerate(reader.fields):
        written = lookup_writer_field(writer_schema=writer, reader_field=field)
        if written is None:
            if not field.has_default:
                problems.append(
                    SchemaProblem(
                        subject, field.name, _NO_DEFAULT.format(version=version),
                        kind="READER_FIELD_MISSING_DEFAULT_VALUE",
                        location=f"/fields/{index}", version=version,
                    )
                )
            continue
        result = ReaderWriterCompatibilityChecker().get_compatibility(
            field.type, written.type, "type", ["/", "fields", str(index)]
        )
        if result.compatibility is _INCOMPATIBLE:
            problems.extend(_from_result(subject, schema, result, version, field.name))
    return problems or _from_result(subject, schema, overall, version, WHOLE_SCHEMA)


def _from_result(
    subject: str,
    schema: dict[str, Any],
    result: SchemaCompatibilityResult,
    version: int,
    default_field: str,
) -> list[SchemaProblem]:
    kinds = {incompatibility.name.upper() for incompatibility in result.incompatibilities}
    kind = kinds.pop() if len(kinds) == 1 else "INCOMPATIBLE"
    if kind == "READER_FIELD_MISSING_DEFAULT_VALUE":
        message = _NO_DEFAULT.format(version=version)
    else:
        details = "; ".join(_describe(text) for text in sorted(result.messages))
        message = f"{details} (written with version {version})"
    return [
        SchemaProblem(
            subject,
            field_path(schema, location) or default_field,
            message,
            kind=kind,
            location=location,
            version=version,
        )
        # avro's merge() adds the root "/" whenever a compatible part follows an incompatible
        # one, and a writer union restarts at "/": it names a field only if nothing else does.
        for location in sorted(result.locations - {"/"}) or ["/"]
    ]


def _describe(checker_message: str) -> str:
    match = _TYPE_MISMATCH.fullmatch(checker_message)
    if match:
        return f"type changed from {match.group(2)} to {match.group(1)}"
    return checker_message


# --- what the checker does not look at ------------------------------------------------------


def _logical(schema: avro.schema.Schema) -> str:
    props = schema.props
    logical = props.get("logicalType")
    if logical is None:
        return "no logical type"
    if logical == "decimal":
        return f"decimal({props.get('precision')},{props.get('scale', 0)})"
    return str(logical)


def _logical_problems(
    subject: str, reader: avro.schema.Schema, writer: avro.schema.Schema, version: int
) -> list[SchemaProblem]:
    problems: list[SchemaProblem] = []
    seen: set[tuple[int, int]] = set()

    def walk(new: avro.schema.Schema, old: avro.schema.Schema, path: str, location: str) -> None:
        if (id(new), id(old)) in seen:
            return
        seen.add((id(new), id(old)))
        if isinstance(new, avro.schema.RecordSchema) and isinstance(old, avro.schema.RecordSchema):
            for index, field in enumerate(new.fields):
                written = lookup_writer_field(writer_schema=old, reader_field=field)
                if written is not None:
                    walk(field.type, written.type, _join(path, field.name),
                         f"{location}/fields/{index}/type")
        elif isinstance(new, avro.schema.ArraySchema) and isinstance(old, avro.schema.ArraySchema):
            walk(new.items, old.items, f"{path}[]", f"{location}/items")
        elif isinstance(new, avro.schema.MapSchema) and isinstance(old, avro.schema.MapSchema):
            walk(new.values, old.values, f"{path}{{}}", f"{location}/values")
        elif _logical(new) != _logical(old) and not isinstance(new, avro.schema.UnionSchema):
            problems.append(
                SchemaProblem(
                    subject, path or WHOLE_SCHEMA,
                    f"logical type changed from {_logical(old)} to {_logical(new)}: values "
                    f"written with version {version} would be read wrongly",
                    kind="LOGICAL_TYPE_MISMATCH", location=location, version=version,
                )
            )

    walk(reader, writer, "", "")
    return problems


def _check_defaults(
    subject: str,
    schema: avro.schema.Schema,
    path: str,
    problems: list[SchemaProblem],
    seen: set[int],
) -> None:
    if id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema, avro.schema.RecordSchema):
        for field in schema.fields:
            field_name = _join(path, field.name)
            if field.has_default and not _fits(field.type, field.default):
                problems.append(
                    SchemaProblem(
                        subject, field_name,
                        f"default {field.default!r} does not fit the field's type "
                        f"{_type_name(field.type)}",
                        kind="INVALID_DEFAULT",
                    )
                )
            _check_defaults(subject, field.type, field_name, problems, seen)
    elif isinstance(schema, avro.schema.ArraySchema):
        _check_defaults(subject, schema.items, f"{path}[]", problems, seen)
    elif isinstance(schema, avro.schema.MapSchema):
        _check_defaults(subject, schema.values, f"{path}{{}}", problems, seen)
    elif isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            _check_defaults(subject, branch, path, problems, seen)


_SIMPLE_DEFAULTS: dict[str, Callable[[Any], bool]] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool)
    and -(2**31) <= value < 2**31,
    "long": lambda value: isinstance(value, int) and not isinstance(value, bool)
    and -(2**63) <= value < 2**63,
    "float": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "double": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "bytes": lambda value: isinstance(value, str),
    "string": lambda value: isinstance(value, str),
    "fixed": lambda value: isinstance(value, str),
}


def _fits(schema: avro.schema.Schema, value: Any) -> bool:
    """Does a JSON default fit the type (a union's default fits its first branch)?"""
    if isinstance(schema, avro.schema.UnionSchema):
        return bool(schema.schemas) and _fits(schema.schemas[0], value)
    if isinstance(schema, avro.schema.EnumSchema):
        return value in schema.symbols
    if isinstance(schema, avro.schema.ArraySchema):
        return isinstance(value, list) and all(_fits(schema.items, item) for item in value)
    if isinstance(schema, avro.schema.MapSchema):
        return isinstance(value, dict) and all(_fits(schema.values, v) for v in value.values())
    if isinstance(schema, avro.schema.RecordSchema):
        return isinstance(value, dict) and all(
            _fits(field.type, value[field.name]) if field.name in value else field.has_default
            for field in schema.fields
        )
    check = _SIMPLE_DEFAULTS.get(str(schema.type))
    return check is not None and check(value)


def _type_name(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.UnionSchema):
        return "[" + ", ".join(_type_name(branch) for branch in schema.schemas) + "]"
    if isinstance(schema, avro.schema.NamedSchema):
        return schema.fullname
    return str(schema.type)


def _named_definitions(schema: Any) -> dict[str, dict[str, Any]]:
    """Every named type defined inside `schema`, by full and by short name."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, namespace)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "error", "enum", "fixed") and "name" in node:
                name = str(node["name"])
                inner = name.rpartition(".")[0] if "." in name else node.get("namespace", namespace)
                short = name.rpartition(".")[2]
                found[f"{inner}.{short}" if inner else short] = node
                found.setdefault(short, node)
                for field in node.get("fields", []):
                    walk(field.get("type"), inner)
            else:
                for key in ("type", "items", "values"):
                    if key in node:
                        walk(node[key], namespace)

    walk(schema, "")
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _name_of(schema: Any) -> str:
    if isinstance(schema, dict) and "name" in schema:
        return str(schema["name"])
    return "schema"
