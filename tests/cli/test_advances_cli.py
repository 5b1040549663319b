"""`nervenbahn case start-advance|end-advance` end to end: the container gives the case service
its benefits lookup (bound late), so an advance is checked against the application as the
benefits store knows it, through the CLI alone."""

from __future__ import annotations

import json
import os
import pwd
import socket
from decimal import Decimal
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_benefits_cli import FUND, OFFICE, Desk, today
from tests.cli.test_cli import APPLICANT, CASE, open_assess_grant
from tests.domain.case_desk import expected_basic_needs


def this_month() -> str:
    """The first of this month in Switzerland, as an ISO date (asked when a test runs)."""
    return today().replace(day=1).isoformat()


def _ok(cli: Cli, *args: str) -> Any:
    outcome = cli("--json", *args)
    assert outcome.code == 0, outcome.err
    return outcome.json()


@pytest.fixture
def pending(cli: Cli) -> str:
    """A supported case (CASE) and a forwarded EL application of its applicant; its id."""
    assert cli("init").code == 0
    open_assess_grant(cli)
    applicant = _ok(cli, "case", "show", CASE)["applicant"]["person_id"]
    desk = Desk(cli)
    # the case's applicant, known by the case's person id
    answer = desk.ok(OFFICE, "receive", "--kind", "el_ahv", "--municipality", "2546",
                     "--person-id", applicant, *APPLICANT)
    application_id = str(answer["id"])
    desk.check(application_id)
    desk.ok(OFFICE, "forward", application_id)
    return application_id


def _advance(cli: Cli, application_id: str, *extra: str) -> Any:
    return cli("--json", "case", "start-advance", CASE, "--application-id", application_id,
               "--advance-from", this_month(), *extra)


def test_start_and_end_advance_through_the_cli(cli: Cli, pending: str) -> None:
    started = _advance(cli, pending, "--commitment-kind", "commitment", "--commitment-date",
                       today().isoformat())
    assert started.code == 0, started.err
    assert started.json()["events"] == ["AdvanceStarted"]

    too_early = cli("--json", "case", "end-advance", CASE, "--application-id", pending,
                    "--reason", "decided")
    assert too_early.code == 1
    assert "advance-ends-with-application" in too_early.err and "reason" in too_early.err

    Desk(cli).ok(FUND, "grant", pending, "--from-month", this_month()[:7], "--amount",
                 f"{this_month()[:7]}=1900.00")
    ended = _ok(cli, "case", "end-advance", CASE, "--application-id", pending,
                "--reason", "decided")
    assert ended["events"] == ["AdvanceEnded"]
    history = [row["event"] for row in _ok(cli, "case", "history", CASE)]
    assert history[-2:] == ["AdvanceStarted", "AdvanceEnded"]


def test_start_advance_is_refused_by_name_without_commitment_or_for_an_unknown_application(
    cli: Cli, pending: str,
) -> None:
    no_commitment = _advance(cli, pending)
    unknown = _advance(cli, "0b7e4c6a-1111-4222-8333-944455566677", "--commitment-kind",
                       "commitment", "--commitment-date", today().isoformat())

    assert no_commitment.code == 1
    assert "advance-requires-commitment" in no_commitment.err
    assert "commitment_kind" in no_commitment.err
    assert unknown.code != 0 and "0b7e4c6a-1111-4222-8333-944455566677" in unknown.err
    assert "benefits-connected" not in unknown.err
    history = [row["event"] for row in _ok(cli, "case", "history", CASE)]
    assert "AdvanceStarted" not in history


ADMIN = "pay.office:administrator:so-canton"
CLAIMS = "advance-claims:system:so-canton"
OTHER_REGION = "cw-solothurn-01:caseworker:so-solothurn"


def _advanced_paid_and_granted(cli: Cli, application_id: str) -> None:
    """The case advances in view of the application, is paid this month, the EL granted."""
    assert _advance(cli, application_id, "--commitment-kind", "payment_order",
                    "--commitment-date", today().isoformat()).code == 0
    assert cli("--actor", ADMIN, "payments", "account", CASE, "--iban",
               "CH93 0076 2011 6238 5295 7", "--holder", "Z. Quellmatt").code == 0
    assert cli("--actor", ADMIN, "payments", "run", this_month()[:7]).code == 0
    Desk(cli).ok(FUND, "grant", application_id, "--from-month", this_month()[:7], "--amount",
                 f"{this_month()[:7]}=1900.00")


