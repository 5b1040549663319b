"""The id catalogue: one global schema id per released version of every record, committed.

A Confluent-framed message names its writer schema by a 4-byte id. Ids handed out in order of
first publication differ between installations (two installations agreed on 1 of 22 ids) and
break replay when an installation switches registries (issue 13). So every released version
(`versions/<Record>/v<N>.avsc`) gets its id here, once, in `catalogue.json`:

    {"entries": [{"id": 1, "record": "ch.nervenbahn.casework.AssessmentCompleted",
                  "version": 1, "fingerprint": "<sha-256 of the canonical schema text>"}, …]}

Ids are fixed once assigned and never reused: `nervenbahn schemas release` appends the next
one (`SchemaCatalogue.with_release`); `nervenbahn schemas check` refuses a released version
without an entry or whose file no longer has the entry's fingerprint. The first ids were
given in a fixed order (group as in `SCHEMA_GROUPS`, then record, then version).

Catalogue ids stay below `LOCAL_ID_BASE`; an embedded registry gives a schema that is not in the
catalogue (unreleased: during development, a test's own schema) an id from `LOCAL_ID_BASE` up,
so that a local id can never name a released schema.

This module only reads and writes the file and checks its own consistency; the fingerprint of
a schema is computed by `bus.compatibility.fingerprint` (schemas/ imports nothing of bus/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import SCHEMA_DIR, SchemaFileError

__all__ = [
    "CATALOGUE_FILE",
    "LOCAL_ID_BASE",
    "CatalogueEntry",
    "SchemaCatalogue",
    "catalogue_path",
    "load_catalogue",
    "write_catalogue",
]

CATALOGUE_FILE = "catalogue.json"
"""The catalogue's file name in the schema root."""

LOCAL_ID_BASE = 100_000
"""The first id of the local range: ids an embedded registry gives schemas not in the catalogue."""

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_RECORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class CatalogueEntry:
    """One released version of one record and its global id."""

    schema_id: int
    record: str
    """The full Avro record name, e.g. ch.nervenbahn.casework.CaseOpened."""
    version: int
    """The released version: versions/<Record>/v<version>.avsc, and the registry version."""
    fingerprint: str
    """`bus.compatibility.fingerprint` of the released schema."""


@dataclass(frozen=True)
class SchemaCatalogue:
    """Every catalogue entry, checked on construction: ids unique and below `LOCAL_ID_BASE`,
    one entry per record and version, one per fingerprint."""

    entries: tuple[CatalogueEntry, ...]

    def __post_init__(self) -> None:
        _refuse_repeats("id", [entry.schema_id for entry in self.entries])
        _refuse_repeats("record version", [(e.record, e.version) for e in self.entries])
        _refuse_repeats("fingerprint", [entry.fingerprint for entry in self.entries])

    def by_fingerprint(self, fingerprint: str) -> CatalogueEntry | None:
        """The entry of the released schema with this fingerprint; None if it is not released."""
        return next((e for e in self.entries if e.fingerprint == fingerprint), None)

    def entry(self, record: str, version: int) -> CatalogueEntry | None:
        """The entry of released `version` of `record` (full name); None if there is none."""
        return next((e for e in self.entries if (e.record, e.version) == (record, version)), None)

    def latest_version(self, record: str) -> int:
        """The newest released version of `record` (full name); 0 if none is."""
        return max((e.version for e in self.entries if e.record == record), default=0)

    def with_release(self, record: str, version: int, fingerprint: str) -> SchemaCatalogue:
        """This catalogue with a newly released version appended under the next free id; as it
        is if that version is already there with this fingerprint (its id is kept)."""
        known = self.entry(record, version)
        if known is not None and known.fingerprint == fingerprint:
            return self
        next_id = max((e.schema_id for e in self.entries), default=0) + 1
        return SchemaCatalogue(
            (*self.entries, CatalogueEntry(next_id, record, version, fingerprint))
        )


def catalogue_path(schema_dir: Path = SCHEMA_DIR) -> Path:
    """Where the catalogue of the schema root `schema_dir` is kept."""
    return schema_dir / CATALOGUE_FILE


def load_catalogue(schema_dir: Path = SCHEMA_DIR) -> SchemaCatalogue:
    """The catalogue of `schema_dir`; an empty one if the file does not exist (a schema tree
    that has released nothing yet). SchemaFileError naming the entry if it is malformed."""
    path = catalogue_path(schema_dir)
    if not path.exists():
        return SchemaCatalogue(())
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaFileError(f"{path}: not a readable JSON catalogue ({exc})") from exc
    items = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise SchemaFileError(f"{path}: expected an object with a list of 'entries'")
    entries = tuple(_entry(path, number, item) for number, item in enumerate(items))
    try:
        return SchemaCatalogue(entries)
    except ValueError as exc:
        raise SchemaFileError(f"{path}: {exc}") from exc


def write_catalogue(catalogue: SchemaCatalogue, schema_dir: Path = SCHEMA_DIR) -> Path:
    """Write `catalogue` to `schema_dir` (entries in id order, one per line); its path."""
    lines = [
        json.dumps({"id": e.schema_id, "record": e.record, "version": e.version,
                    "fingerprint": e.fingerprint})
        for e in sorted(catalogue.entries, key=lambda e: e.schema_id)
    ]
    path = catalogue_path(schema_dir)
    body = ",\n    ".join(lines)
    path.write_text('{\n  "entries": [\n    ' + body + "\n  ]\n}\n", encoding="utf-8")
    return path


def _entry(path: Path, number: int, item: Any) -> CatalogueEntry:
    where = f"{path}: entry {number}"
    if not isinstance(item, dict):
        raise SchemaFileError(f"{where}: must be an object")
    schema_id, record = item.get("id"), item.get("record")
    version, fingerprint = item.get("version"), item.get("fingerprint")
    if not isinstance(schema_id, int) or isinstance(schema_id, bool) or not (
        0 < schema_id < LOCAL_ID_BASE
    ):
        raise SchemaFileError(f"{where}: 'id' must be an integer from 1 to {LOCAL_ID_BASE - 1}")
    if not isinstance(record, str) or not _RECORD.fullmatch(record):
        raise SchemaFileError(f"{where}: 'record' must be a full Avro record name")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaFileError(f"{where}: 'version' must be a positive integer")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise SchemaFileError(f"{where}: 'fingerprint' must be 64 lower-case hex digits")
    return CatalogueEntry(schema_id, record, version, fingerprint)


def _refuse_repeats(what: str, values: Iterable[object]) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears in more than one entry")
        seen.add(value)
