"""Pseudonymised case facts for statistics: what happened to a case, when, in which region.

A fact carries no personal data: the case appears only as a pseudonym (HMAC-SHA256 of its id
under the installation's reporting key), goals and measures likewise, and the fact's own id is
keyed too (`Pseudonymiser.fact_id`, never the source event's public id, which anyone who knows
a case id can compute); its recorded time is coarsened to the Swiss day
(`recorded_day`), so it cannot be joined with the case-events topic's precise times; there are
no persons
and no free text (goal titles stay behind). What a fact does carry is a code (`FactCode`), the
effective date, the recorded time, the social region and a few detail codes (closure reason,
measure kind, region taken over by, ...), and, for the federal social-assistance statistics
(BFS SHS, `connectors.bfs_statistics`), the fields the BFS receives by law: the municipality's
BFS number (opened, handed_over), the household size (opened, budget_changed) and the monthly
budget total (granted, budget_changed); docs/reporting.md says why that is acceptable.

`case_fact` turns one case event into its fact; it is pure (no Kafka, no database). The only
thing it needs beyond the event is the social region the case was in before it, since most
events do not name it: `CaseFacts` keeps track of that for a stream of events and asks a
`RegionLookup` (e.g. `region_in_store`) for a case it meets half-way through its history.
Both the reporting relay (facts onto the bus) and the reporting projection's rebuild (facts
straight from the store) go through `case_fact`, so both paths give the same facts.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, get_args
from uuid import UUID

from domain.application.ports import CaseEventSource
from domain.case import SWISS_TIME
from domain.events import CaseHandedOver, CaseOpened

__all__ = [
    "FACT_CODES",
    "NO_FACT_EVENTS",
    "CaseFact",
    "CaseFacts",
    "FactCode",
    "Pseudonymiser",
    "RegionLookup",
    "case_fact",
    "recorded_day",
    "region_in_store",
]

FactCode = Literal[
    "opened",
    "assessed",
    "granted",
    "refused",
    "goal_agreed",
    "goal_achieved",
    "goal_missed",
    "measure_started",
    "measure_completed",
    "measure_broken_off",
    "budget_changed",
    "reviewed",
    "handed_over",
    "closed",
    "reopened",
]
"""What happened to a case: one code per case event type."""

FACT_CODES: dict[str, FactCode] = dict(
    zip(
        (
            "CaseOpened",
            "AssessmentCompleted",
            "SupportGranted",
            "SupportRefused",
            "GoalAgreed",
            "GoalAchieved",
            "GoalMissed",
            "MeasureStarted",
            "MeasureCompleted",
            "MeasureBrokenOff",
            "BudgetChanged",
            "ReviewCompleted",
            "CaseHandedOver",
            "CaseClosed",
            "CaseReopened",
        ),
        get_args(FactCode),
        strict=True,
    )
)
"""The fact code of each case event type."""

NO_FACT_EVENTS = frozenset({"HandoverProposed", "ClosureProposed", "ProposalDismissed",
                            "BudgetChangeProposed", "AdvanceStarted", "AdvanceEnded",
                            "ReimbursementRecorded", "ReimbursementPaid"})
"""Case events that carry no fact: work-list proposals from connected registers are not
something that happened to the case (the handover or closure that may follow is); advances in
view of a benefit have no fact code yet (their figures are a later part of issue 15)."""

RegionLookup = Callable[[UUID, int], str]
"""The social region of case `case_id` after its event at `version` (e.g. from the store)."""


@dataclass(frozen=True)
class CaseFact:
    """One pseudonymised fact of a case; the detail fields hold codes, set for one fact each."""

    fact_id: UUID
    case_pseudonym: str
    sequence: int
    social_region: str
    fact: FactCode
    effective_date: date
    recorded_at: datetime
    imported: bool = False
    support_from: date | None = None
    employability: str | None = None
    refusal_reasons: tuple[str, ...] = ()
    goal_category: str | None = None
    item_ref: str | None = None
    measure_kind: str | None = None
    break_off_reason: str | None = None
    budget_reason: str | None = None
    review_outcome: str | None = None
    to_region: str | None = None
    closure_reason: str | None = None
    reopening_reason: str | None = None
    municipality_bfs: int | None = None
    household_size: int | None = None
    budget_total: Decimal | None = None

    @property
    def region_after(self) -> str:
        """The social region responsible for the case once this fact has happened."""
        if self.fact == "handed_over" and self.to_region is not None:
            return self.to_region
        return self.social_region


_VERSION_AND_VARIANT = (0xF << 76) | (0x3 << 62)
_VERSION_8_RFC_VARIANT = (0x8 << 76) | (0x2 << 62)


def recorded_day(moment: datetime) -> datetime:
    """The start (midnight, Swiss time) of the Swiss day `moment` falls on, in UTC.

    A fact's recorded time is no more precise than its day: the case-events topic and the
    payments topic (`budget_recorded_at`) carry the events' recorded times to the
    microsecond, and an equally precise time on a fact would name its event. The day is all
    the figures and the BFS delivery need (a month is complete by recorded day)."""
    day = moment.astimezone(SWISS_TIME).date()
    return datetime.combine(day, time(), SWISS_TIME).astimezone(UTC)


class Pseudonymiser:
    """Keyed pseudonyms (HMAC-SHA256, hex): the same id always gives the same pseudonym, and
    without the reporting key nobody can tell which case a pseudonym stands for."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"the reporting key must be 32 bytes, not {len(key)}")
        self._key = key
        # A case's events come in runs: keep the recent cases' pseudonyms at hand.
        self._case = lru_cache(maxsize=4096)(self._case_pseudonym)
        # A rebuild asks for a fact's id twice (its row, then what it marks as processed).
        self._fact_id = lru_cache(maxsize=4096)(self._keyed_fact_id)

    def case(self, case_id: UUID) -> str:
        """The pseudonym of a case: HMAC-SHA256 of its canonical text (`str(case_id)`)."""
        return self._case(case_id)

    def item(self, item_id: UUID) -> str:
        """The pseudonym of a goal or measure (domain-separated from case pseudonyms)."""
        return self._mac(f"item/{item_id}").hex()

    def fact_id(self, case_id: UUID, version: int) -> UUID:
        """The id of the fact of event `version` of case `case_id`: the first 128 bits of
        HMAC-SHA256 of `fact/<case id>/<version>` (domain-separated from case and item
        pseudonyms), as a UUID of version 8 (RFC 9562, custom). The same event always gives
        the same id, so consumers still deduplicate a fact published twice; without the key
        nobody can compute it from a case id, nor match it with the event's public id."""
        return self._fact_id(case_id, version)

    def _keyed_fact_id(self, case_id: UUID, version: int) -> UUID:
        digest = int.from_bytes(self._mac(f"fact/{case_id}/{version}")[:16], "big")
        digest = (digest & ~_VERSION_AND_VARIANT) | _VERSION_8_RFC_VARIANT
        return UUID(int=digest)

    def _case_pseudonym(self, case_id: UUID) -> str:
        return self._mac(str(case_id)).hex()

    def _mac(self, text: str) -> bytes:
        return hmac.digest(self._key, text.encode("ascii"), "sha256")

    def __repr__(self) -> str:
        return "Pseudonymiser(key=…)"


