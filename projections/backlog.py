"""Backlog figures of benefit applications: the overview the audit committee missed (issue 14).

Pure computation over the applications' recorded events as known at a moment (bitemporal:
events recorded after `known_at` do not count), per branch office, per social region (of the
application's municipality) and for the canton, per ISO week. No personal data goes in or
out: an application enters as its dates, office and region (`ApplicationTimeline`).

Definitions (also in docs/benefits.md, "Backlog figures"):
- **Week**: an ISO 8601 week (`2026-W49`), Monday to Sunday; every date is a Swiss
  (Europe/Zurich) calendar date. The event dates are the effective ones the events carry:
  received (`received_on`), forwarded (`forwarded_on`), decided (`decided_on`), withdrawn
  (`withdrawn_on`), documents received (`received_on`); a completeness check counts on the
  Swiss day it was recorded.
- **Decided**: the fund's first decision, granted or refused. A withdrawn application is
  closed but **not decided**: it leaves the pending ones and counts in `withdrawn`, never in
  `decided`, the durations or the shares.
- **received** / **decided** / **withdrawn**: applications received / decided / withdrawn on a
  day of the week.
- **pending** (at week end): received on or before the week's Sunday and neither decided nor
  withdrawn on or before it; **by stage** on that Sunday: `pending_at_office` (not yet
  forwarded; the office's stage `received`) and `pending_at_fund` (forwarded, undecided).
- **pending over target**: pending at week end and the Sunday lies after the processing
  target's deadline (received day plus the target's months, clamped to the month's end:
  31 August + 3 months = 30 November), i.e. pending longer than the target.
- **days to decision**: decided day minus received day, for the applications decided in the
  week; **median** is the middle value (the mean of the two middle ones for an even count,
  `statistics.median`), **p90** the nearest-rank 90th percentile: the smallest value such that
  at least 90 % of the values are at most it (sorted values, 1-based rank ceil(0.9 n)).
- **share decided within target**: of the applications decided in the week, those decided on
  or before their deadline.
- **share of late ones waiting for documents**: of the pending-over-target ones, those waiting
  for documents at week end: a completeness check found documents missing and not all of them
  have been received since (as `BenefitApplication.waiting_for_documents`; an open document
  request is such a case).
A share or a duration over no applications is None (empty in the CSV, `–` in tables).
"""

from __future__ import annotations

import calendar
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from domain.benefits import (
    ApplicationForwarded,
    ApplicationReceived,
    ApplicationWithdrawn,
    BenefitGranted,
    BenefitRefused,
    CompletenessChecked,
    DocumentsReceived,
)
from domain.case import SWISS_TIME

__all__ = [
    "DEFAULT_TARGET_MONTHS",
    "TREND_WEEKS",
    "ApplicationTimeline",
    "Backlog",
    "BacklogFigures",
    "IsoWeek",
    "ProcessingTarget",
    "UnitKind",
    "backlog_for_week",
    "backlog_trend",
    "nearest_rank",
    "timelines",
]

DEFAULT_TARGET_MONTHS = 3
"""The processing target unless configured (NERVENBAHN_BENEFITS_TARGET_MONTHS)."""
TREND_WEEKS = 26
"""How many weeks (the given one and those before it) a trend shows."""

UnitKind = Literal["canton", "region", "branch_office"]
"""What a row of figures is about."""

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week, written `2026-W49`."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """The week written `YYYY-Www`; ValueError saying what is wrong."""
        match = _WEEK.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not an ISO week; write it like 2026-W49")
        year, week = int(match[1]), int(match[2])
        weeks_in_year = date(year, 12, 28).isocalendar().week
        if not 1 <= week <= weeks_in_year:
            raise ValueError(f"{text!r}: {year} has weeks 01 to {weeks_in_year}")
        return cls(year, week)

    @classmethod
    def of(cls, day: date) -> IsoWeek:
        """The week `day` lies in."""
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @property
    def start(self) -> date:
        """Its Monday."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def end(self) -> date:
        """Its Sunday (the week end of the pending figures)."""
        return date.fromisocalendar(self.year, self.week, 7)

    def back(self, weeks: int) -> IsoWeek:
        """The week `weeks` weeks before this one."""
        return IsoWeek.of(self.start - timedelta(weeks=weeks))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


