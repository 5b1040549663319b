"""The store contract: what the case service promises on whichever store it records into.

Every test goes through real commands (`service.execute(parse_command(...))`) or a real import
file. Each backend module subclasses `StoreContract` once, provides a `store` fixture and the
three hooks, and deletes the base at its bottom (eventsourcing's persistence-test layout).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.application.cases import CaseService
from domain.application.queries import SNAPSHOT_INTERVAL
from domain.commands import Command, parse_command
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    ImportRejectedError,
    InvalidCommandError,
)
from domain.personal_data import ERASED, PersonErasedError
from nervenbahn.container import close_service

__all__ = ["Clock", "StoreContract"]

Clock = Callable[[], datetime]

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
GRENCHEN = 2546  # social region so-oberer-leberberg
SOLOTHURN = 2601  # social region so-solothurn
CASEWORKER = {"user_id": "cw-grenchen", "role": "caseworker", "organisation": "so-oberer-leberberg"}
CASEWORKER_SOLOTHURN = {"user_id": "cw-so", "role": "caseworker", "organisation": "so-solothurn"}

APPLICANT = {
    "given_name": "Zyxwvutsrqp", "family_name": "Vqwkjhxzbn", "ahvn13": "756.1234.5678.97",
    "birth_date": "1980-02-03", "street": "Quxlerweg 17", "postal_code": "2540", "town": "Grenchen",
}
OTHER_MEMBER = {
    "given_name": "Pfnorqxutil", "family_name": "Vqwkjhxzbn", "ahvn13": "7569217076985",
    "birth_date": "2012-09-30", "street": "Quxlerweg 17", "postal_code": "2540", "town": "Grenchen",
}
HOUSEHOLD = {
    "municipality_bfs": GRENCHEN, "household_size": 2,
    "applicant": APPLICANT, "other_members": [OTHER_MEMBER],
}
PERSONAL_DATA = (
    "Zyxwvutsrqp", "Pfnorqxutil", "Vqwkjhxzbn", "Quxlerweg",
    "756.1234.5678.97", "7561234567897", "756.9217.0769.85", "7569217076985",
)
"""Strings that occur nowhere but in the household's personal data."""
STORED_IN_CLEAR = b"so-oberer-leberberg"
"""A case fact that is stored in clear: a scan that misses it sees no event data at all."""


def command(name: str, actor: dict[str, str] = CASEWORKER, **data: Any) -> Command:
    """A validated command as a caller would send it, with a fresh correlation id."""
    return parse_command(name, {"actor": actor, "correlation_id": uuid4(), **data})


def legacy_record(recorded_at: str, name: str, **data: Any) -> str:
    """One line of a legacy import file."""
    data = {"actor": CASEWORKER, "correlation_id": str(uuid4()), **data}
    return json.dumps({"recorded_at": recorded_at, "command": name, "data": data})


LEGACY_CASE_ID = UUID("6f1c0a4e-2b7d-4c39-9a51-0d3e8b2f7c64")
LEGACY_FILE = [
    legacy_record(
        "2025-03-03T09:15:00+01:00", "open_case", case_id=str(LEGACY_CASE_ID),
        application_date="2025-03-01", **HOUSEHOLD,
    ),
    legacy_record(
        "2025-03-20T10:00:00+01:00", "complete_assessment", case_id=str(LEGACY_CASE_ID),
        needs=["financial"], employability="not_employable",
    ),
    legacy_record(
        "2025-04-02T14:30:00+02:00", "grant_support", case_id=str(LEGACY_CASE_ID),
        support_from="2025-03-01", housing="1100", health_insurance="350", income="0",
    ),
    legacy_record(
        "2025-10-15T08:00:00+02:00", "complete_review", case_id=str(LEGACY_CASE_ID),
        outcome="continue",
    ),
]
LEGACY_TIMES = [datetime.fromisoformat(json.loads(line)["recorded_at"]) for line in LEGACY_FILE]


def _with_line(line_no: int, text: str, lines: list[str] = LEGACY_FILE) -> list[str]:
    changed = list(lines)
    changed[line_no - 1] = text
    return changed


