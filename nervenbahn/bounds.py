"""The integers, dates, times, months and quarters the CLI and the API accept, bounded.

Python's `date` ends in 9999 and SQLite's integers at 2**63 - 1: a time on 9999-12-31 cannot be
turned into UTC, the month after 9999-12 does not exist, and an offset of 2**63 does not fit a
query parameter. Such values once ended as 500 answers with 11 KB of traceback in the API and
as exit 70 in the CLI. Every parameter is checked here instead, and refused with the reason
(the callers name the parameter: a 422 problem or an exit-1 error).

The bounds are far beyond anything recorded (years 1900 to 2999) yet leave room for the
arithmetic done on them (the next day, month or quarter; time zones).
"""

from __future__ import annotations

from datetime import date, datetime, time

from domain.application.bitemporal import parse_month
from domain.case import SWISS_TIME
from domain.commands import EARLIEST_YEAR, LATEST_YEAR
from projections.reporting import Quarter

__all__ = [
    "EARLIEST_YEAR",
    "LATEST_YEAR",
    "MAX_INTEGER",
    "MAX_OFFSET",
    "bounded_day",
    "parse_bounded_day",
    "parse_bounded_month",
    "parse_bounded_quarter",
    "parse_moment",
]

MAX_INTEGER = 2**63 - 1
"""The largest integer SQLite and PostgreSQL (bigint) store: positions, ids, versions."""
MAX_OFFSET = 10**9
"""The largest offset into a list (no list holds a billion rows)."""


def bounded_day(day: date) -> date:
    """`day` if its year lies in EARLIEST_YEAR..LATEST_YEAR; ValueError saying so if not."""
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ValueError(f"{day.isoformat()} lies outside the years {EARLIEST_YEAR} to "
                         f"{LATEST_YEAR}")
    return day


def parse_bounded_day(text: str) -> date:
    """An ISO date (YYYY-MM-DD) within the bounds; ValueError with the reason."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None
    return bounded_day(day)


def parse_moment(text: str) -> datetime:
    """An ISO date (the end of that day, Swiss time) or an ISO date-time (without offset:
    Swiss time), within the bounds; ValueError with the reason."""
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.max, tzinfo=SWISS_TIME)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date (2026-06-30) or date-time") from None
    bounded_day(moment.date())
    return moment if moment.tzinfo else moment.replace(tzinfo=SWISS_TIME)


def parse_bounded_month(text: str) -> date:
    """`YYYY-MM` as the first day of that month, within the bounds; ValueError if not."""
    return bounded_day(parse_month(text))


def parse_bounded_quarter(text: str) -> Quarter:
    """A quarter such as `2026Q1`, within the bounds; ValueError if not."""
    quarter = Quarter.parse(text)
    if not EARLIEST_YEAR <= quarter.year <= LATEST_YEAR:
        raise ValueError(f"{text!r} lies outside the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return quarter
