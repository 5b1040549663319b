"""Helpers of the domain tests: command builders and a `Desk` that runs commands.

A `Desk` is an in-memory (POPO) case service with a fake clock and an in-memory key store;
`Desk.refused` checks a refusal and that nothing at all was recorded.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from stdnum import ean

import domain.reference
from domain import commands
from domain.application.cases import CaseService, CommandResult
from domain.case import SWISS_TIME, Case, Recording
from domain.errors import CaseNotFoundError, DomainError, ReferenceDataError, RuleViolationError
from domain.personal_data import PersonalDataVault
from domain.reference import ReferenceData, load_reference_data

from .fakes import FakeBenefits, FakeClock, InMemoryKeyStore

POPO_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
MASTER_KEY = bytes(range(32))
START = datetime(2025, 11, 3, 9, 0, tzinfo=SWISS_TIME)
"""A Monday; the SKOS amount in force is the 2025 one, 2026 is two months away."""
TODAY = START.date()

# Municipalities used by the tests (their regions are checked in test_reference.py).
SOLOTHURN = 2601  # so-solothurn, the region's only municipality
BETTLACH = 2543  # so-oberer-leberberg
GRENCHEN = 2546  # so-oberer-leberberg
OLTEN = 2581  # so-olten

# Caseworkers of other regions than the default actor's (so-solothurn).
OBERER_LEBERBERG = commands.Actor("lea.roth", "caseworker", "so-oberer-leberberg")
OLTEN_CASEWORKER = commands.Actor("marc.huber", "caseworker", "so-olten")

SKOS_FILE = Path(domain.reference.__file__).parent / "data" / "skos_basic_needs.json"
REGIONS_FILE = Path(domain.reference.__file__).parent / "data" / "so_social_regions.json"

OMIT = object()
"""Pass as a field value to leave the field out of a payload."""

CASE_METHODS: dict[type[commands.CaseCommand], tuple[str, bool]] = {
    commands.CompleteAssessment: ("complete_assessment", False),
    commands.GrantSupport: ("grant_support", True),
    commands.RefuseSupport: ("refuse_support", False),
    commands.AgreeGoal: ("agree_goal", False),
    commands.RecordGoalOutcome: ("record_goal_outcome", False),
    commands.StartMeasure: ("start_measure", False),
    commands.CompleteMeasure: ("complete_measure", False),
    commands.BreakOffMeasure: ("break_off_measure", False),
    commands.ChangeBudget: ("change_budget", True),
    commands.AdjustBasicNeeds: ("adjust_basic_needs", True),
    commands.CompleteReview: ("complete_review", False),
    commands.HandOverCase: ("hand_over", True),
    commands.CloseCase: ("close", False),
    commands.ReopenCase: ("reopen", False),
    commands.ProposeHandover: ("propose_handover", True),
    commands.ProposeClosure: ("propose_closure", False),
    commands.DismissProposal: ("dismiss_proposal", False),
    commands.RecordReimbursement: ("record_reimbursement", False),
    commands.RecordReimbursementPaid: ("record_reimbursement_paid", False),
}
"""Each case command's `Case` method and whether it takes the reference data (the advance
commands take the benefit applications instead: `ADVANCE_METHODS`)."""
ADVANCE_METHODS: dict[type[commands.CaseCommand], str] = {
    commands.StartAdvance: "start_advance",
    commands.EndAdvance: "end_advance",
}


# --- input builders -------------------------------------------------------------------------


def valid_ahvn13(serial: int) -> str:
    """A valid AHVN13 (756 prefix, EAN-13 check digit) for a serial number, dotted."""
    digits = f"756{serial:09d}"
    number = digits + ean.calc_check_digit(digits)
    return f"{number[:3]}.{number[3:7]}.{number[7:11]}.{number[11:]}"


def person_input(serial: int = 1, **overrides: Any) -> dict[str, Any]:
    """The identifying data of one household member, as a caller would send them."""
    data: dict[str, Any] = {
        "given_name": f"Person{serial}",
        "family_name": "Muster",
        "ahvn13": valid_ahvn13(1_000_000 + serial),
        "birth_date": "1980-04-12",
        "street": "Hauptgasse 1",
        "postal_code": "4500",
        "town": "Solothurn",
    }
    return _merge(data, overrides)


def default_fields(name: str, today: date) -> dict[str, Any]:
    """Fields that make a well-formed command `name` (without actor, correlation and case id)."""
    budget = {"housing": "1200.00", "health_insurance": "350.00", "income": "0.00"}
    defaults: dict[str, dict[str, Any]] = {
        "open_case": {"municipality_bfs": SOLOTHURN, "household_size": 1,
                      "applicant": person_input(1)},
        "complete_assessment": {"needs": ["financial"], "employability": "employable"},
        "grant_support": {"support_from": today.replace(day=1).isoformat(), **budget},
        "refuse_support": {"reasons": ["income_sufficient"]},
        "agree_goal": {"category": "employment", "title": "Find a job",
                       "due_date": (today + timedelta(days=90)).isoformat()},
        "record_goal_outcome": {"goal_id": str(UUID(int=1)), "outcome": "achieved"},
        "start_measure": {"kind": "job_coaching"},
        "complete_measure": {"measure_id": str(UUID(int=2))},
        "break_off_measure": {"measure_id": str(UUID(int=2)), "reason": "no_show"},
        "change_budget": {"effective_date": today.isoformat(), "reason": "rent_change", **budget},
        "adjust_basic_needs": {"year": today.year},
        "complete_review": {"outcome": "continue"},
        "hand_over_case": {"to_municipality_bfs": OLTEN},
        "close_case": {"reason": "employment"},
        "reopen_case": {"reason": "reapplication"},
        "propose_handover": {"external_reference": "delivery-1/1", "source": "register",
                             "to_municipality_bfs": OLTEN, "effective_date": today.isoformat()},
        "propose_closure": {"external_reference": "delivery-1/2", "source": "register",
                            "reason": "death", "effective_date": today.isoformat()},
        "dismiss_proposal": {"external_reference": "delivery-1/1", "reason": "not_applicable"},
        "start_advance": {"application_id": str(UUID(int=3)),
                          "advance_from": today.replace(day=1).isoformat(),
                          "commitment_kind": "commitment", "commitment_date": today.isoformat()},
        "end_advance": {"application_id": str(UUID(int=3)), "reason": "decided"},
        "record_reimbursement": {
            "application_id": str(UUID(int=3)), "decided_on": today.isoformat(),
            "el": {today.replace(day=1).isoformat(): "1900.00"},
            "paid": {today.replace(day=1).isoformat(): "2400.00"},
            "monthly_el": "1900.00"},
        "record_reimbursement_paid": {
            "application_id": str(UUID(int=3)), "claim_version": 5,
            "paid_on": today.isoformat(), "to_region": "1900.00", "to_person": "0.00",
            "message_id": "claim-0001"},
    }
    return dict(defaults[name])


def _merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**data, **overrides}
    return {key: value for key, value in merged.items() if value is not OMIT}


class CommandFactory:
    """Builds well-formed command payloads and commands for one actor; overrides win."""

    def __init__(self, actor: commands.Actor, today: Callable[[], date]) -> None:
        self.actor = actor
        self._today = today
        self._correlations = itertools.count(1)

    def payload(self, name: str, **fields: Any) -> dict[str, Any]:
        """The JSON-like input of command `name`; `OMIT` drops a field."""
        data: dict[str, Any] = {
            "actor": asdict(self.actor),
            "correlation_id": str(UUID(int=next(self._correlations))),
        }
        if name != "open_case":
            data["case_id"] = str(UUID(int=0))
        data |= default_fields(name, self._today())
        return _merge(data, {k: _jsonish(v) for k, v in fields.items()})

    def __call__(self, name: str, **fields: Any) -> commands.Command:
        """The validated command `name`."""
        return commands.parse_command(name, self.payload(name, **fields))


def _jsonish(value: Any) -> Any:
    if isinstance(value, commands.Actor):
        return asdict(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- the desk: service, clock and builders together ------------------------------------------


@dataclass(frozen=True)
class StoreState:
    """What is recorded: the last notification, a case's event count, the key store."""

    max_notification_id: int | None
    case_events: int | None
    keys: tuple[dict[UUID, bytes], frozenset[UUID]]


