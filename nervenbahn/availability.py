"""Availability per month, computed from the incidents table only (`nervenbahn.incidents`),
for the quarterly report.

Definition: a month runs from its first midnight to the next month's, Swiss time (so March
and October have an hour less or more). A minute of it (counted from the month's start) is
**out** if any incident is open at any moment within it; per kind, if an incident of that kind
is. An ongoing incident counts until `now`. Availability = (minutes − minutes out) / minutes,
as a percentage rounded to two decimals. Example: 90 minutes out in a 30-day month (43200
minutes) give 99.79 %. The number of incidents is those that overlap the month.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from domain.case import SWISS_TIME
from nervenbahn.incidents import KINDS, Incident

__all__ = ["MonthAvailability", "month_availability", "quarter_months"]


@dataclass(frozen=True)
class MonthAvailability:
    """One month's figures."""

    month: date
    """The month's first day."""
    minutes: int
    minutes_out: int
    minutes_by_kind: dict[str, int] = field(default_factory=dict)
    incidents: int = 0

    @property
    def availability_percent(self) -> float:
        """Share of minutes not out, in per cent, two decimals."""
        return round(100 * (self.minutes - self.minutes_out) / self.minutes, 2)


def quarter_months(first_day: date) -> list[date]:
    """The first days of the three months of the quarter that starts on `first_day`."""
    return [date(first_day.year, first_day.month + n, 1) for n in range(3)]


def month_availability(month: date, incidents: Iterable[Incident],
                       now: datetime) -> MonthAvailability:
    """The figures of the month starting on `month` from `incidents` (ongoing ones end at
    `now`)."""
    # in UTC: two times of one zone subtract as wall-clock times, ignoring the DST shift
    start = datetime(month.year, month.month, 1, tzinfo=SWISS_TIME).astimezone(UTC)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    end = datetime(following.year, following.month, 1, tzinfo=SWISS_TIME).astimezone(UTC)
    minutes = round((end - start).total_seconds() / 60)
    out: set[int] = set()
    by_kind: dict[str, set[int]] = {kind: set() for kind in KINDS}
    count = 0
    for incident in incidents:
        hit = _minutes(incident, start, end, now)
        if hit:
            count += 1
            out |= hit
            by_kind.setdefault(incident.kind, set()).update(hit)
    return MonthAvailability(month, minutes, len(out),
                             {kind: len(hit) for kind, hit in by_kind.items()}, count)


def _minutes(incident: Incident, start: datetime, end: datetime, now: datetime) -> set[int]:
    """The minutes (index from `start`) of [start, end) in which `incident` was open."""
    begin = max(incident.started_at, start)
    until = min(incident.ended_at or now, end)
    if until <= begin:
        return set()
    first = math.floor((begin - start).total_seconds() / 60)
    last = math.ceil((until - start).total_seconds() / 60)
    return set(range(first, last))
