"""The person's statement of a reimbursement (nervenbahn.reimbursement_statement and
`nervenbahn advances statement`): the worked example's figures cell by cell in the HTML and the
CSV, escaping, no other person's data, the access log, the read scope, and erasure."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.case import SWISS_TIME
from domain.commands import Actor
from domain.payments import RecordPayoutAccount, RunPayments, parse_month
from domain.personal_data import PersonalData
from domain.reimbursement import claimed_so_far, compute_reimbursement
from nervenbahn.container import Container
from nervenbahn.reimbursement_statement import (
    Statement,
    render_statement_csv,
    render_statement_html,
)
from tests.audit.test_report import Tables
from tests.cli.conftest import Cli
from tests.domain.benefit_desk import BenefitDesk
from tests.domain.case_desk import CommandFactory, Desk, expected_basic_needs, move_to, person_input
from tests.domain.fakes import FakeClock
from tests.domain.test_reimbursement import ADVANCE, EL_MAY, PAID_JUNE, PAID_MAY

CASE = UUID("6f1c0a52-6c5e-4c59-9a43-2f5f3d1e0b11")
APPLICATION = UUID("0c9d8e7f-1a2b-4c3d-8e9f-a0b1c2d3e4f5")
PERSON = PersonalData(UUID(int=7), "Paula", "Muster", "756.1234.5678.97", date(1980, 4, 12),
                      "Hauptgasse 1", "4500", "Solothurn")
COMPUTED = datetime(2026, 6, 10, 12, tzinfo=UTC)
SOLOTHURN = "anna.keller:caseworker:so-solothurn"
OLTEN = "cw-olten-01:caseworker:so-olten"
AUDITOR = "fk.meier:auditor:so-finanzkontrolle"
ADMIN = "ops:administrator:so-canton"


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
    return Statement(CASE, APPLICATION, person, first, datetime(2026, 5, 20, 12, tzinfo=UTC))


def _june_statement() -> Statement:
    before = claimed_so_far([compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)])
    june = compute_reimbursement(ADVANCE, EL_MAY, PAID_JUNE, before=before)
    return Statement(CASE, APPLICATION, PERSON, june, COMPUTED, before)


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


# --- through the CLI, from facts recorded in a real store ----------------------------------


def _record_worked_example(container: Container, clock: FakeClock) -> tuple[UUID, UUID]:
    """The worked example recorded by the services of `container` at the fake times: a
    two-person household (the EL applicant is the case's applicant, whose name is hostile),
    supported from January at CHF 2,400.00, advanced from January, EL granted on 20 May, a
    budget change effective March recorded on 10 June and June's payment run. The case id and
    the application id."""
    cases, payments, benefits = container.service, container.payments, container.benefits
    cases._benefits = benefits.on_record  # not wired by the container yet (issue 15 part 1)
    actor = Actor("anna.keller", "caseworker", "so-solothurn")
    pay = Actor("pay.office", "administrator", "so-canton")
    desk = Desk(cases, clock, None, CommandFactory(actor, lambda: clock().astimezone(  # type: ignore[arg-type]
        SWISS_TIME).date()), cases.reference)
    fund = BenefitDesk(benefits, clock, None)  # type: ignore[arg-type]

    def run(month: str) -> None:
        payments.run(RunPayments(actor=pay, correlation_id=uuid4(), month=parse_month(month)))

    move_to(desk, date(2026, 1, 5))
    # CHF 2,400.00 a month for two persons: basic needs, CHF 350.00 of health insurance
    # (the default), housing the rest
    housing = PAID_MAY[date(2026, 1, 1)] - expected_basic_needs(date(2026, 1, 1), 2) - 350
    case_id = desk.assessed(
        application_date="2026-01-05", household_size=2,
        applicant=person_input(1, given_name="<script>alert(1)</script>",
                               family_name="Muster"),
        other_members=[person_input(2, given_name="Zweitperson", family_name="Anders",
                                    street="Nebengasse 9")])
    desk.run("grant_support", case_id=case_id, support_from="2026-01-01", housing=str(housing))
    payments.record_account(RecordPayoutAccount(actor=pay, correlation_id=uuid4(),
                                                case_id=case_id, iban="CH9300762011623852957",
                                                holder="P. Muster"))
    run("2026-01")
    move_to(desk, date(2026, 2, 2))
    run("2026-02")
    move_to(desk, date(2026, 2, 10))
    person = desk.case(case_id).applicant.person_id
    application_id = fund.forwarded(applicant=person_input(1, person_id=str(person)))
    desk.run("start_advance", case_id=case_id, application_id=application_id,
             advance_from="2026-01-01", commitment_date="2026-01-05")
    for day, month in ((date(2026, 3, 2), "2026-03"), (date(2026, 4, 1), "2026-04"),
                       (date(2026, 5, 4), "2026-05")):
        move_to(desk, day)
        run(month)
    move_to(desk, date(2026, 5, 20))
    fund.run("grant_benefit", application_id=application_id, from_month="2026-02",
             amounts=[{"from_month": "2026-02", "monthly_chf": "1900.00"},
                      {"from_month": "2026-04", "monthly_chf": "2600.00"}])
    desk.run("end_advance", case_id=case_id, application_id=application_id)
    move_to(desk, date(2026, 6, 10))
    desk.run("change_budget", case_id=case_id, effective_date="2026-03-01",
             reason="income_change", housing=str(housing), income="400.00")
    run("2026-06")
    return case_id, application_id


@pytest.fixture
def recorded(cli: Cli) -> tuple[str, str]:
    """The worked example in the test's SQLite store: case id and application id."""
    assert cli("init").code == 0
    container = Container(clock=FakeClock(datetime(2026, 1, 5, 9, tzinfo=SWISS_TIME)))
    try:
        case_id, application_id = _record_worked_example(container, container._clock)  # type: ignore[arg-type]
    finally:
        container.close()
    return str(case_id), str(application_id)


def _statement(cli: Cli, actor: str, ids: tuple[str, str], out: Path, *more: str) -> Any:
    return cli("--json", "--actor", actor, "advances", "statement", *ids, "--out", str(out),
               *more)


def test_cli_statement_from_recorded_facts_is_logged_and_names_only_the_person(
    cli: Cli, recorded: tuple[str, str], tmp_path: Path
) -> None:
    done = _statement(cli, SOLOTHURN, recorded, tmp_path / "out", "--earlier-as-of",
                      "2026-05-31")

    assert done.code == 0, done.err
    files = done.json()
    html = Path(files["html"]).read_text(encoding="utf-8")
    assert _tables(html) == {"months": JUNE_MONTHS, "changes": JUNE_CHANGES}
    assert [r["claim"] for r in _csv(Path(files["csv"]).read_text())] == [
        "1900.00", "1900.00", "2000.00", "2000.00", "7800.00"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Muster" in html and "<script" not in html
    assert "Zweitperson" not in html and "Anders" not in html and "Nebengasse" not in html
    entries = cli("--json", "--actor", AUDITOR, "audit", "access", "--case",
                  recorded[0]).json()["entries"]  # type: ignore[index]
    assert [(e["consumer"], e["endpoint"]) for e in entries] == [
        ("cli:anna.keller", "nervenbahn advances statement")] * 2  # both household members
    assert "family_name" in entries[0]["fields"]


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