def case_fact(event: Any, *, region: str | None, pseudonyms: Pseudonymiser) -> CaseFact:
    """The fact of one case event; `region` is the case's social region before the event
    (not needed for the opening and the handover, which name it themselves)."""
    kind = type(event).__name__
    code = FACT_CODES.get(kind)
    if code is None:
        raise ValueError(f"{kind} is not a case event type")
    details = _DETAILS.get(kind, _no_details)(event, pseudonyms)
    if isinstance(event, CaseOpened):
        region = event.social_region
    elif isinstance(event, CaseHandedOver):
        region = event.from_region
    if region is None:
        raise ValueError(f"{kind} of a case: the case's social region must be given")
    return CaseFact(
        fact_id=pseudonyms.fact_id(event.originator_id, event.originator_version),
        case_pseudonym=pseudonyms.case(event.originator_id),
        sequence=event.originator_version,
        social_region=region,
        fact=code,
        effective_date=details.pop("effective_date", event.effective_date),
        recorded_at=recorded_day(event.timestamp),
        imported=bool(event.imported),
        **details,
    )


class CaseFacts:
    """Turns a stream of case events (in order per case) into facts, keeping track of the
    region of each case; a case met half-way is looked up with `region_lookup`."""

    def __init__(self, pseudonyms: Pseudonymiser, region_lookup: RegionLookup | None = None):
        self._pseudonyms = pseudonyms
        self._lookup = region_lookup
        self._regions: dict[UUID, tuple[int, str]] = {}

    def __call__(self, event: Any) -> CaseFact:
        """The fact of `event`."""
        fact = case_fact(event, region=self._region_before(event), pseudonyms=self._pseudonyms)
        self._regions[event.originator_id] = (event.originator_version, fact.region_after)
        return fact

    def _region_before(self, event: Any) -> str | None:
        if isinstance(event, CaseOpened | CaseHandedOver):
            return None  # the event names it
        version = event.originator_version - 1
        known = self._regions.get(event.originator_id)
        # Only the event just before counts: a batch published again after a failure comes
        # round a second time, and the region known by then may be a later one.
        if known is not None and known[0] == version:
            return known[1]
        if self._lookup is None:
            raise LookupError(
                f"case {event.originator_id}: its region before version "
                f"{event.originator_version} is unknown (no earlier event seen, no lookup)"
            )
        return self._lookup(event.originator_id, version)


