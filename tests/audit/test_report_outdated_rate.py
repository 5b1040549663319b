"""The audit report flags basic needs at an outdated rate (issue 19, part 2: "the audit tools
flag budgets on an outdated rate"), as `audit budget` does: a case granted in November 2025
at the 2025 rate and not adjusted shows January and February 2026 marked, with the amount
the rate in force gives; after the yearly adjustment, no month is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from html import escape

import pytest

from domain.application.adjustment import BasicNeedsAdjustments
from domain.commands import Actor
from nervenbahn.audit.report import build_case_report, render_case_report
from nervenbahn.web.i18n import chf
from tests.domain.case_desk import Desk, build_desk, expected_basic_needs, move_to

CASEWORKER = Actor("anna.keller", "caseworker", "so-solothurn")
ADMIN = Actor("ops.admin", "administrator", "so-canton")
GRANTED = datetime(2025, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def desk() -> Iterator[Desk]:
    built = build_desk(CASEWORKER, GRANTED)
    yield built
    built.service.close()


def test_months_on_an_outdated_rate_are_flagged_until_the_adjustment(desk: Desk) -> None:
    case_id = desk.supported()
    move_to(desk, date(2026, 2, 20))
    now = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)

    report = build_case_report(desk.service, case_id, now, now=now)

    assert sorted(report.outdated_rates) == [date(2026, 1, 1), date(2026, 2, 1)]
    check = report.outdated_rates[date(2026, 1, 1)]
    assert check.amount == expected_basic_needs(date(2025, 11, 1), 1)
    assert check.expected == expected_basic_needs(date(2026, 1, 1), 1) != check.amount
    html = render_case_report(report, "de")
    assert escape(f"Grundbedarf zu einem veralteten Ansatz: {chf(check.amount)}") in html
    assert "veralteten Ansatz (die jährliche Anpassung wurde nicht erfasst): 2." in html
    assert "taux dépassé" in render_case_report(report, "fr")

    BasicNeedsAdjustments(desk.service).run(2026, ADMIN)
    later = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)
    adjusted = build_case_report(desk.service, case_id, later, now=later)

    assert adjusted.outdated_rates == {}
    assert "veralteten Ansatz" not in render_case_report(adjusted, "de")
