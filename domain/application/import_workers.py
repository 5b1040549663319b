"""A legacy import's records checked on every core: each worker process takes the cases of one
partition, checks their records by the rules of a live command and encodes their events
(personal data sealed) ready for the store; the importer's process then records them all in
one transaction (one writer: the hash chain and the order of versions are its alone).

Why: checking is nearly all of an import's time and the cases are independent of each other.
Measured before (3,000 cases, 30,000 events, SQLite, CPU per event, one core): parsing the JSON
11 µs, validating the commands (pydantic) 48 µs, the domain rules 54 µs, encoding and sealing
55 µs (sealing alone 8 µs), inserting with the hash chain and committing 23 µs. Everything but
the insert moves to the workers.

A case's records go to the partition of the text of their `case_id` (found in the line
without parsing it; checked against the parsed record), so every record of a case that the
file opens is checked in one worker, in the file's order. Anything a worker cannot decide
alone hands the whole import back to the serial path, which checks it as before: a record for
a case the store holds (or one opened in another partition), an advance (it needs the benefits
store), a person who has a data key already or was erased, a person opened in two partitions.
An error is the first failing line of the partitions' first failing lines: the very line the
serial path names, since cases do not depend on each other.

Workers are forked (not spawned): they inherit the lines, the reference data and the service
without pickling them, and start in milliseconds (the parent's other threads, a PostgreSQL
pool's, are not copied; the workers use none of their locks). They never touch the parent's
store or key store: data keys for the persons they seal are made in the worker, wrapped with
the master key, and stored by the parent just before the events (`CaseService.record_imported`).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain import commands
from domain.application.forking import end_with_parent
from domain.case import Case, Recording
from domain.errors import DomainError
from domain.personal_data import MemoryKeyStore

if TYPE_CHECKING:
    from domain.application.cases import CaseService

__all__ = [
    "CHECKED_ERRORS",
    "CheckedCase",
    "CheckedImport",
    "ImportJob",
    "check_on_all_cores",
    "check_record",
    "cores",
    "describe",
]

CHECKED_ERRORS = (DomainError, ValueError, TypeError, KeyError)
"""What a record's check raises for a bad record (ImportRejectedError names its line)."""

_CASE_ID = re.compile(r'"case_id"\s*:\s*"([^"\\]*)"')


_JOB: ImportJob | None = None
"""The job a forked worker inherited (set by the pool's initializer)."""


def cores() -> int:
    """The worker processes an import may use: the cores this process may run on, or 1
    where processes cannot be forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1:  # a fork copies other threads' held locks (a deadlock)
        return 1
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def check_record(record: dict[str, Any], now: datetime) -> tuple[datetime, commands.Command]:
    """A record's recorded time and command; ValueError/DomainError naming the field if not."""
    unknown = set(record) - {"recorded_at", "command", "data"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected recorded_at, command, data")
    recorded_at = datetime.fromisoformat(record["recorded_at"])
    if recorded_at.tzinfo is None:
        raise ValueError("recorded_at: needs a time zone offset")
    if recorded_at > now:
        raise ValueError(f"recorded_at: {record['recorded_at']} lies in the future")
    return recorded_at, commands.parse_command(record["command"], record["data"])


def describe(exc: BaseException) -> str:
    """A record's error as the import names it."""
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)


@dataclass(frozen=True)
class ImportJob:
    """What every worker inherits: the lines, the service (reference data, rules, mapper) and
    how the import records (its time, who, from where)."""

    service: CaseService
    lines: Sequence[str]
    partitions: int
    now: datetime
    recording: Recording
    """The recording of every imported event; `recorded_at` is each record's own."""


@dataclass
class CheckedCase:
    """One case the file opens, checked: its events encoded for the store."""

    case_id: UUID
    opened_on_line: int
    stored: list[StoredEvent]


@dataclass
class CheckedImport:
    """A partition's outcome (and, merged, the import's): checked cases in the order the file
    opens them, new persons' wrapped keys, the first failing line, or why the serial path must
    decide."""

    records: int = 0
    cases: list[CheckedCase] = field(default_factory=list)
    keys: list[tuple[UUID, bytes]] = field(default_factory=list)
    error: tuple[int, str] | None = None
    serial_because: str | None = None


def check_on_all_cores(job: ImportJob) -> Iterable[CheckedImport]:
    """Each partition's outcome, the partitions checked in forked workers at once."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(job.partitions, mp_context=context, initializer=_adopt,
                             initargs=(job, os.getpid())) as pool:
        return list(pool.map(_check_partition, range(job.partitions)))


def _adopt(job: ImportJob, parent: int) -> None:
    global _JOB
    _JOB = job
    gc.disable()  # a worker lives for one import (see importer._collector_paused)
    end_with_parent(parent)  # killed, the importer leaves no worker waiting for ever


def _check_partition(index: int) -> CheckedImport:
    assert _JOB is not None
    return _Partition(_JOB, index).check()


class _Partition:
    """The records of one partition, checked in a worker in the file's order."""

    def __init__(self, job: ImportJob, index: int) -> None:
        self._job = job
        self._index = index
        self._keys = MemoryKeyStore()
        self._cases: dict[UUID, Case] = {}
        self._opened_on_line: dict[UUID, int] = {}

    def check(self) -> CheckedImport:
        outcome = CheckedImport()
        for line_no, line in enumerate(self._job.lines, start=1):
            if not line.strip():
                continue
            match = _CASE_ID.search(line)
            key = match.group(1) if match else ""
            if zlib.crc32(key.encode()) % self._job.partitions != self._index:
                continue
            outcome.records += 1
            try:
                outcome.serial_because = self._check_one(json.loads(line), key, line_no)
            except CHECKED_ERRORS as exc:
                outcome.error = (line_no, describe(exc))
                return outcome
            if outcome.serial_because is not None:
                return outcome
        self._encode(outcome)
        return outcome

    def _check_one(self, record: dict[str, Any], key: str, line_no: int) -> str | None:
        """Check a record against its case; why the serial path must decide it, if so."""
        recorded_at, command = check_record(record, self._job.now)
        if record["data"].get("case_id") != (key or None):
            return "a record's case_id is not where the line's text puts it"
        rec = Recording(recorded_at, imported=True, recorded_by=self._job.recording.recorded_by,
                        origin=self._job.recording.origin)
        if isinstance(command, commands.OpenCase):
            case_id = command.case_id
            if case_id is None or case_id in self._cases:
                raise ValueError("data.case_id: an imported open_case needs a case id of its own")
            self._cases[case_id] = Case.open(command, rec, self._job.service.reference)
            self._opened_on_line[case_id] = line_no
            return None
        assert isinstance(command, commands.CaseCommand)
        if isinstance(command, commands.StartAdvance | commands.EndAdvance):
            return "an advance needs the benefits store"
        case = self._cases.get(command.case_id)
        if case is None:
            return f"case {command.case_id} is not opened in this partition of the file"
        self._job.service.dispatch(case, command, rec)
        return None

    def _encode(self, outcome: CheckedImport) -> None:
        """Encode the cases' events for the store, sealing personal data with new keys."""
        mapper = self._job.service.mapper_sealing_with(
            self._job.service.vault.with_keystore(self._keys))
        for case_id, case in self._cases.items():
            stored = [mapper.to_stored_event(event) for event in case.collect_events()]
            outcome.cases.append(CheckedCase(case_id, self._opened_on_line[case_id], stored))
        outcome.keys = list(self._keys.keys.items())