def test_advances_claim_records_once_and_list_show_claims_read_it(cli: Cli, pending: str) -> None:
    _advanced_paid_and_granted(cli, pending)
    refused = cli("advances", "claim")  # a caseworker

    first = _ok(cli, "--actor", CLAIMS, "advances", "claim")
    again = _ok(cli, "--actor", CLAIMS, "advances", "claim")
    (recorded,) = _ok(cli, "advances", "claims", CASE)
    listed = _ok(cli, "advances", "list")
    shown = _ok(cli, "advances", "show", CASE)
    hidden = cli("--actor", OTHER_REGION, "advances", "show", CASE)

    assert refused.code == 1 and "reimbursement-by-system" in refused.err
    assert [o["events"] for o in first] == [
        ["AdvanceEnded", "ReimbursementRecorded", "BudgetChangeProposed"]]
    assert [o["events"] for o in again] == [[]]
    # Paid: SKOS basic needs for two + housing 1,250.00 + health insurance 380.50, above
    # the EL of 1,900.00: the claim is the EL, nothing left for the person.
    paid = expected_basic_needs(today().replace(day=1), 2) + Decimal("1630.50")
    assert paid > Decimal("1900.00")
    assert recorded["months"] == [{"month": this_month(), "paid": str(paid), "el": "1900.00",
                                   "ipv_offset": "0.00", "claim": "1900.00",
                                   "surplus": "0.00"}]
    assert (recorded["claim_total"], recorded["surplus_total"]) == ("1900.00", "0.00")
    assert [(r["application_id"], r["application_stage"], r["end_reason"],
             r["application_age_days"]) for r in listed] == [(pending, "granted", "decided", 0)]
    assert (shown[0]["claims_recorded"], shown[0]["claimed"], shown[0]["surplus"]) == (
        1, "1900.00", "0.00")
    assert (shown[0]["claims_paid"], recorded["payment_message_id"]) == (0, None)
    assert hidden.code == 1 and CASE in hidden.err


def test_advances_show_and_claims_say_what_the_fund_paid(cli: Cli, pending: str) -> None:
    _advanced_paid_and_granted(cli, pending)
    _ok(cli, "--actor", CLAIMS, "advances", "claim")
    (claim,) = _ok(cli, "advances", "claims", CASE)
    payment = {"case_id": CASE, "application_id": pending,
               "claim_version": claim["case_version"], "paid_on": today().isoformat(),
               "to_region": "1900.00", "to_person": "0.00", "message_id": "fund-pay-0001"}

    paid = _ok(cli, "--actor", CLAIMS, "case", "run", "record_reimbursement_paid",
               json.dumps(payment))
    (claim,) = _ok(cli, "advances", "claims", CASE)
    (shown,) = _ok(cli, "advances", "show", CASE)
    table = cli("advances", "claims", CASE)

    assert paid["events"] == ["ReimbursementPaid"]
    assert (claim["paid_on"], claim["paid_to_region"], claim["paid_to_person"],
            claim["payment_message_id"]) == (today().isoformat(), "1900.00", "0.00",
                                             "fund-pay-0001")
    assert (shown["claims_paid"], shown["paid_to_region"], shown["paid_to_person"],
            shown["last_paid_on"]) == (1, "1900.00", "0.00", today().isoformat())
    assert f"paid {today().isoformat()} in fund-pay-0001" in " ".join(table.out.split())


AUDITOR = "fk.meier:auditor:so-finanzkontrolle"
OS_IDENTITY = f"os:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
"""What this test process is established as (its uid's user name, not $USER)."""


def test_benefit_payment_and_claim_actions_record_the_os_user_of_the_cli(
    cli: Cli, pending: str,
) -> None:
    _advanced_paid_and_granted(cli, pending)
    _ok(cli, "--actor", CLAIMS, "advances", "claim")

    rows = _ok(cli, "--actor", AUDITOR, "audit", "extract", "actions")["rows"]
    benefits = [r for r in rows if r["chain"] == "events:benefits_events"]
    by_event = {r["event"]: r for r in rows}

    assert [(r["event"], r["actor"], r["recorded_by"]) for r in benefits] == [
        ("ApplicationReceived", "eva.frei", OS_IDENTITY),
        ("CompletenessChecked", "eva.frei", OS_IDENTITY),
        ("ApplicationForwarded", "eva.frei", OS_IDENTITY),
        ("BenefitGranted", "max.akso", OS_IDENTITY),
    ]
    assert all(r["case_id"] == "" and r["source"] == "live" for r in benefits)
    for event, actor in (("PayoutAccountRecorded", "pay.office"), ("AdvanceStarted",
                         "cw-olten-01"), ("ReimbursementRecorded", "advance-claims")):
        assert (by_event[event]["actor"], by_event[event]["recorded_by"]) == (
            actor, OS_IDENTITY), event
    fund = _ok(cli, "--actor", AUDITOR, "audit", "extract", "actions", "--user", "max.akso")
    assert [r["event"] for r in fund["rows"]] == ["BenefitGranted"]
