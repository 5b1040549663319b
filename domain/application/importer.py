"""The legacy importer: history from the previous system, recorded with its original times.

All or nothing: every record (JSON Lines: `recorded_at`, `command`, `data`) is checked by the
same rules as a live command, against the cases as the file builds them up in memory, before
anything is written; then all cases are saved at once and their events marked as imported.
Importing the same file twice records nothing twice (a case's imported history must continue
strictly after what it holds).

Run by `nervenbahn import`, an import is a migration step (`MigrationStep`): an administrator
(declared) with an established identity (the operating-system user) runs it, into a store that
holds no live events yet unless forced with a reason; every event it records carries that
identity and its origin (who, when, which file, the file's SHA-256, the reason if forced), and
the digest is checked against the lines actually read before anything is saved. Without a step
(code that loads history into a service of its own: tests, fixtures) none of this is checked and
the events carry no origin.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from domain import commands
from domain.application.import_workers import (
    CHECKED_ERRORS,
    CheckedImport,
    ImportJob,
    check_on_all_cores,
    check_record,
    cores,
    describe,
)
from domain.case import Case, Recording
from domain.commands import Actor
from domain.errors import ImportRejectedError, RuleViolationError
from domain.identity import IMPORTING_ROLE, EstablishedIdentity, ImportOrigin

if TYPE_CHECKING:
    from domain.application.cases import CaseService

__all__ = ["MAX_REASON", "PARALLEL_FROM", "ImportReport", "LegacyImporter", "MigrationStep"]

log = structlog.get_logger("nervenbahn.cases")

MAX_REASON = 500
"""The longest reason a forced import may give (it is recorded on every imported event)."""
PARALLEL_FROM = 2000
"""Records from which an import is checked on all cores: below, starting the worker
processes (fork, ~20 ms) costs more than it saves."""


@dataclass
class ImportReport:
    """What an import recorded."""

    records: int = 0
    events: int = 0
    cases: int = 0
    seconds: float = 0.0
    cases_by_id: Mapping[UUID, Case] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MigrationStep:
    """An import as a migration step: who runs it (the declared actor and the identity the
    edge established), which file (its name and SHA-256), and, to import into a store that
    already holds live events, the reason (None: not forced)."""

    importer: Actor
    recorded_by: EstablishedIdentity
    file_name: str
    file_sha256: str
    forced_reason: str | None = None


class LegacyImporter:
    """One import into `service` (`CaseService.import_records` runs it)."""

    def __init__(
        self, service: CaseService, clock: Callable[[], datetime], step: MigrationStep | None,
        *, partitions: int | None = None, parallel_from: int = PARALLEL_FROM,
    ) -> None:
        self._service = service
        self._clock = clock
        self._step = step
        self._partitions = cores() if partitions is None else partitions
        self._parallel_from = parallel_from

    def run(self, lines: Iterable[str]) -> ImportReport:
        """Check every record of `lines`, then record them all; ImportRejectedError names the
        first line that fails, and then nothing is recorded. A migration step is admitted
        first (RuleViolationError naming the field and rule if not). With more than one core
        the lines are read first, and a file of at least `parallel_from` lines is checked on
        all of them (`domain.application.import_workers`)."""
        started = time.perf_counter()
        now = self._clock()
        origin = self._admit(now)
        report = None
        with _collector_paused():
            if self._partitions > 1:
                lines = self._read(lines, _ImportBatch(now=now, origin=origin))
                if len(lines) >= self._parallel_from:
                    report = self._run_on_all_cores(lines, _ImportBatch(now=now, origin=origin))
            if report is None:
                report = self._run_serially(lines, _ImportBatch(now=now, origin=origin))
        report.seconds = time.perf_counter() - started
        log.info(
            "import finished",
            records=report.records,
            events=report.events,
            cases=report.cases,
            duration_ms=round(report.seconds * 1000, 1),
        )
        return report

    def _read(self, lines: Iterable[str], batch: _ImportBatch) -> Sequence[str]:
        """All lines, read before any is checked. If reading fails (a line the edge refuses),
        the lines before are checked first, so that the first bad line is named as the serial
        path names it, and then the reading's error is raised."""
        if isinstance(lines, Sequence):
            return lines
        read: list[str] = []
        try:
            read.extend(lines)
        except Exception:
            self._check_serially(read, batch)
            raise
        return read

    def _run_serially(self, lines: Iterable[str], batch: _ImportBatch) -> ImportReport:
        records, digest = self._check_serially(lines, batch)
        self._check_digest(digest)
        report = ImportReport(records=records)
        cases = list(batch.cases.values())
        report.cases_by_id = batch.cases
        report.events = sum(len(case.pending_events) for case in cases)
        try:
            self._service.save_with_keys(*cases)
        except IntegrityError as exc:
            raise self._explain_conflict(batch) from exc
        report.cases = len(cases)
        return report

    def _check_serially(self, lines: Iterable[str], batch: _ImportBatch) -> tuple[int, Any]:
        """Check every record against the cases of `batch`, in order; the records checked
        and the SHA-256 of the lines read."""
        records = 0
        digest = hashlib.sha256()
        for line_no, line in enumerate(lines, start=1):
            digest.update(line.encode("utf-8"))
            if not line.strip():
                continue
            batch.line = line_no
            try:
                self._import_one(json.loads(line), batch)
            except CHECKED_ERRORS as exc:
                raise ImportRejectedError(line_no, describe(exc)) from exc
            records += 1
        return records, digest

    def _run_on_all_cores(self, lines: Sequence[str], batch: _ImportBatch) -> ImportReport | None:
        """Check the records in worker processes, then record them here; None if the serial
        path must decide (why is logged)."""
        job = ImportJob(self._service, lines, self._partitions, batch.now,
                        Recording(batch.now, imported=True, recorded_by=self._recorded_by,
                                  origin=batch.origin))
        checked = self._merged(check_on_all_cores(job))
        if checked.serial_because is not None:
            log.info("import checked serially", reason=checked.serial_because)
            return None
        if checked.error is not None:
            raise ImportRejectedError(*checked.error)
        digest = hashlib.sha256()
        for line in lines:
            digest.update(line.encode("utf-8"))
        self._check_digest(digest)
        checked.cases.sort(key=lambda case: case.opened_on_line)
        batch.opened_on_line = {case.case_id: case.opened_on_line for case in checked.cases}
        stored = [event for case in checked.cases for event in case.stored]
        try:
            self._service.record_imported(stored, checked.keys)
        except IntegrityError as exc:
            raise self._explain_conflict(batch, exc) from exc
        return ImportReport(records=checked.records, events=len(stored),
                            cases=len(checked.cases),
                            cases_by_id=_RecordedCases(self._service, batch.opened_on_line))

    def _merged(self, outcomes: Iterable[CheckedImport]) -> CheckedImport:
        """The partitions' outcomes as one: the first failing line of all, or why the serial
        path must decide (a case or person in two partitions, a person the vault knows)."""
        merged = CheckedImport()
        errors = []
        for outcome in outcomes:
            if outcome.serial_because is not None:
                return outcome
            if outcome.error is not None:
                errors.append(outcome.error)
            merged.records += outcome.records
            merged.cases.extend(outcome.cases)
            merged.keys.extend(outcome.keys)
        if errors:
            merged.error = min(errors)
            return merged
        if len({case.case_id for case in merged.cases}) != len(merged.cases):
            merged.serial_because = "a case is opened in two partitions of the file"
        elif len({person_id for person_id, _ in merged.keys}) != len(merged.keys):
            merged.serial_because = "a person is opened in two partitions of the file"
        elif any(self._service.vault.knows(person_id) for person_id, _ in merged.keys):
            merged.serial_because = "a person has a data key already (or was erased)"
        return merged

    def _check_digest(self, digest: Any) -> None:
        if self._step is not None and digest.hexdigest() != self._step.file_sha256:
            raise ImportRejectedError(
                None, f"file_sha256: the lines read do not have the SHA-256 "
                f"{self._step.file_sha256} the file had when the import began (was it changed "
                "meanwhile?)")

    def _admit(self, now: datetime) -> ImportOrigin | None:
        """The origin every event of the step carries; RuleViolationError if the step may not
        run: not an administrator, no established identity, a store in live use not forced
        (or forced without a reason)."""
        step = self._step
        if step is None:
            return None
        if step.importer.role != IMPORTING_ROLE:
            raise RuleViolationError(
                "import-by-administrator",
                f"actor.role: an import is a migration step for an {IMPORTING_ROLE}, not for a "
                f"{step.importer.role} ({step.importer.user_id}); nothing was imported")
        if not step.recorded_by.is_known:
            raise RuleViolationError(
                "import-identity-established",
                "recorded_by: an import needs the identity of who runs it (the operating-system "
                "user); nothing was imported")
        if step.forced_reason is not None and not (
            step.forced_reason.strip() and len(step.forced_reason) <= MAX_REASON
        ):
            raise RuleViolationError(
                "import-forced-with-reason",
                f"reason: a forced import needs a reason of 1-{MAX_REASON} characters "
                "(--reason TEXT); nothing was imported")
        if step.forced_reason is None and self._service.has_live_events():
            raise RuleViolationError(
                "import-before-live-use",
                "force: the store already holds live (not imported) events; an import is a "
                "migration step before live use; to import anyway give --force --reason TEXT "
                "(the reason is recorded on every imported event); nothing was imported")
        return ImportOrigin(step.importer, now, step.file_name, step.file_sha256,
                            step.forced_reason)

    def _explain_conflict(
        self, batch: _ImportBatch, conflict: IntegrityError | None = None
    ) -> ImportRejectedError:
        """Name the first opened case that exists already (checked only when saving failed),
        else what the store said (`CaseService.record_imported` names a person)."""
        for case_id, line in batch.opened_on_line.items():
            if self._service.recorder.select_events(case_id, limit=1):
                return ImportRejectedError(
                    line, f"case {case_id} is already recorded (was this file imported before?)"
                )
        if conflict is not None and str(conflict).startswith("person "):
            return ImportRejectedError(None, str(conflict))
        return ImportRejectedError(None, "a case of the file was changed by someone else meanwhile")

    def _import_one(self, record: dict[str, Any], batch: _ImportBatch) -> None:
        recorded_at, command = check_record(record, batch.now)
        rec = Recording(recorded_at, imported=True, recorded_by=self._recorded_by,
                        origin=batch.origin)
        if isinstance(command, commands.OpenCase):
            case_id = command.case_id
            if case_id is None or case_id in batch.cases:
                raise ValueError("data.case_id: an imported open_case needs a case id of its own")
            batch.cases[case_id] = Case.open(command, rec, self._service.reference)
            batch.opened_on_line[case_id] = batch.line
            return
        assert isinstance(command, commands.CaseCommand)
        case = batch.cases.get(command.case_id)
        if case is None:
            case = batch.cases[command.case_id] = self._service.case_for(
                command.actor, command.case_id
            )
            batch.recorded_until[case.id] = case.modified_on
        floor = batch.recorded_until.get(case.id)
        if floor is not None and recorded_at <= floor:
            # Imported history continues a recorded case strictly after what it holds, so
            # that importing the same file twice cannot record anything twice.
            raise ValueError(
                f"recorded_at: {record['recorded_at']} is not after the case's last recorded "
                f"event ({floor.isoformat()}); was this file imported before?"
            )
        self._service.dispatch(case, command, rec)

    @property
    def _recorded_by(self) -> EstablishedIdentity:
        return self._service.identity if self._step is None else self._step.recorded_by


@dataclass
class _ImportBatch:
    """The cases an import touches, kept in memory until all records have been checked."""

    now: datetime
    origin: ImportOrigin | None = None
    line: int = 0
    cases: dict[UUID, Case] = field(default_factory=dict)
    recorded_until: dict[UUID, datetime] = field(default_factory=dict)
    opened_on_line: dict[UUID, int] = field(default_factory=dict)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for an import: the cases it builds up stay alive to
    the end, and the collector walked them again and again (a fifth of a 30,000-event
    import's time, growing with its size). What becomes garbage meanwhile is freed by
    reference counting; cycles wait for the next collection after the import."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _RecordedCases(Mapping[UUID, Case]):
    """The cases an import checked in worker processes, read from the store when first asked
    for (the workers' aggregates stay there: sending them back would cost every import what
    only the demo uses)."""

    def __init__(self, service: CaseService, opened_on_line: dict[UUID, int]) -> None:
        self._service = service
        self._ids = opened_on_line
        self._read: dict[UUID, Case] = {}

    def __getitem__(self, case_id: UUID) -> Case:
        if case_id not in self._ids:
            raise KeyError(case_id)
        if case_id not in self._read:
            self._read[case_id] = self._service.get_case(case_id)
        return self._read[case_id]

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
