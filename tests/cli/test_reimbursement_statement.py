"""The person's statement of a reimbursement (nervenbahn.reimbursement_statement and
`nervenbahn advances statement`): the worked example's figures cell by cell in the HTML and the
CSV, escaping, no other person's data, the access log, the read scope, and erasure.

Through the CLI, the hand-computed worked example (docs/benefits.md, "Advances and
reimbursement") is recorded by the services at fake times, claimed by `advances claim` (the
CLI's container on the same fake clock), and read back by `advances claims --json` and
`advances statement`: the recorded claims, not a computation of the statement's own."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

import nervenbahn.cli
from domain.case import SWISS_TIME
from domain.commands import Actor
from domain.payments import RecordPayoutAccount, RunPayments, parse_month
from domain.personal_data import PersonalData
from domain.reimbursement import claimed_so_far, compute_reimbursement
from nervenbahn.cli.session import Session
from nervenbahn.container import Container
from nervenbahn.reimbursement_statement import (
    FIGURES_FIELDS,
    STATEMENT_FIELDS,
    Statement,
    render_statement_csv,
    render_statement_html,
)
from tests.audit.test_report import Tables
from tests.cli.conftest import Cli
from tests.domain.benefit_desk import BenefitDesk
from tests.domain.case_desk import CommandFactory, Desk, expected_basic_needs, move_to, person_input
from tests.domain.fakes import FakeClock
from tests.domain.test_reimbursement import (
    ADVANCE,
    EL_MAY,
    PAID_JUNE,
    PAID_MAY,
    advance_from_january_to_may,
)

CASE = UUID("6f1c0a52-6c5e-4c59-9a43-2f5f3d1e0b11")
APPLICATION = UUID("0c9d8e7f-1a2b-4c3d-8e9f-a0b1c2d3e4f5")
PERSON = PersonalData(UUID(int=7), "Paula", "Muster", "756.1234.5678.97", date(1980, 4, 12),
                      "Hauptgasse 1", "4500", "Solothurn")
SOLOTHURN = "anna.keller:caseworker:so-solothurn"
OLTEN = "cw-olten-01:caseworker:so-olten"
AUDITOR = "fk.meier:auditor:so-finanzkontrolle"
ADMIN = "ops:administrator:so-canton"
CLAIMS = "advance-claims:system:so-canton"


def _tables(html: str) -> dict[str, list[list[str]]]:
    return Tables(html).tables


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


FIRST_MONTHS = [
    ["Monat", "Von der Sozialhilfe bezahlt", "EL", "Verrechnete Prämienverbilligung",
     "Rückforderung der Sozialhilfe", "Überschuss an Sie"],
    ["Februar 2026", "2'400.00", "1'900.00", "0.00", "1'900.00", "0.00"],
    ["März 2026", "2'400.00", "1'900.00", "0.00", "1'900.00", "0.00"],
    ["April 2026", "2'400.00", "2'600.00", "0.00", "2'400.00", "200.00"],
    ["Mai 2026", "2'400.00", "2'600.00", "0.00", "2'400.00", "200.00"],
    ["Total", "9'600.00", "9'000.00", "0.00", "8'600.00", "400.00"],
]
JUNE_MONTHS = [
    FIRST_MONTHS[0], FIRST_MONTHS[1],
    ["März 2026", "2'000.00", "1'900.00", "0.00", "1'900.00", "0.00"],
    ["April 2026", "2'000.00", "2'600.00", "0.00", "2'000.00", "600.00"],
    ["Mai 2026", "2'000.00", "2'600.00", "0.00", "2'000.00", "600.00"],
    ["Total", "8'400.00", "9'000.00", "0.00", "7'800.00", "1'200.00"],
]
JUNE_CHANGES = [
    ["Monat", "Rückforderung bisher", "Rückforderung neu", "Änderung Rückforderung",
     "Überschuss bisher", "Überschuss neu", "Änderung Überschuss"],
    ["April 2026", "2'400.00", "2'000.00", "-400.00", "200.00", "600.00", "+400.00"],
    ["Mai 2026", "2'400.00", "2'000.00", "-400.00", "200.00", "600.00", "+400.00"],
    ["Total", "8'600.00", "7'800.00", "-800.00", "400.00", "1'200.00", "+800.00"],
]


def _first_statement(person: PersonalData = PERSON) -> Statement:
    first = compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)
    return Statement(CASE, APPLICATION, person, first, date(2026, 5, 20))


def _june_statement() -> Statement:
    before = claimed_so_far([compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)])
    june = compute_reimbursement(ADVANCE, EL_MAY, PAID_JUNE, before=before)
    return Statement(CASE, APPLICATION, PERSON, june, date(2026, 6, 10), before, sequence=2)


def test_worked_example_first_statement_has_the_hand_computed_figures() -> None:
    statement = _first_statement()

    tables = _tables(render_statement_html(statement))
    rows = _csv(render_statement_csv(statement))

    assert statement.kind == "claim"
    assert tables == {"months": FIRST_MONTHS}
    assert [(r["month"], r["paid_by_social_assistance"], r["el"], r["ipv_offset"], r["claim"],
             r["surplus"], r["claim_change"], r["surplus_change"]) for r in rows] == [
        ("2026-02", "2400.00", "1900.00", "0.00", "1900.00", "0.00", "1900.00", "0.00"),
        ("2026-03", "2400.00", "1900.00", "0.00", "1900.00", "0.00", "1900.00", "0.00"),
        ("2026-04", "2400.00", "2600.00", "0.00", "2400.00", "200.00", "2400.00", "200.00"),
        ("2026-05", "2400.00", "2600.00", "0.00", "2400.00", "200.00", "2400.00", "200.00"),
        ("total", "9600.00", "9000.00", "0.00", "8600.00", "400.00", "8600.00", "400.00"),
    ]


def test_worked_example_correction_shows_what_changed_against_the_earlier_statement() -> None:
    statement = _june_statement()

    html = render_statement_html(statement)
    rows = _csv(render_statement_csv(statement))

    assert statement.kind == "correction"
    assert _tables(html) == {"months": JUNE_MONTHS, "changes": JUNE_CHANGES}
    assert "Die Sozialhilfe gibt CHF 800.00 ihrer Rückforderung zurück." in html
    assert "Sie erhalten CHF 800.00 mehr." in html
    assert [(r["month"], r["claim_change"], r["surplus_change"]) for r in rows] == [
        ("2026-02", "0.00", "0.00"), ("2026-03", "0.00", "0.00"),
        ("2026-04", "-400.00", "400.00"), ("2026-05", "-400.00", "400.00"),
        ("total", "-800.00", "800.00")]


def test_statement_names_the_legal_basis_and_is_self_contained() -> None:
    html = render_statement_html(_first_statement())

    for source in ("ELG Art. 12", "ELV Art. 22 Abs. 4", "ELV Art. 22 Abs. 5",
                   "SKOS-Richtlinie F.2", "zeitliche", "sachliche"):
        assert source in html
    assert '<html lang="de">' in html
    for external in ("<script", "src=", "href=", "@import", "url("):
        assert external not in html.lower()


def test_a_hostile_name_is_escaped_and_the_csv_holds_no_name() -> None:
    hostile = PersonalData(UUID(int=8), "<script>alert(1)</script>", 'O"Brien & <b>',
                           "756.1234.5678.97", date(1980, 4, 12), "<img src=x>", "4500", "Olten")
    statement = _first_statement(hostile)

    html = render_statement_html(statement)

    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; O&quot;Brien &amp; &lt;b&gt;" in html
    assert "&lt;img src=x&gt;" in html
    csv_text = render_statement_csv(statement)
    assert "script" not in csv_text and "Brien" not in csv_text and "756." not in csv_text


# --- through the CLI, from claims recorded in a real store ----------------------------------


@pytest.fixture
def clock(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for the services the test records with and for every CLI invocation
    (each gets a container on it), so that the claims are recorded on the worked example's
    days; the store initialised."""
    fake = FakeClock(datetime(2026, 1, 5, 9, tzinfo=SWISS_TIME))
    monkeypatch.setattr(nervenbahn.cli, "Session",
                        lambda: Session(_container=Container(clock=fake)))
    assert cli("init").code == 0
    return fake


