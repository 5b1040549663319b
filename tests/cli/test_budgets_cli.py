"""`nervenbahn budgets adjust-basic-needs YEAR [--preview]` on a real SQLite store, and the
outdated-rate flag of `audit state` / `audit budget` (issue 19, item 2)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

import nervenbahn.cli
from domain.case import SWISS_TIME
from nervenbahn.cli.session import Session
from nervenbahn.container import Container
from tests.cli.conftest import Cli
from tests.cli.test_reimbursement_statement import _desks
from tests.domain.case_desk import expected_basic_needs, move_to
from tests.domain.fakes import FakeClock

ADMINISTRATOR = "ops-so:administrator:so-canton"
AUDITOR = "fk.meier:auditor:so-finanzkontrolle"


@pytest.fixture
def clock(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for the recording services and every CLI invocation; store initialised."""
    fake = FakeClock(datetime(2025, 11, 3, 9, tzinfo=SWISS_TIME))
    monkeypatch.setattr(nervenbahn.cli, "Session",
                        lambda: Session(_container=Container(clock=fake)))
    assert cli("init").code == 0
    return fake


def _record(clock: FakeClock) -> dict[str, UUID]:
    """Three cases granted in November 2025 (one and two persons, and one closed in
    December), the clock then on 8 January 2026."""
    container = Container(clock=clock)
    try:
        desk, _ = _desks(container, clock)
        cases = {"one": desk.supported(), "two": desk.assessed(household_size=2),
                 "closed": desk.supported()}
        desk.run("grant_support", case_id=cases["two"])
        move_to(desk, date(2025, 12, 10))
        desk.run("close_case", case_id=cases["closed"], reason="employment")
        move_to(desk, date(2026, 1, 8))
    finally:
        container.close()
    return cases


def test_preview_then_run_then_run_again(cli: Cli, clock: FakeClock) -> None:
    cases = _record(clock)
    history_before = {name: cli("--actor", ADMINISTRATOR, "--json", "case", "history",
                                str(cid)).json() for name, cid in cases.items()}

    preview = cli("--actor", ADMINISTRATOR, "--json", "budgets", "adjust-basic-needs", "2026",
                  "--preview")
    after_preview = {name: cli("--actor", ADMINISTRATOR, "--json", "case", "history",
                               str(cid)).json() for name, cid in cases.items()}
    run = cli("--actor", ADMINISTRATOR, "--json", "budgets", "adjust-basic-needs", "2026")
    again = cli("--actor", ADMINISTRATOR, "budgets", "adjust-basic-needs", "2026")

    assert preview.code == 0, preview.err
    assert after_preview == history_before
    rows = {row["case_id"]: row for row in preview.json()["rows"]}
    assert set(rows) == {str(cases["one"]), str(cases["two"])}
    two = rows[str(cases["two"])]
    assert (Decimal(two["old"]), Decimal(two["new"])) == (
        expected_basic_needs(date(2025, 1, 1), 2), expected_basic_needs(date(2026, 1, 1), 2))
    assert Decimal(two["difference"]) == Decimal(two["new"]) - Decimal(two["old"])
    assert run.code == 0, run.err
    assert [r["outcome"] for r in run.json()["rows"]] == ["recorded", "recorded"]
    assert run.json()["rate"]["decision"] is None  # none recorded for 2026: shown as such
    assert again.code == 0 and "0 not at this rate" in again.out
    closed = cli("--actor", ADMINISTRATOR, "--json", "case", "history", str(cases["closed"]))
    assert closed.json() == history_before["closed"]


def test_a_caseworker_may_not_run_the_adjustment(cli: Cli, clock: FakeClock) -> None:
    _record(clock)

    refused = cli("budgets", "adjust-basic-needs", "2026", "--preview")

    assert refused.code == 1
    assert "adjustment-by-administrator" in refused.err


def test_audit_flags_a_month_on_an_outdated_rate_until_the_adjustment(
    cli: Cli, clock: FakeClock
) -> None:
    case_id = str(_record(clock)["one"])
    january = ("--actor", AUDITOR, "--json", "audit", "budget", case_id, "--month", "2026-01",
               "--as-known-at", "2026-01-08T12:00:00+01:00")

    before = cli(*january)
    state = cli("--actor", AUDITOR, "audit", "state", case_id, "--as-of",
                "2026-01-08T12:00:00+01:00")
    assert cli("--actor", ADMINISTRATOR, "budgets", "adjust-basic-needs", "2026").code == 0
    clock.advance(hours=1)
    after = cli("--actor", AUDITOR, "--json", "audit", "budget", case_id, "--month", "2026-01",
                "--as-known-at", clock().isoformat())
    december = cli("--actor", AUDITOR, "--json", "audit", "budget", case_id, "--month",
                   "2025-12", "--as-known-at", clock().isoformat())

    assert before.code == 0, before.err
    assert before.json()["basic_needs_outdated"] is True
    (check,) = before.json()["basic_needs_rate"]
    assert Decimal(check["expected"]) == expected_basic_needs(date(2026, 1, 1), 1)
    assert state.code == 0 and "OUTDATED" in state.out
    assert after.json()["basic_needs_outdated"] is False
    assert december.json()["basic_needs_outdated"] is False
