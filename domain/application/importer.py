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

import hashlib
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
from domain.commands import Actor
from domain.errors import DomainError, ImportRejectedError, RuleViolationError
from domain.identity import IMPORTING_ROLE, EstablishedIdentity, ImportOrigin

if TYPE_CHECKING:
    from domain.application.cases import CaseService

__all__ = ["MAX_REASON", "ImportReport", "LegacyImporter", "MigrationStep"]

log = structlog.get_logger("nervenbahn.cases")

MAX_REASON = 500
"""The longest reason a forced import may give (it is recorded on every imported event)."""


@dataclass
class ImportReport:
    """What an import recorded."""

    records: int = 0
    events: int = 0
    cases: int = 0
    seconds: float = 0.0
    cases_by_id: dict[UUID, Case] = field(default_factory=dict, repr=False)


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
        self, service: CaseService, clock: Callable[[], datetime], step: MigrationStep | None
    ) -> None:
        self._service = service
        self._clock = clock
        self._step = step

    def run(self, lines: Iterable[str]) -> ImportReport:
        """Check every record of `lines`, then record them all; ImportRejectedError names the
        first line that fails, and then nothing is recorded. A migration step is admitted
        first (RuleViolationError naming the field and rule if not)."""
        started = time.perf_counter()
        report = ImportReport()
        now = self._clock()
        batch = _ImportBatch(now=now, origin=self._admit(now))
        digest = hashlib.sha256()
        for line_no, line in enumerate(lines, start=1):
            digest.update(line.encode("utf-8"))
            if not line.strip():
                continue
            batch.line = line_no
            try:
                self._import_one(json.loads(line), batch)
            except (DomainError, ValueError, TypeError, KeyError) as exc:
                raise ImportRejectedError(line_no, _describe(exc)) from exc
            report.records += 1
        if self._step is not None and digest.hexdigest() != self._step.file_sha256:
            raise ImportRejectedError(
                None, f"file_sha256: the lines read do not have the SHA-256 "
                f"{self._step.file_sha256} the file had when the import began (was it changed "
                "meanwhile?)")
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)