def _desks(container: Container, clock: FakeClock) -> tuple[Desk, BenefitDesk]:
    cases = container.service
    cases._benefits = container.benefits.on_record  # as the container binds it late
    actor = Actor("anna.keller", "caseworker", "so-solothurn")
    desk = Desk(cases, clock, None, CommandFactory(actor, lambda: clock().astimezone(  # type: ignore[arg-type]
        SWISS_TIME).date()), cases.reference)
    return desk, BenefitDesk(container.benefits, clock, None)  # type: ignore[arg-type]


def _pay(container: Container, month: str) -> None:
    pay = Actor("pay.office", "administrator", "so-canton")
    container.payments.run(RunPayments(actor=pay, correlation_id=uuid4(),
                                       month=parse_month(month)))


# CHF 2,400.00 a month for two persons: basic needs, CHF 350.00 of health insurance (the
# default), housing the rest.
HOUSING = PAID_MAY[date(2026, 1, 1)] - expected_basic_needs(date(2026, 1, 1), 2) - 350


def _record_until_the_grant(clock: FakeClock) -> tuple[str, str]:
    """The worked example until the fund's grant on 20 May, recorded by the services at the
    fake times: a two-person household (the EL applicant is the case's applicant, whose name
    is hostile), supported from January at CHF 2,400.00, advanced from January, the payment
    runs of January to May, EL from February (1,900.00; from April 2,600.00). The case id
    and the application id."""
    container = Container(clock=clock)
    try:
        desk, fund = _desks(container, clock)
        move_to(desk, date(2026, 1, 5))
        case_id = desk.assessed(
            application_date="2026-01-05", household_size=2,
            applicant=person_input(1, given_name="<script>alert(1)</script>",
                                   family_name="Muster"),
            other_members=[person_input(2, given_name="Zweitperson", family_name="Anders",
                                        street="Nebengasse 9")])
        desk.run("grant_support", case_id=case_id, support_from="2026-01-01",
                 housing=str(HOUSING))
        container.payments.record_account(RecordPayoutAccount(
            actor=Actor("pay.office", "administrator", "so-canton"), correlation_id=uuid4(),
            case_id=case_id, iban="CH9300762011623852957", holder="P. Muster"))
        application_id = advance_from_january_to_may(
            desk, fund, case_id, lambda month: _pay(container, month))
        move_to(desk, date(2026, 5, 20))
        fund.run("grant_benefit", application_id=application_id, from_month="2026-02",
                 amounts=[{"from_month": "2026-02", "monthly_chf": "1900.00"},
                          {"from_month": "2026-04", "monthly_chf": "2600.00"}])
    finally:
        container.close()
    return str(case_id), str(application_id)