BAD_IMPORTS = [
    pytest.param(_with_line(1, "{not json"), 1, "Expecting property name", id="not-json"),
    pytest.param(
        _with_line(2, legacy_record("2025-03-20T10:00:00+01:00", "approve_everything")),
        2, "unknown command", id="unknown-command",
    ),
    pytest.param(
        _with_line(3, legacy_record(
            "2025-04-02T14:30:00", "grant_support", case_id=str(LEGACY_CASE_ID),
            support_from="2025-03-01", housing="1100", health_insurance="350", income="0",
        )),
        3, "time zone", id="no-utc-offset",
    ),
    pytest.param(
        _with_line(3, legacy_record(
            "2025-04-02T14:30:00+02:00", "grant_support", case_id=str(LEGACY_CASE_ID),
            support_from="2025-03-01", health_insurance="350", income="0",
        )),
        3, "housing", id="missing-field",
    ),
    pytest.param(
        _with_line(4, legacy_record(
            "2025-10-15T08:00:00+02:00", "complete_assessment", case_id=str(LEGACY_CASE_ID),
            needs=["housing"], employability="employable",
        )),
        4, "assessment-once-per-intake", id="rule-violation",
    ),
    pytest.param(
        ["", *LEGACY_FILE[:2], json.dumps({**json.loads(LEGACY_FILE[2]), "note": "paper file"})],
        4, "unknown keys ['note']", id="unknown-key-after-blank-line",
    ),
]
"""A legacy file with one bad record, the record's line and a word of the expected reason."""