@dataclass
class Desk:
    """A caseworker's desk: runs commands against an in-memory service at a fake time."""

    service: CaseService
    clock: FakeClock
    keystore: InMemoryKeyStore
    commands: CommandFactory
    reference: ReferenceData
    benefits: FakeBenefits = field(default_factory=FakeBenefits)
    results: list[CommandResult] = field(default_factory=list)

    @property
    def today(self) -> date:
        """The recording day in Swiss time."""
        return Recording(self.clock()).today

    def run(self, name: str, **fields: Any) -> CommandResult:
        """Build and execute command `name`; it must be recorded."""
        result = self.service.execute(self.commands(name, **fields))
        self.results.append(result)
        return result

    def open(self, **fields: Any) -> UUID:
        """Open a case (by default a one-person household in Solothurn)."""
        return self.run("open_case", **fields).case_id

    def assessed(self, **open_fields: Any) -> UUID:
        """A case opened and assessed, waiting for a decision."""
        case_id = self.open(**open_fields)
        self.run("complete_assessment", case_id=case_id)
        return case_id

    def supported(self, **grant_fields: Any) -> UUID:
        """A case with support granted from the first of the current month."""
        case_id = self.assessed()
        self.run("grant_support", case_id=case_id, **grant_fields)
        return case_id

    def case(self, case_id: UUID) -> Case:
        """The case as the repository reconstructs it."""
        return self.service.get_case(case_id)

    def events(self, case_id: UUID) -> list[Any]:
        """The case's stored events, in order."""
        return list(self.service.events.get(case_id))

    def store_state(self, case_id: UUID | None) -> StoreState:
        """Everything that a refused command must leave as it was."""
        events = None
        if case_id is not None:
            events = len(list(self.service.events.get(case_id)))
        return StoreState(
            self.service.recorder.max_notification_id(), events, self.keystore.state()
        )

    def refused(
        self,
        command: commands.Command,
        error: type[DomainError] = RuleViolationError,
        *,
        rule: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> DomainError:
        """Check that `command` is refused with `error` and that nothing at all is recorded.

        A rule refusal is also tried on the aggregate itself: it must leave no pending event,
        the version and the whole state untouched.
        """
        case_id = getattr(command, "case_id", None)
        known = case_id is not None and bool(self.events(case_id))
        before = self.store_state(case_id if known else None)
        if issubclass(error, RuleViolationError | ReferenceDataError):
            self._refused_by_aggregate(command, error, known=known)
        with pytest.raises(error) as info:
            self.service.execute(command)
        assert self.store_state(case_id if known else None) == before
        if rule is not None:
            assert isinstance(info.value, RuleViolationError)
            assert info.value.rule == rule
            assert f"[rule: {rule}]" in str(info.value)
        for text in mentions:
            assert text in str(info.value)
        return info.value

    def hidden(self, command: commands.Command) -> None:
        """Check that `command`, by an actor who may not act on the case, is answered exactly
        like a command on a case that does not exist, records nothing, and that the aggregate
        itself still refuses it (rule actor-responsible: defence in depth)."""
        assert isinstance(command, commands.CaseCommand)
        before = self.store_state(command.case_id)
        case = self.case(command.case_id)
        with pytest.raises(RuleViolationError, match=r"\[rule: actor-responsible\]"):
            apply_command(case, command, Recording(max(self.clock(), case.modified_on)),
                          self.reference, self.benefits)
        with pytest.raises(CaseNotFoundError) as info:
            self.service.execute(command)
        missing = command.model_copy(update={"case_id": uuid4()})
        with pytest.raises(CaseNotFoundError) as unknown:
            self.service.execute(missing)
        assert self.store_state(command.case_id) == before
        assert str(info.value).replace(str(command.case_id), str(missing.case_id)) == str(
            unknown.value)

    def _refused_by_aggregate(
        self, command: commands.Command, error: type[DomainError], *, known: bool
    ) -> None:
        if isinstance(command, commands.OpenCase):
            with pytest.raises(error):
                Case.open(command, Recording(self.clock()), self.reference)
            return
        assert isinstance(command, commands.CaseCommand)
        if not known:
            return
        case = self.case(command.case_id)
        version = case.version
        with pytest.raises(error):
            apply_command(case, command, Recording(max(self.clock(), case.modified_on)),
                          self.reference, self.benefits)
        assert case.pending_events == []
        assert case.version == version
        assert vars(case) == vars(self.case(command.case_id))


def move_to(desk: Desk, day: date) -> None:
    """Advance the desk's clock to 09:00 Swiss time on `day`."""
    on = datetime(day.year, day.month, day.day, 9, 0, tzinfo=SWISS_TIME)
    desk.clock.advance(seconds=(on - desk.clock()).total_seconds())


def apply_command(
    case: Case, command: commands.CaseCommand, rec: Recording, ref: ReferenceData,
    benefits: FakeBenefits | None = None,
) -> None:
    """Call the `Case` method that handles `command`, as the service does."""
    if type(command) in ADVANCE_METHODS:
        getattr(case, ADVANCE_METHODS[type(command)])(command, rec, benefits or FakeBenefits())
        return
    method_name, needs_reference = CASE_METHODS[type(command)]
    method = getattr(case, method_name)
    if needs_reference:
        method(command, rec, ref)
    else:
        method(command, rec)


def build_desk(actor: commands.Actor, start: datetime = START) -> Desk:
    """A fresh desk: its own clock, key store and in-memory event store."""
    clock = FakeClock(start)
    keystore = InMemoryKeyStore()
    reference = load_reference_data()
    benefits = FakeBenefits()
    service = CaseService(
        POPO_ENV, vault=PersonalDataVault(keystore, MASTER_KEY), reference=reference, clock=clock,
        benefits=benefits,
    )
    factory = CommandFactory(actor, lambda: Recording(clock()).today)
    return Desk(service, clock, keystore, factory, reference, benefits)


def replay(events: list[Any]) -> Case:
    """Reconstruct a case from its events alone."""
    case = None
    for event in events:
        case = event.mutate(case)
    assert isinstance(case, Case)
    return case


def expected_basic_needs(on: date, household_size: int) -> Decimal:
    """SKOS basic needs recomputed from the data file itself, independently of the loader.

    One-person amount in force on `on` (canton Solothurn's applied amount where the file
    gives one, else the SKOS recommendation) x equivalence factor (beyond the table: the
    largest factor plus the step per further person), rounded half up to whole francs.
    """
    raw = json.loads((SKOS_FILE).read_text("utf-8"))
    in_force = [y for y in raw["years"] if date.fromisoformat(y["valid_from"]) <= on]
    year = max(in_force, key=lambda y: date.fromisoformat(y["valid_from"]))
    one_person = Decimal(year.get("so_applied_one_person_chf") or year["one_person_chf"])
    factors = {int(size): Decimal(f) for size, f in raw["household_size_factors"].items()}
    largest = max(factors)
    if household_size in factors:
        factor = factors[household_size]
    else:
        step = Decimal(raw["additional_person_step"])
        factor = factors[largest] + step * (household_size - largest)
    return (one_person * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP)