def _record_june(clock: FakeClock, case_id: str) -> None:
    """10 June: a budget change effective 1 March (income 400.00: the budget falls to
    2,000.00), then June's payment run (claim-backs of 400.00 for March, April and May)."""
    container = Container(clock=clock)
    try:
        desk, _ = _desks(container, clock)
        move_to(desk, date(2026, 6, 10))
        desk.run("change_budget", case_id=UUID(case_id), effective_date="2026-03-01",
                 reason="income_change", housing=str(HOUSING), income="400.00")
        _pay(container, "2026-06")
    finally:
        container.close()


def _claimed(cli: Cli) -> list[list[str]]:
    outcome = cli("--json", "--actor", CLAIMS, "advances", "claim")
    assert outcome.code == 0, outcome.err
    return [o["events"] for o in outcome.json()]  # type: ignore[attr-defined]


@pytest.fixture
def recorded(cli: Cli, clock: FakeClock) -> tuple[str, str]:
    """The worked example claimed through the CLI on 20 May, and corrected through the CLI
    after the June budget change: case id and application id."""
    ids = _record_until_the_grant(clock)
    assert _claimed(cli) == [["AdvanceEnded", "ReimbursementRecorded", "ClosureProposed"]]
    _record_june(clock, ids[0])
    assert _claimed(cli) == [["ReimbursementRecorded"]]
    assert _claimed(cli) == [[]]  # the same facts again: nothing
    return ids


def _figures(month: str, paid: str, el: str, claim: str, surplus: str) -> dict[str, str]:
    return {"month": month, "paid": paid, "el": el, "ipv_offset": "0.00", "claim": claim,
            "surplus": surplus}