@dataclass(frozen=True)
class ProcessingTarget:
    """How long an application may take from receipt to decision: whole calendar months."""

    months: int = DEFAULT_TARGET_MONTHS

    def __post_init__(self) -> None:
        if self.months < 1:
            raise ValueError(f"months: the processing target must be at least 1, not "
                             f"{self.months}")

    def deadline(self, received_on: date) -> date:
        """The last day within the target: `received_on` plus the months, clamped to the
        end of a shorter month."""
        month_index = received_on.month - 1 + self.months
        year, month = received_on.year + month_index // 12, month_index % 12 + 1
        day = min(received_on.day, calendar.monthrange(year, month)[1])
        return date(year, month, day)

    @property
    def label(self) -> str:
        """How reports name it: `3 months`."""
        return f"{self.months} month" + ("" if self.months == 1 else "s")


@dataclass(frozen=True)
class ApplicationTimeline:
    """What the figures need of one application, as known at a moment: no personal data."""

    application_id: UUID
    branch_office: str
    region: str
    received_on: date
    forwarded_on: date | None = None
    decided_on: date | None = None
    withdrawn_on: date | None = None
    document_changes: tuple[tuple[date, Literal["checked", "received"], frozenset[str]], ...] = ()
    """In recording order: a check's missing documents, or documents received, with its day."""

    def pending_on(self, day: date) -> bool:
        """Received by `day` and neither decided nor withdrawn by then."""
        closed = [d for d in (self.decided_on, self.withdrawn_on) if d is not None]
        return self.received_on <= day and not any(d <= day for d in closed)

    def at_fund_on(self, day: date) -> bool:
        """Forwarded on or before `day`."""
        return self.forwarded_on is not None and self.forwarded_on <= day

    def waiting_for_documents_on(self, day: date) -> bool:
        """Documents found missing by a check recorded by `day` and not all received by it."""
        missing: set[str] = set()
        for on, change, documents in self.document_changes:
            if on > day:
                continue
            missing = set(documents) if change == "checked" else missing - documents
        return bool(missing)

    @property
    def days_to_decision(self) -> int | None:
        """Days from receipt to decision (None: not decided)."""
        return None if self.decided_on is None else (self.decided_on - self.received_on).days


def timelines(histories: Iterable[Sequence[Any]], region_of: Callable[[int], str],
              known_at: datetime | None = None) -> list[ApplicationTimeline]:
    """Each application's timeline from its events (in recorded order), counting only events
    recorded at or before `known_at` (all if None); `region_of` maps a municipality (BFS
    number) to its social region. Applications not yet received as known then are left out."""
    found = []
    for events in histories:
        known = [e for e in events if known_at is None or e.timestamp <= known_at]
        if known and isinstance(known[0], ApplicationReceived):
            found.append(_timeline(known, region_of))
    return found


def _timeline(events: Sequence[Any], region_of: Callable[[int], str]) -> ApplicationTimeline:
    received: ApplicationReceived = events[0]
    dates: dict[str, date] = {}
    changes: list[tuple[date, Literal["checked", "received"], frozenset[str]]] = []
    for event in events[1:]:
        if isinstance(event, CompletenessChecked):
            day = event.timestamp.astimezone(SWISS_TIME).date()
            changes.append((day, "checked", frozenset(event.missing)))
        elif isinstance(event, DocumentsReceived):
            changes.append((event.received_on, "received", frozenset(event.documents)))
        elif isinstance(event, ApplicationForwarded):
            dates["forwarded_on"] = event.forwarded_on
        elif isinstance(event, BenefitGranted | BenefitRefused):
            dates.setdefault("decided_on", event.decided_on)
        elif isinstance(event, ApplicationWithdrawn):
            dates["withdrawn_on"] = event.withdrawn_on
    return ApplicationTimeline(
        application_id=received.originator_id, branch_office=received.branch_office,
        region=region_of(received.municipality_bfs), received_on=received.received_on,
        document_changes=tuple(changes), **dates,
    )


