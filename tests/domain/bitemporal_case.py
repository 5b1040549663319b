"""A case with retroactive budget changes and a retroactive closure, recorded at known times,
and what it was owed per month as known at three times, computed by hand.

Shared by the domain, CLI and API tests of the bitemporal queries.

The story (Swiss time; a one-person household in Solothurn):

| recorded    | what                                                      | effective  |
| ----------- | --------------------------------------------------------- | ---------- |
| 5 Jan 2026  | case opened, assessed                                     | 5 Jan      |
| 6 Jan 2026  | support granted: basic needs 1061 + rent 1200 + premium   | 1 Jan      |
|             | 350 − income 0 = CHF 2611 a month (V1)                    |            |
| 10 May 2026 | budget changed: income 600 (rent 1200, premium 350 stated  | 11 Mar     |
|             | as in force, so unchanged): changes the line income (V2)  |            |
| 20 Jun 2026 | budget changed: rent 1000 (income 0, premium 350 stated   | 1 Feb      |
|             | as in force on 1 Feb): changes the line housing (V3)      |            |
| 25 Jun 2026 | case closed (employment): last supported day 20 May       | 20 May     |

Basic needs: CHF 1061 for one person from 1 Jan 2026 (domain/reference/data/
skos_basic_needs.json, year 2026: 1031 × 1.029 rounded; factor 1.00 for one person).

Each budget line has a timeline of its own (domain/entitlement.py): on each day a line's amount
is that of the latest change of that line effective on or before the day. So after 20 June:
housing 1200 in January, 1000 from 1 Feb (V3; V2 did not change housing, so the cut holds after
11 Mar too); income 0 until 10 Mar, 600 from 11 Mar (V2). The budget is
1061 + 1200 + 350 − 0 = 2611 in January, 1061 + 1000 + 350 − 0 = 2411 from 1 Feb to 10 Mar,
1061 + 1000 + 350 − 600 = 1811 from 11 Mar.

(Before lines had timelines of their own, V2 was a whole budget with rent 1200, and the cut
applied only from 1 Feb to 10 Mar: March 2140.03, April 2011.00, May 1297.42 as known on
30 June — CHF 464.51 more for March–May than the permanent cut owes; issue 19.)
"""

from __future__ import annotations

import base64
import secrets
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

from domain import commands
from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from nervenbahn.config import load_settings
from nervenbahn.container import build_service, close_service
from tests.domain.case_desk import valid_ahvn13
from tests.domain.fakes import FakeClock

__all__ = [
    "ACTOR",
    "EXPECTED",
    "KNOWN_AT",
    "MONTHS",
    "START",
    "end_of",
    "record_retroactive_case",
    "record_story_in_sqlite",
]

ACTOR = commands.Actor("anna.keller", "caseworker", "so-solothurn")
START = datetime(2026, 1, 5, 9, 0, tzinfo=SWISS_TIME)
MONTHS = [date(2026, month, 1) for month in range(1, 7)]


def end_of(day: date) -> datetime:
    """The last moment of a day, Swiss time (what `--as-of 2026-04-30` means)."""
    return datetime.combine(day, time.max, tzinfo=SWISS_TIME)


KNOWN_AT = {
    "30 April": end_of(date(2026, 4, 30)),
    "31 May": end_of(date(2026, 5, 31)),
    "30 June": end_of(date(2026, 6, 30)),
}

EXPECTED: dict[str, list[Decimal]] = {
    # Only V1 is known; support runs on: every month 2611.
    "30 April": [Decimal(x) for x in ("2611.00",) * 6],
    # V1 and V2 (from 11 March) are known.
    # March: 2611 × 10/31 + 2011 × 21/31 = (26110 + 42231) / 31 = 68341 / 31 = 2204.548… → 2204.55
    "31 May": [Decimal(x) for x in (
        "2611.00", "2611.00", "2204.55", "2011.00", "2011.00", "2011.00",
    )],
    # V3 (housing 1000 from 1 Feb) and the closure (last supported day 20 May) are known too.
    # February: 1061 + 1000 + 350 − 0 = 2411.00 all month
    # March: 2411 × 10/31 + 1811 × 21/31 = (24110 + 38031) / 31 = 62141 / 31 = 2004.548… → 2004.55
    # April: 1061 + 1000 + 350 − 600 = 1811.00
    # May: 1811 × 20/31 = 36220 / 31 = 1168.387… → 1168.39;  June: no supported day → 0.00
    "30 June": [Decimal(x) for x in (
        "2611.00", "2411.00", "2004.55", "1811.00", "1168.39", "0.00",
    )],
}
"""Amount owed per month January–June 2026, as known at each time."""


def _command(name: str, **data: object) -> commands.Command:
    payload = {
        "actor": {"user_id": ACTOR.user_id, "role": ACTOR.role, "organisation": ACTOR.organisation},
        "correlation_id": str(uuid4()),
        **data,
    }
    return commands.parse_command(name, payload)


def _at(clock: FakeClock, day: date) -> None:
    moment = datetime(day.year, day.month, day.day, 9, 0, tzinfo=SWISS_TIME)
    clock.advance(seconds=(moment - clock()).total_seconds())


def record_retroactive_case(service: CaseService, clock: FakeClock) -> UUID:
    """Record the story above through `service` (whose clock is `clock`, at START or before);
    the case id."""
    _at(clock, START.date())
    applicant = {
        "given_name": "Erika", "family_name": "Muster", "ahvn13": valid_ahvn13(4242),
        "birth_date": "1980-04-12", "street": "Hauptgasse 1", "postal_code": "4500",
        "town": "Solothurn",
    }
    case_id = service.execute(
        _command("open_case", municipality_bfs=2601, household_size=1, applicant=applicant)
    ).case_id
    cid = str(case_id)
    service.execute(
        _command("complete_assessment", case_id=cid, needs=["financial"],
                 employability="employable")
    )
    _at(clock, date(2026, 1, 6))
    service.execute(
        _command("grant_support", case_id=cid, support_from="2026-01-01", housing="1200",
                 health_insurance="350", income="0")
    )
    _at(clock, date(2026, 5, 10))
    service.execute(
        _command("change_budget", case_id=cid, effective_date="2026-03-11",
                 reason="income_change", housing="1200", health_insurance="350", income="600")
    )
    _at(clock, date(2026, 6, 20))
    service.execute(
        _command("change_budget", case_id=cid, effective_date="2026-02-01",
                 reason="rent_change", housing="1000", health_insurance="350", income="0")
    )
    _at(clock, date(2026, 6, 25))
    service.execute(
        _command("close_case", case_id=cid, reason="employment", closing_date="2026-05-20")
    )
    return case_id


def record_story_in_sqlite(folder: Path) -> tuple[dict[str, str], UUID]:
    """The story recorded into a SQLite store in `folder`: the store's environment
    (NERVENBAHN_STORE, NERVENBAHN_MASTER_KEY) and the case id."""
    env = {
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    clock = FakeClock(START)
    service = build_service(load_settings(env), clock=clock)
    try:
        case_id = record_retroactive_case(service, clock)
    finally:
        close_service(service)
    return env, case_id