def region_in_store(source: CaseEventSource) -> RegionLookup:
    """A `RegionLookup` reading the case's history backwards from the event store (`source`:
    the case service)."""

    def lookup(case_id: UUID, version: int) -> str:
        for event in source.case_events(case_id, lte=version, desc=True):
            if isinstance(event, CaseHandedOver):
                return event.to_region
            if isinstance(event, CaseOpened):
                return event.social_region
        raise LookupError(f"case {case_id} has no opening up to version {version}")

    return lookup


# --- detail fields per event type -------------------------------------------------------------


def _no_details(event: Any, pseudonyms: Pseudonymiser) -> dict[str, Any]:
    return {}


_DETAILS: dict[str, Callable[[Any, Pseudonymiser], dict[str, Any]]] = {
    "CaseOpened": lambda e, p: {
        "municipality_bfs": e.municipality_bfs,
        "household_size": e.household_size,
    },
    "AssessmentCompleted": lambda e, p: {"employability": e.employability},
    # The decision counts for reporting; support may be owed from an earlier day.
    "SupportGranted": lambda e, p: {
        "effective_date": e.decision_date,
        "support_from": e.effective_date,
        "budget_total": e.total,
    },
    "SupportRefused": lambda e, p: {"refusal_reasons": tuple(e.reasons)},
    "GoalAgreed": lambda e, p: {"goal_category": e.category, "item_ref": p.item(e.goal_id)},
    "GoalAchieved": lambda e, p: {"item_ref": p.item(e.goal_id)},
    "GoalMissed": lambda e, p: {"item_ref": p.item(e.goal_id)},
    "MeasureStarted": lambda e, p: {"measure_kind": e.kind, "item_ref": p.item(e.measure_id)},
    "MeasureCompleted": lambda e, p: {"item_ref": p.item(e.measure_id)},
    "MeasureBrokenOff": lambda e, p: {
        "item_ref": p.item(e.measure_id),
        "break_off_reason": e.reason,
    },
    "BudgetChanged": lambda e, p: {
        "budget_reason": e.reason,
        "budget_total": e.total,
        "household_size": e.household_size,
    },
    "ReviewCompleted": lambda e, p: {"review_outcome": e.outcome},
    "CaseHandedOver": lambda e, p: {
        "to_region": e.to_region,
        "municipality_bfs": e.to_municipality_bfs,
    },
    "CaseClosed": lambda e, p: {"closure_reason": e.reason},
    "CaseReopened": lambda e, p: {"reopening_reason": e.reason},
}