# The claims recorded, computed by hand (claim = min(paid, EL), surplus = EL - claim):
#   20 May, paid 2400 each month:  Feb, Mar: min(2400, 1900) = 1900, surplus 1900 - 1900 = 0
#                                  Apr, May: min(2400, 2600) = 2400, surplus 2600 - 2400 = 200
#                                  total claim 1900 + 1900 + 2400 + 2400 = 8600, surplus 400
#   10 June, paid 2000 from March: Mar: min(2000, 1900) = 1900 (unchanged, not a correction)
#                                  Apr, May: min(2000, 2600) = 2000, surplus 600:
#                                  claim 2000 - 2400 = -400, surplus 600 - 200 = +400 each
#                                  total claim -800, surplus +800 (in all 7800 and 1200)
MAY_CLAIM = [_figures("2026-02-01", "2400.00", "1900.00", "1900.00", "0.00"),
             _figures("2026-03-01", "2400.00", "1900.00", "1900.00", "0.00"),
             _figures("2026-04-01", "2400.00", "2600.00", "2400.00", "200.00"),
             _figures("2026-05-01", "2400.00", "2600.00", "2400.00", "200.00")]
JUNE_FIGURES = [MAY_CLAIM[0],
                _figures("2026-03-01", "2000.00", "1900.00", "1900.00", "0.00"),
                _figures("2026-04-01", "2000.00", "2600.00", "2000.00", "600.00"),
                _figures("2026-05-01", "2000.00", "2600.00", "2000.00", "600.00")]
JUNE_CORRECTIONS = [_figures("2026-04-01", "-400.00", "0.00", "-400.00", "400.00"),
                    _figures("2026-05-01", "-400.00", "0.00", "-400.00", "400.00")]


def _statement(cli: Cli, actor: str, ids: tuple[str, str], out: Path, *more: str) -> Any:
    return cli("--json", "--actor", actor, "advances", "statement", *ids, "--out", str(out),
               *more)


def test_cli_worked_example_claims_are_recorded_with_the_hand_computed_figures(
    cli: Cli, recorded: tuple[str, str]
) -> None:
    listed = cli("--json", "--actor", SOLOTHURN, "advances", "claims", recorded[0])

    assert listed.code == 0, listed.err
    may, june = listed.json()  # type: ignore[misc]
    assert (may["application_id"], may["recorded_on"]) == (recorded[1], "2026-05-20")
    assert may["months"] == may["corrections"] == MAY_CLAIM
    assert (may["claim_total"], may["surplus_total"], may["ipv_offset_total"]) == (
        "8600.00", "400.00", "0.00")
    assert june["recorded_on"] == "2026-06-10"
    assert (june["months"], june["corrections"]) == (JUNE_FIGURES, JUNE_CORRECTIONS)
    assert (june["claim_total"], june["surplus_total"]) == ("-800.00", "800.00")
    table = cli("--actor", SOLOTHURN, "advances", "claims", recorded[0]).out
    assert f"claim 1 of {recorded[1]}" in table and f"correction 2 of {recorded[1]}" in table


def test_cli_statements_of_the_claim_and_the_correction_show_the_recorded_figures(
    cli: Cli, recorded: tuple[str, str], tmp_path: Path
) -> None:
    first = _statement(cli, SOLOTHURN, recorded, tmp_path / "out", "--sequence", "1")
    latest = _statement(cli, SOLOTHURN, recorded, tmp_path / "out")
    again = _statement(cli, SOLOTHURN, recorded, tmp_path / "again", "--sequence", "2")

    assert first.code == latest.code == again.code == 0, first.err + latest.err
    claim, correction = first.json(), latest.json()
    assert (claim["kind"], claim["sequence"], claim["recorded_on"], claim["claim"],
            claim["surplus"]) == ("claim", 1, "2026-05-20", "8600.00", "400.00")
    assert (correction["kind"], correction["sequence"], correction["claim"],
            correction["surplus"]) == ("correction", 2, "-800.00", "800.00")
    assert Path(claim["html"]).name == f"statement-{recorded[1]}-1-claim-20260520.html"
    assert _tables(Path(claim["html"]).read_text(encoding="utf-8")) == {
        "months": FIRST_MONTHS}
    html = Path(correction["html"]).read_text(encoding="utf-8")
    assert _tables(html) == {"months": JUNE_MONTHS, "changes": JUNE_CHANGES}
    assert "Abrechnung Nr. 2 vom 10.06.2026" in html
    assert [(r["month"], r["claim"], r["claim_change"]) for r in
            _csv(Path(correction["csv"]).read_text())] == [
        ("2026-02", "1900.00", "0.00"), ("2026-03", "1900.00", "0.00"),
        ("2026-04", "2000.00", "-400.00"), ("2026-05", "2000.00", "-400.00"),
        ("total", "7800.00", "-800.00")]
    # The first claim's statement, written after the correction was recorded, still shows the
    # May figures; a claim's statement written twice is the same.
    assert Path(again.json()["html"]).read_text(encoding="utf-8") == html


