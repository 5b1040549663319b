"""The legacy importer: history from the previous system, recorded with its original times.

All or nothing: every record (JSON Lines: `recorded_at`, `command`, `data`) is checked by the
same rules as a live command, against the cases as the file builds them up in memory, before
anything is written; then all cases are saved at once and their events marked as imported.
Importing the same file twice records nothing twice (a case's imported history must continue
strictly after what it holds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from domain import commands
from domain.case import Case, Recording
from domain.errors import DomainError, ImportRejectedError

if TYPE_CHECKING:
    from domain.application.cases import CaseService

__all__ = ["ImportReport", "LegacyImporter"]

log = structlog.get_logger("nervenbahn.cases")


@dataclass
class ImportReport:
    """What an import recorded."""

    records: int = 0
    events: int = 0
    cases: int = 0
    seconds: float = 0.0
    cases_by_id: dict[UUID, Case] = field(default_factory=dict, repr=False)


class LegacyImporter:
    """One import into `service` (`CaseService.import_records` runs it)."""

    def __init__(self, service: CaseService, clock: Callable[[], datetime]) -> None:
        self._service = service
        self._clock = clock

    def run(self, lines: Iterable[str]) -> ImportReport:
        """Check every record of `lines`, then record them all; ImportRejectedError names the
        first line that fails, and then nothing is recorded."""
        started = time.perf_counter()
        report = ImportReport()
        batch = _ImportBatch(now=self._clock())
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            batch.line = line_no
            try:
                self._import_one(json.loads(line), batch)
            except (DomainError, ValueError, TypeError, KeyError) as exc:
                raise ImportRejectedError(line_no, _describe(exc)) from exc
            report.records += 1
        cases = list(batch.cases.values())
        report.cases_by_id = batch.cases
        report.events = sum(len(case.pending_events) for case in cases)
        try:
            self._service.save_with_keys(*cases)
        except IntegrityError as exc:
            raise self._explain_conflict(batch) from exc
        report.cases = len(cases)
        report.seconds = time.perf_counter() - started
        log.info(
            "import finished",
            records=report.records,
            events=report.events,
            cases=report.cases,
            duration_ms=round(report.seconds * 1000, 1),
        )
        return report

    def _explain_conflict(self, batch: _ImportBatch) -> ImportRejectedError:
        """Name the first opened case that exists already (checked only when saving failed)."""
        for case_id, line in batch.opened_on_line.items():
            if self._service.recorder.select_events(case_id, limit=1):
                return ImportRejectedError(
                    line, f"case {case_id} is already recorded (was this file imported before?)"
                )
        return ImportRejectedError(None, "a case of the file was changed by someone else meanwhile")

    def _import_one(self, record: dict[str, Any], batch: _ImportBatch) -> None:
        unknown = set(record) - {"recorded_at", "command", "data"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected recorded_at, command, data")
        recorded_at = datetime.fromisoformat(record["recorded_at"])
        if recorded_at.tzinfo is None:
            raise ValueError("recorded_at: needs a time zone offset")
        if recorded_at > batch.now:
            raise ValueError(f"recorded_at: {record['recorded_at']} lies in the future")
        command = commands.parse_command(record["command"], record["data"])
        rec = Recording(recorded_at, imported=True)
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


@dataclass
class _ImportBatch:
    """The cases an import touches, kept in memory until all records have been checked."""

    now: datetime
    line: int = 0
    cases: dict[UUID, Case] = field(default_factory=dict)
    recorded_until: dict[UUID, datetime] = field(default_factory=dict)
    opened_on_line: dict[UUID, int] = field(default_factory=dict)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)