class ManualClock:
    """The service clock, moved by the test, so that every recorded time is known exactly."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(**delta)
        return self.now


class InterleavingClock:
    """A clock that lets a rival writer record first, the first time it is read.

    The service reads its clock after it has loaded the case and before it saves, so the
    rival's event lands exactly between the loser's read and the loser's write.
    """

    def __init__(self, clock: Clock, rival: Callable[[], object]) -> None:
        self._clock = clock
        self._rival: Callable[[], object] | None = rival

    def __call__(self) -> datetime:
        rival, self._rival = self._rival, None
        if rival is not None:
            rival()
        return self._clock()


def assert_sealed(stored: bytes) -> None:
    """No personal data in `stored`, and `stored` does hold event data (else it proves nothing)."""
    assert STORED_IN_CLEAR in stored, "the scan saw no event data at all"
    found = [text for text in PERSONAL_DATA if text.encode() in stored]
    assert not found, f"personal data stored in clear: {found}"


class StoreContract(ABC):
    """What the case service promises on any store; one tiny subclass per backend."""

    @abstractmethod
    def make_service(self, clock: Clock) -> CaseService:
        """A new service on this test's store (each call opens the same store again), kept."""

    @abstractmethod
    def stored_bytes(self) -> bytes:
        """Everything the store holds, as raw as this backend lets a test read it."""

    @abstractmethod
    def wrapped_keys(self) -> dict[str, bytes]:
        """The wrapped data keys by person id (hex), read behind the service's back."""

    @pytest.fixture(autouse=True)
    def _close_services_afterwards(self, store: None) -> Iterator[None]:
        # `store` is each backend's own fixture; asking for it closes services before it ends.
        self._services: list[CaseService] = []
        yield
        self.close_services()

    def keep(self, service: CaseService) -> CaseService:
        """Register a service to be closed after the test."""
        self._services.append(service)
        return service

    def close_services(self) -> None:
        """Close every service opened so far (SQLite then checkpoints its write-ahead log)."""
        while self._services:
            close_service(self._services.pop())

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def open_supported_case(service: CaseService, clock: ManualClock) -> UUID:
        """Open a case for HOUSEHOLD, assess it and grant support: three events."""
        case_id = service.execute(command("open_case", **HOUSEHOLD)).case_id
        clock.advance(hours=1)
        service.execute(command(
            "complete_assessment", case_id=case_id, needs=["financial"], employability="employable"
        ))
        clock.advance(hours=1)
        service.execute(command(
            "grant_support", case_id=case_id, support_from="2026-06-01",
            housing="1450.50", health_insurance="380", income="200",
        ))
        return case_id

    # --- durability ----------------------------------------------------------------------

    def test_case_lifecycle_reloads_identically_from_a_reopened_store(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        goal_id, measure_id = uuid4(), uuid4()
        steps: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
            ("agree_goal", CASEWORKER, {"goal_id": goal_id, "category": "employment",
                                        "title": "Apply for four jobs a month",
                                        "due_date": "2026-12-31"}),
            ("start_measure", CASEWORKER, {"measure_id": measure_id, "kind": "job_coaching"}),
            ("change_budget", CASEWORKER, {"effective_date": "2026-07-01", "reason": "rent_change",
                                           "housing": "1500", "health_insurance": "380",
                                           "income": "200"}),
            ("record_goal_outcome", CASEWORKER, {"goal_id": goal_id, "outcome": "achieved"}),
            ("complete_measure", CASEWORKER, {"measure_id": measure_id}),
            ("complete_review", CASEWORKER, {"outcome": "continue"}),
            ("hand_over_case", CASEWORKER, {"to_municipality_bfs": SOLOTHURN}),
            ("close_case", CASEWORKER_SOLOTHURN, {"reason": "employment"}),
            ("reopen_case", CASEWORKER_SOLOTHURN, {"reason": "reapplication"}),
        ]
        for name, actor, data in steps:
            clock.advance(days=3)
            service.execute(command(name, actor, case_id=case_id, **data))
        recorded = service.get_case(case_id)
        for person in (recorded.applicant, *recorded.other_members):
            person.open()  # personal data is decrypted on reading, while the store is open
        history = service.history(case_id)
        self.close_services()

        reopened = self.make_service(clock)
        reloaded = reopened.get_case(case_id)

        assert (reloaded.version, reloaded.phase, reloaded.social_region) == (
            12, "intake", "so-solothurn")
        assert reloaded.applicant.to_plain()["given_name"] == "Zyxwvutsrqp"
        assert vars(reloaded) == vars(recorded)
        assert reopened.history(case_id) == history
        assert list(reopened.case_ids()) == [case_id]

    # --- concurrent writers --------------------------------------------------------------

    def test_two_writers_on_one_case_one_wins_and_the_loser_retries(self) -> None:
        clock = ManualClock()
        winner = self.make_service(clock)
        case_id = self.open_supported_case(winner, clock)
        clock.advance(hours=1)
        winning = command("start_measure", case_id=case_id, kind="job_coaching")
        losing = command("agree_goal", case_id=case_id, category="employment",
                         title="Apply for four jobs a month", due_date="2026-09-30")
        rival_results = []
        loser = self.make_service(
            InterleavingClock(clock, lambda: rival_results.append(winner.execute(winning)))
        )

        with pytest.raises(ConcurrentChangeError) as refused:
            loser.execute(losing)

        assert [result.version for result in rival_results] == [4]
        assert refused.value.case_id == case_id
        assert f"case {case_id} was changed by someone else" in str(refused.value)
        assert "reload the case and retry" in str(refused.value)
        history = self.make_service(clock).history(case_id)
        assert [entry.version for entry in history] == [1, 2, 3, 4]
        assert history[-1].correlation_id == winning.correlation_id

        assert loser.execute(losing).version == 5
        history = self.make_service(clock).history(case_id)
        assert [entry.correlation_id for entry in history[3:]] == [
            winning.correlation_id, losing.correlation_id]

    def test_a_writer_goes_on_from_what_another_recorded_since_its_last_command(self) -> None:
        # `first` keeps the case it saved (domain.application.kept_cases); its next command
        # must start from what `second` recorded meanwhile, not from what it kept.
        clock = ManualClock()
        first, second = self.make_service(clock), self.make_service(clock)
        case_id = self.open_supported_case(first, clock)
        measure_id = uuid4()
        second.execute(command("start_measure", case_id=case_id, measure_id=measure_id,
                               kind="job_coaching"))

        done = first.execute(command("complete_measure", case_id=case_id,
                                     measure_id=measure_id, expected_version=4))

        assert done.version == 5
        assert first.execute(command("complete_review", case_id=case_id, outcome="continue",
                                     expected_version=5)).version == 6
        assert vars(self.make_service(clock).get_case(case_id)) == vars(first.get_case(case_id))

    def test_a_lost_save_leaves_nothing_for_the_losers_next_command(self) -> None:
        # The loser had kept the case from its own earlier command; the event it could not
        # save must not be in the case its next command starts from.
        clock = ManualClock()
        rivals: list[Callable[[], object]] = []

        def loser_clock() -> datetime:
            while rivals:
                rivals.pop()()
            return clock()

        loser, winner = self.make_service(loser_clock), self.make_service(clock)
        case_id = self.open_supported_case(loser, clock)
        measure_id, goal_id = uuid4(), uuid4()
        rivals.append(lambda: winner.execute(command(
            "start_measure", case_id=case_id, measure_id=measure_id, kind="job_coaching")))
        losing = command("agree_goal", case_id=case_id, goal_id=goal_id, category="employment",
                         title="Apply for four jobs a month", due_date="2026-09-30")

        with pytest.raises(ConcurrentChangeError):
            loser.execute(losing)

        assert loser.execute(command("complete_measure", case_id=case_id,
                                     measure_id=measure_id)).version == 5
        assert loser.execute(losing).version == 6
        case = self.make_service(clock).get_case(case_id)
        assert list(case.goals) == [goal_id.hex]
        assert vars(case) == vars(loser.get_case(case_id))

    def test_a_case_another_writer_took_past_a_snapshot_loads_whole_where_it_was_young(
        self,
    ) -> None:
        clock = ManualClock()
        early = self.make_service(clock)
        case_id = self.open_supported_case(early, clock)  # seen at version 3: no snapshot yet
        other = self.make_service(clock)
        for _ in range(SNAPSHOT_INTERVAL - 2):
            other.execute(command("complete_review", case_id=case_id, outcome="continue"))
        assert other.snapshots is not None
        assert list(other.snapshots.get(case_id, desc=True, limit=1))

        loaded = early.get_case(case_id)

        assert loaded.version == SNAPSHOT_INTERVAL + 1
        assert vars(loaded) == vars(other.get_case(case_id))
        stale = command("complete_review", case_id=case_id, outcome="continue",
                        expected_version=3)
        with pytest.raises(ConcurrentChangeError):
            early.execute(stale)

    def test_stale_expected_version_is_refused_and_records_nothing(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        service.execute(command("complete_review", case_id=case_id, outcome="continue",
                                expected_version=3))

        with pytest.raises(ConcurrentChangeError, match=str(case_id)):
            service.execute(command("complete_review", case_id=case_id, outcome="continue",
                                    expected_version=3))

        assert [entry.version for entry in service.history(case_id)] == [1, 2, 3, 4]

    def test_opening_an_existing_case_id_is_refused_and_changes_nothing(self) -> None:
        clock = ManualClock()
        first = self.make_service(clock)
        case_id = uuid4()
        first.execute(command("open_case", case_id=case_id, **HOUSEHOLD))
        history, state = first.history(case_id), vars(first.get_case(case_id))
        clock.advance(minutes=5)

        with pytest.raises(InvalidCommandError) as refused:
            self.make_service(clock).execute(command("open_case", case_id=case_id, **HOUSEHOLD))

        assert refused.value.problems == [("case_id", f"a case {case_id} exists already")]
        reopened = self.make_service(clock)
        assert reopened.history(case_id) == history
        assert vars(reopened.get_case(case_id)) == state
        assert list(reopened.case_ids()) == [case_id]

    def test_refused_duplicate_opening_leaves_no_data_key_behind(self) -> None:
        service = self.make_service(ManualClock())
        case_id = uuid4()
        service.execute(command("open_case", case_id=case_id, **HOUSEHOLD))
        keys = self.wrapped_keys()

        with pytest.raises(InvalidCommandError):
            service.execute(command("open_case", case_id=case_id, **HOUSEHOLD))

        assert self.wrapped_keys() == keys

    def test_a_lost_opening_leaves_the_winners_persons_readable(self) -> None:
        # The same opening sent twice at once (a retried request on two instances): the loser
        # made the persons' keys, the winner found them and sealed with them. The loser's
        # lost save must not take those keys away.
        clock = ManualClock()
        winner, loser = self.make_service(clock), self.make_service(clock)
        case_id, person_id = uuid4(), uuid4()
        household = {**HOUSEHOLD, "applicant": {**APPLICANT, "person_id": person_id},
                     "other_members": []}
        opening = command("open_case", case_id=case_id, **household)
        make_keys = loser.vault.ensure_keys

        def keys_then_the_winner(person_ids: Any) -> list[UUID]:
            created = make_keys(person_ids)
            winner.execute(opening)
            return created

        loser.vault.ensure_keys = keys_then_the_winner  # type: ignore[method-assign]
        with pytest.raises(InvalidCommandError):
            loser.execute(opening)

        case = self.make_service(clock).get_case(case_id)
        assert not case.applicant.is_erased
        assert case.applicant.to_plain()["given_name"] == APPLICANT["given_name"]
        assert sorted(self.wrapped_keys()) == [person_id.hex]

    # --- recorded time -------------------------------------------------------------------

    def test_recorded_time_is_the_store_clock_and_as_of_replays_up_to_it(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        opened = clock.now
        case_id = self.open_supported_case(service, clock)
        assessed, granted = opened + timedelta(hours=1), opened + timedelta(hours=2)

        assert [entry.recorded_at for entry in service.history(case_id)] == [
            opened, assessed, granted]
        as_of = {
            opened: (1, "intake"),
            assessed - timedelta(microseconds=1): (1, "intake"),
            assessed: (2, "assessed"),
            assessed + timedelta(minutes=59): (2, "assessed"),
            granted: (3, "supported"),
        }
        for moment, expected in as_of.items():
            case = service.case_as_of(case_id, moment)
            assert (case.version, case.phase) == expected, moment
        assert vars(service.case_as_of(case_id, granted)) == vars(service.get_case(case_id))

    def test_a_caller_cannot_set_the_recorded_time(self) -> None:
        with pytest.raises(InvalidCommandError, match="recorded_at"):
            command("complete_review", case_id=uuid4(), outcome="continue",
                    recorded_at="2020-01-01T00:00:00+00:00")

    def test_as_of_before_the_first_event_finds_no_case(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = service.execute(command("open_case", **HOUSEHOLD)).case_id
        before = clock.now - timedelta(microseconds=1)

        with pytest.raises(CaseNotFoundError, match=f"case {case_id} not found as of"):
            service.case_as_of(case_id, before)

    def test_history_lists_every_event_without_personal_data(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)

        history = service.history(case_id)

        assert [(entry.version, entry.event) for entry in history] == [
            (1, "CaseOpened"), (2, "AssessmentCompleted"), (3, "SupportGranted")]
        assert [entry.recorded_at for entry in history] == [
            START, START + timedelta(hours=1), START + timedelta(hours=2)]
        assert [entry.effective_date for entry in history] == [date(2026, 6, 1)] * 3
        assert history[0].details == {"municipality_bfs": GRENCHEN, "household_size": 2,
                                      "household_structure": None,  # not recorded
                                      "social_region": "so-oberer-leberberg", "persons": 2}
        shown = repr(history) + str(history)
        assert [text for text in PERSONAL_DATA if text in shown] == []

    # --- legacy import -------------------------------------------------------------------

    def test_import_keeps_original_recorded_times_and_marks_events_imported(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)

        report = service.import_records(LEGACY_FILE)

        assert (report.records, report.events, report.cases) == (4, 4, 1)
        reopened = self.make_service(clock)
        history = reopened.history(LEGACY_CASE_ID)
        assert [entry.recorded_at for entry in history] == LEGACY_TIMES
        assert [entry.imported for entry in history] == [True] * 4
        assert history[0].effective_date == date(2025, 3, 1)
        assert reopened.case_as_of(LEGACY_CASE_ID, LEGACY_TIMES[1]).phase == "assessed"
        reopened.execute(command("complete_review", case_id=LEGACY_CASE_ID, outcome="adjust"))
        live = reopened.history(LEGACY_CASE_ID)[-1]
        assert (live.imported, live.recorded_at) == (False, clock.now)

    @pytest.mark.parametrize(("lines", "line_no", "reason"), BAD_IMPORTS)
    def test_import_is_all_or_nothing(self, lines: list[str], line_no: int, reason: str) -> None:
        service = self.make_service(ManualClock())

        with pytest.raises(ImportRejectedError) as rejected:
            service.import_records(lines)

        assert rejected.value.line == line_no
        assert f"import rejected at line {line_no}: " in str(rejected.value)
        assert reason in str(rejected.value)
        reopened = self.make_service(ManualClock())
        assert list(reopened.case_ids()) == []
        with pytest.raises(CaseNotFoundError):
            reopened.get_case(LEGACY_CASE_ID)
        assert self.wrapped_keys() == {}

    def test_import_refuses_records_from_the_future(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        future = (clock.now + timedelta(seconds=1)).isoformat()
        lines = _with_line(4, legacy_record(future, "complete_review",
                                            case_id=str(LEGACY_CASE_ID), outcome="continue"))

        refusal = f"line 4: recorded_at: {future} lies in the future"
        with pytest.raises(ImportRejectedError, match=re.escape(refusal)):
            service.import_records(lines)

        assert list(service.case_ids()) == []

    def test_reimporting_a_file_is_refused_and_duplicates_nothing(self) -> None:
        service = self.make_service(ManualClock())
        service.import_records(LEGACY_FILE)
        history = service.history(LEGACY_CASE_ID)

        with pytest.raises(ImportRejectedError, match="nothing was imported"):
            self.make_service(ManualClock()).import_records(LEGACY_FILE)

        reopened = self.make_service(ManualClock())
        assert reopened.history(LEGACY_CASE_ID) == history
        assert list(reopened.case_ids()) == [LEGACY_CASE_ID]

    def test_reimporting_a_file_that_continues_a_case_is_refused(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        recorded_at = clock.advance(hours=1).isoformat()
        clock.advance(days=1)
        lines = [legacy_record(recorded_at, "complete_review", case_id=str(case_id),
                               outcome="continue")]
        service.import_records(lines)

        with pytest.raises(ImportRejectedError):
            service.import_records(lines)

        assert len(service.history(case_id)) == 4

    # --- personal data at rest -----------------------------------------------------------

    def test_personal_data_never_reaches_the_store_in_clear(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        self.open_supported_case(service, clock)
        service.import_records(LEGACY_FILE)
        self.close_services()

        assert_sealed(self.stored_bytes())

    def test_snapshots_hold_no_clear_personal_data(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        for _ in range(97):
            clock.advance(minutes=1)
            service.execute(command("complete_review", case_id=case_id, outcome="continue"))
        assert service.snapshots is not None
        assert [s.originator_version for s in service.snapshots.get(case_id)] == [100]
        self.close_services()

        assert_sealed(self.stored_bytes())
        reloaded = self.make_service(clock).get_case(case_id)
        assert reloaded.version == 100
        assert reloaded.applicant.to_plain()["given_name"] == "Zyxwvutsrqp"

    def test_erased_person_reads_as_erased_and_the_case_still_replays(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        case = service.get_case(case_id)
        applicant_id, member_id = case.applicant.person_id, case.other_members[0].person_id

        assert service.erase_person(applicant_id) is True
        self.close_services()

        reopened = self.make_service(clock)
        case = reopened.get_case(case_id)
        assert (case.version, case.phase, case.applicant.is_erased) == (3, "supported", True)
        plain = case.applicant.to_plain()
        assert plain.pop("person_id") == str(applicant_id)
        assert set(plain.values()) == {ERASED}
        assert case.other_members[0].to_plain()["given_name"] == "Pfnorqxutil"
        assert reopened.case_as_of(case_id, START).applicant.is_erased
        assert len(reopened.history(case_id)) == 3
        assert sorted(self.wrapped_keys()) == [member_id.hex]
        clock.advance(hours=1)
        reopened.execute(command("complete_review", case_id=case_id, outcome="continue"))
        assert reopened.erase_person(applicant_id) is False

    def test_erased_person_cannot_be_recorded_again(self) -> None:
        service = self.make_service(ManualClock())
        person_id = uuid4()
        applicant = {**APPLICANT, "person_id": person_id}
        household = {**HOUSEHOLD, "applicant": applicant, "other_members": []}
        case_id = service.execute(command("open_case", **household)).case_id
        service.erase_person(person_id)

        with pytest.raises(PersonErasedError, match=str(person_id)):
            service.execute(command("open_case", **household))

        assert list(service.case_ids()) == [case_id]

    def test_erased_key_leaves_no_copy_at_rest(self) -> None:
        clock = ManualClock()
        service = self.make_service(clock)
        case = service.get_case(self.open_supported_case(service, clock))
        keys = self.wrapped_keys()
        erased = keys[case.applicant.person_id.hex]
        kept = keys[case.other_members[0].person_id.hex]

        service.erase_person(case.applicant.person_id)

        while_open = self.stored_bytes()
        assert kept in while_open, "the scan saw no data keys at all"
        survives = erased in while_open
        assert not survives, "the erased key survives while the store is open"
        self.close_services()
        survives = erased in self.stored_bytes()
        assert not survives, "the erased key survives in the closed store"