def test_cli_statement_is_logged_and_names_only_the_person(
    cli: Cli, recorded: tuple[str, str], tmp_path: Path
) -> None:
    done = _statement(cli, SOLOTHURN, recorded, tmp_path / "out")

    assert done.code == 0, done.err
    html = Path(done.json()["html"]).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Muster" in html and "<script" not in html
    assert "Zweitperson" not in html and "Anders" not in html and "Nebengasse" not in html
    assert "Zweitperson" not in Path(done.json()["csv"]).read_text()
    entries = cli("--json", "--actor", AUDITOR, "audit", "access", "--case",
                  recorded[0]).json()["entries"]  # type: ignore[index]
    statements = [e for e in entries if e["endpoint"] == "nervenbahn advances statement"]
    assert [e["consumer"] for e in statements] == ["cli:anna.keller"] * 2  # both members
    # logged as what it shows of whom: the person's name and address, the other member's
    # case figures only (a subject-access report must not say their name was read)
    fields = sorted(tuple(e["fields"]) for e in statements)
    assert fields == sorted([STATEMENT_FIELDS, FIGURES_FIELDS])


def test_cli_statement_of_no_recorded_claim_is_refused_by_name_and_writes_nothing(
    cli: Cli, clock: FakeClock, tmp_path: Path
) -> None:
    ids = _record_until_the_grant(clock)  # granted, not yet claimed
    unclaimed = _statement(cli, SOLOTHURN, ids, tmp_path / "out")
    _claimed(cli)
    beyond = _statement(cli, SOLOTHURN, ids, tmp_path / "out", "--sequence", "2")
    other = _statement(cli, SOLOTHURN, (ids[0], str(uuid4())), tmp_path / "out")

    assert unclaimed.code == 1
    assert "statement-of-recorded-claim" in unclaimed.err and "application_id" in unclaimed.err
    assert beyond.code == 1 and "sequence: 2" in beyond.err and "(1 to 1)" in beyond.err
    assert other.code == 1 and "advance-for-application" in other.err
    assert not (tmp_path / "out").exists()


def test_cli_statement_out_of_scope_reads_like_an_unknown_case_and_writes_nothing(
    cli: Cli, recorded: tuple[str, str], tmp_path: Path
) -> None:
    unknown = ("0b7e4a52-9d3c-4c1e-8f00-5a6b7c8d9e0f", recorded[1])

    other = _statement(cli, OLTEN, recorded, tmp_path / "out")
    missing = _statement(cli, OLTEN, unknown, tmp_path / "out")

    assert other.code == missing.code == 1
    assert other.err.replace(recorded[0], unknown[0]) == missing.err
    assert not (tmp_path / "out").exists()
    assert _statement(cli, AUDITOR, recorded, tmp_path / "out").code != 0
    assert not (tmp_path / "access-log.db").exists()


def test_after_erasure_no_statement_names_the_person_and_an_old_file_is_not_reached(
    cli: Cli, recorded: tuple[str, str], tmp_path: Path
) -> None:
    written = _statement(cli, ADMIN, recorded, tmp_path / "statements")
    assert written.code == 0, written.err
    person = cli("--json", "--actor", ADMIN, "case", "show",
                 recorded[0]).json()["applicant"]["person_id"]  # type: ignore[index]

    erased = cli("--json", "--actor", ADMIN, "person", "erase", person, "--yes")
    again = _statement(cli, ADMIN, recorded, tmp_path / "later")

    unreached = [p["place"] for p in json.loads(erased.out)["places"]
                 if p["outcome"] == "not reached"]
    assert unreached == [written.json()["html"]]
    assert again.code != 0 and "statement-names-the-person" in again.err
    assert not (tmp_path / "later").exists()