@dataclass(frozen=True)
class BacklogFigures:
    """The backlog figures of one unit (branch office, social region or the canton) in one
    week; counts of applications, days, shares between 0 and 1 (module docstring)."""

    unit_kind: UnitKind
    unit: str
    week: str
    target_months: int
    received: int
    decided: int
    withdrawn: int
    pending: int
    pending_at_office: int
    pending_at_fund: int
    pending_over_target: int
    late_waiting_for_documents: int
    decided_within_target: int
    median_days_to_decision: float | None
    p90_days_to_decision: int | None
    share_decided_within_target: float | None
    share_late_waiting_for_documents: float | None


@dataclass(frozen=True)
class Backlog:
    """The figures of one week: the canton, each social region, each branch office."""

    week: IsoWeek
    target: ProcessingTarget
    canton: BacklogFigures
    regions: list[BacklogFigures] = field(default_factory=list)
    offices: list[BacklogFigures] = field(default_factory=list)

    @property
    def rows(self) -> list[BacklogFigures]:
        """Every row: the offices, the regions, the canton last."""
        return [*self.offices, *self.regions, self.canton]


def backlog_for_week(apps: Sequence[ApplicationTimeline], week: IsoWeek,
                     target: ProcessingTarget, offices: Iterable[str],
                     regions: Iterable[str]) -> Backlog:
    """The figures of `week` for the canton, each region in `regions` and each office in
    `offices` (also those with no applications: zeros)."""
    by_region = _grouped(apps, lambda a: a.region)
    by_office = _grouped(apps, lambda a: a.branch_office)
    return Backlog(
        week=week, target=target, canton=_figures("canton", "canton", apps, week, target),
        regions=[_figures("region", r, by_region.get(r, []), week, target)
                 for r in sorted(regions)],
        offices=[_figures("branch_office", o, by_office.get(o, []), week, target)
                 for o in sorted(offices)],
    )


def _grouped(apps: Sequence[ApplicationTimeline], key: Callable[[ApplicationTimeline], str]
             ) -> dict[str, list[ApplicationTimeline]]:
    groups: dict[str, list[ApplicationTimeline]] = {}
    for app in apps:
        groups.setdefault(key(app), []).append(app)
    return groups

def backlog_trend(apps: Sequence[ApplicationTimeline], last: IsoWeek, target: ProcessingTarget,
                  offices: Iterable[str], regions: Iterable[str],
                  weeks: int = TREND_WEEKS) -> list[Backlog]:
    """The figures of the `weeks` weeks up to and including `last`, oldest first."""
    office_ids, region_ids = sorted(offices), sorted(regions)
    return [backlog_for_week(apps, last.back(back), target, office_ids, region_ids)
            for back in range(weeks - 1, -1, -1)]


def _figures(kind: UnitKind, name: str, apps: Sequence[ApplicationTimeline], week: IsoWeek,
             target: ProcessingTarget) -> BacklogFigures:
    end = week.end

    def in_week(day: date | None) -> bool:
        return day is not None and week.start <= day <= end

    decided = [a for a in apps if in_week(a.decided_on)]
    days = sorted(a.days_to_decision for a in decided if a.days_to_decision is not None)
    within = [a for a in decided if a.decided_on and a.decided_on <= target.deadline(a.received_on)]
    pending = [a for a in apps if a.pending_on(end)]
    late = [a for a in pending if end > target.deadline(a.received_on)]
    waiting = [a for a in late if a.waiting_for_documents_on(end)]
    return BacklogFigures(
        unit_kind=kind, unit=name, week=str(week), target_months=target.months,
        received=sum(in_week(a.received_on) for a in apps), decided=len(decided),
        withdrawn=sum(in_week(a.withdrawn_on) for a in apps), pending=len(pending),
        pending_at_office=sum(not a.at_fund_on(end) for a in pending),
        pending_at_fund=sum(a.at_fund_on(end) for a in pending),
        pending_over_target=len(late), late_waiting_for_documents=len(waiting),
        decided_within_target=len(within),
        median_days_to_decision=float(statistics.median(days)) if days else None,
        p90_days_to_decision=nearest_rank(days, 90),
        share_decided_within_target=_share(len(within), len(decided)),
        share_late_waiting_for_documents=_share(len(waiting), len(late)),
    )


def nearest_rank(sorted_values: Sequence[int], percent: int) -> int | None:
    """The nearest-rank percentile of ascending `sorted_values`: the value at 1-based rank
    ceil(percent/100 * n) (None if there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent * len(sorted_values) / 100))
    return sorted_values[rank - 1]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None

