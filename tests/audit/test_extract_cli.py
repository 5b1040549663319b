"""`nervenbahn audit extract KIND`: the auditor's population, on a real SQLite store.

The store holds hand-built stories with known figures:

- the retroactive case of the README (`tests/domain/bitemporal_case.py`, so-solothurn, by
  anna.keller): V2 income 600 from 11 Mar recorded 10 May (60 days back, 2611 → 2011) and V3
  rent 1000 from 1 Feb recorded 20 Jun (139 days back, 2611 → 2411 on 1 Feb as known before);
  closed with 20 May as last day. The June run (recorded 25 Jun) back-pays January–May as
  owed then: the table "30 June" of that module.
- a case of so-olten (by cw-olten-01) supported from 1 Jul at 2611 a month, paid in the July
  run; on 10 Aug its income becomes 310 from 16 Jul (25 days back, 2611 → 2301), so the
  August run claims back July's 16 days: 310 × 16/31 = 160.00.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.envelope import event_id
from domain.case import SWISS_TIME
from domain.commands import Actor, swiss_today
from domain.payments import PaymentOrdered, RecordPayoutAccount, RunPayments
from nervenbahn.cli import main
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, build_payment_service, build_service, close_service
from tests.audit.cli import cli_for
from tests.bus.pipeline import command
from tests.cli.conftest import Cli, Outcome
from tests.domain.bitemporal_case import EXPECTED, START, record_retroactive_case
from tests.domain.case_desk import valid_ahvn13
from tests.domain.fakes import FakeClock

AUDITOR = "fk.meier:auditor:so-finanzkontrolle"
ADMIN = Actor("pay.office", "administrator", "so-canton")
IBAN = "CH93 0076 2011 6238 5295 7"


@dataclass(frozen=True)
class Stories:
    settings: Settings
    folder: Path
    readme_case: UUID
    olten_case: UUID


def _at(clock: FakeClock, day: date) -> None:
    moment = datetime(day.year, day.month, day.day, 9, 0, tzinfo=SWISS_TIME)
    clock.advance(seconds=(moment - clock()).total_seconds())


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Stories:
    """Both stories, with their payment runs, in a SQLite store of this module's own."""
    folder = tmp_path_factory.mktemp("audit-extract")
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    clock = FakeClock(START)
    service = build_service(settings, clock=clock)
    payments = build_payment_service(settings, service, clock)
    try:
        readme = record_retroactive_case(service, clock)  # ends on 25 June
        _account(payments, readme)
        _run(payments, "2026-06")
        _at(clock, date(2026, 7, 1))
        olten = _supported_olten_case(service)
        _account(payments, olten)
        _at(clock, date(2026, 7, 2))
        _run(payments, "2026-07")
        _at(clock, date(2026, 8, 10))
        service.execute(command("change_budget", case_id=str(olten), effective_date="2026-07-16",
                                reason="income_change", housing="1200",
                                health_insurance="350", income="310"))
        _run(payments, "2026-08")
    finally:
        payments.close()
        close_service(service)
    return Stories(settings, folder, readme, olten)


def _supported_olten_case(service: Any) -> UUID:
    person = {"given_name": "Nora", "family_name": "Beispiel", "ahvn13": valid_ahvn13(77),
              "birth_date": "1980-01-01", "street": "Weg 1", "postal_code": "4600",
              "town": "Olten"}
    case_id: UUID = service.execute(command("open_case", municipality_bfs=2581,
                                            household_size=1, applicant=person)).case_id
    service.execute(command("complete_assessment", case_id=str(case_id), needs=["financial"],
                            employability="employable"))
    service.execute(command("grant_support", case_id=str(case_id), support_from="2026-07-01",
                            housing="1200", health_insurance="350", income="0"))
    return case_id


def _account(payments: Any, case_id: UUID) -> None:
    payments.record_account(RecordPayoutAccount(actor=ADMIN, correlation_id=uuid.uuid4(),
                                                case_id=case_id, iban=IBAN, holder="N. Muster"))


def _run(payments: Any, month: str) -> None:
    assert payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(),
                                    month=month)).recorded


@pytest.fixture
def cli(stories: Stories, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI on the stories' store (tests/audit/cli.py), acting as an auditor."""
    invoke = cli_for(f"sqlite:///{stories.folder / 'store.db'}", stories.settings,
                     stories.folder / "access-log.db", monkeypatch, capsys)
    monkeypatch.setenv("NERVENBAHN_ACTOR", AUDITOR)
    return lambda *args: Outcome(*invoke(*args))


def rows(cli: Cli, kind: str, *options: str) -> list[dict[str, Any]]:
    outcome = cli("audit", "extract", kind, "--format", "json", *options)
    assert outcome.code == 0, outcome.err
    document = outcome.json()
    assert document["count"] == len(document["rows"])
    return list(document["rows"])


def test_retroactive_changes_are_listed_by_days_back_with_their_figures(
    cli: Cli, stories: Stories
) -> None:
    found = rows(cli, "retroactive")

    readme, olten = str(stories.readme_case), str(stories.olten_case)
    assert [(r["case_id"], r["region"], r["effective_date"], r["days_back"], r["lines_changed"],
             r["monthly_before"], r["monthly_after"], r["monthly_difference"], r["actor"],
             r["source"]) for r in found] == [
        (readme, "so-solothurn", "2026-02-01", 139, "housing", "2611.00", "2411.00", "-200.00",
         "anna.keller", "live"),
        (readme, "so-solothurn", "2026-03-11", 60, "income", "2611.00", "2011.00", "-600.00",
         "anna.keller", "live"),
        (olten, "so-olten", "2026-07-16", 25, "income", "2611.00", "2301.00", "-310.00",
         "cw-olten-01", "live"),
    ]
    # each row points to its event: the bus's event id, the chain and its position there
    for row in found:
        assert row["event_id"] == str(event_id(UUID(row["case_id"]), row["case_version"]))
        assert row["chain"] == "events:stored_events" and row["position"] > 0
    assert [r["case_version"] for r in found[:2]] == [5, 4]
    history = cli("--json", "audit", "state", readme, "--as-of", "2026-06-30").json()
    versions = {e["version"]: e["event"] for e in history["recorded"]}
    assert versions[5] == versions[4] == "BudgetChanged"


def test_back_payments_and_claim_backs_are_listed_by_size(cli: Cli, stories: Stories) -> None:
    back = rows(cli, "back-payments")
    claims = rows(cli, "claim-backs")

    readme, olten = str(stories.readme_case), str(stories.olten_case)
    owed = dict(zip(["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"],
                    EXPECTED["30 June"][:5], strict=True))
    assert [(r["case_id"], r["month"], Decimal(r["amount"])) for r in back] == sorted(
        [(readme, month, amount) for month, amount in owed.items()],
        key=lambda item: -item[2])
    assert {(r["run_month"], r["run_sequence"], r["prepared_by"], r["held"]) for r in back} == {
        ("2026-06", 1, "pay.office", False)}
    assert [(r["case_id"], r["region"], r["month"], r["amount"], r["entitlement"],
             r["previously_ordered"], r["run_month"]) for r in claims] == [
        (olten, "so-olten", "2026-07", "160.00", "2451.00", "2611.00", "2026-08")]
    container = Container()
    try:
        payments = container.payments
        ordered = {str(event_id(run.id, e.originator_version))
                   for run in payments.runs() for e in payments.run_events(run.id)
                   if isinstance(e, PaymentOrdered)}
    finally:
        container.close()
    for row in (*back, *claims):  # each row points to its order's event
        assert row["event_id"] in ordered
        assert row["chain"] == "events:payments_events" and row["position"] > 0


def test_imported_live_and_actions_by_user_and_role(cli: Cli, stories: Stories) -> None:
    live = rows(cli, "live")
    imported = rows(cli, "imported")
    by_user = rows(cli, "actions", "--user", "cw-olten-01")
    admins = rows(cli, "actions", "--role", "administrator")

    assert imported == []  # both stories were recorded live
    assert len(live) == 6 + 4 and {r["source"] for r in live} == {"live"}
    assert {r["case_id"] for r in by_user} == {str(stories.olten_case)}
    assert [r["event"] for r in by_user] == [
        "CaseOpened", "AssessmentCompleted", "SupportGranted", "BudgetChanged"]
    # the payments store's actions: two accounts recorded, three runs prepared
    assert sorted(r["event"] for r in admins) == [
        *["PaymentRunStarted"] * 3, *["PayoutAccountRecorded"] * 2]
    assert all(r["actor"] == "pay.office" for r in admins)


def test_filters_by_region_period_days_and_amount(cli: Cli, stories: Stories) -> None:
    olten = str(stories.olten_case)

    assert {r["case_id"] for r in rows(cli, "retroactive", "--region", "so-olten")} == {olten}
    assert [r["days_back"] for r in rows(cli, "retroactive", "--min-days", "60")] == [139, 60]
    assert [r["monthly_difference"] for r in rows(cli, "retroactive", "--min-amount", "300")
            ] == ["-600.00", "-310.00"]
    assert [r["effective_date"] for r in rows(cli, "retroactive", "--from", "2026-05-10",
                                              "--to", "2026-06-20")] == ["2026-02-01",
                                                                         "2026-03-11"]
    assert rows(cli, "retroactive", "--to", "2026-05-09") == []
    assert [r["month"] for r in rows(cli, "back-payments", "--min-amount", "2411")] == [
        "2026-01", "2026-02"]
    assert rows(cli, "claim-backs", "--region", "so-solothurn") == []


def test_csv_and_json_hold_the_same_rows(cli: Cli, tmp_path: Path) -> None:
    for kind in ("retroactive", "back-payments", "claim-backs", "live", "actions"):
        from_json = rows(cli, kind)
        out = tmp_path / f"{kind}.csv"
        written = cli("audit", "extract", kind, "--format", "csv", "--out", str(out))
        assert written.code == 0, written.err
        from_csv = list(csv.DictReader(io.StringIO(out.read_text())))
        assert from_csv == [{key: str(value) for key, value in row.items()}
                            for row in from_json], kind
        assert out.stat().st_mode & 0o777 == 0o600
        assert f"{len(from_csv)} rows ({kind}) written to" in written.out


def test_the_extract_names_no_person_and_is_access_logged(cli: Cli, stories: Stories) -> None:
    outcome = cli("audit", "extract", "actions", "--format", "csv")
    logged = cli("--json", "audit", "access", "--case", str(stories.olten_case)).json()

    assert outcome.code == 0, outcome.err
    assert "Beispiel" not in outcome.out and "Muster" not in outcome.out
    assert valid_ahvn13(77) not in outcome.out and "CH93" not in outcome.out
    extracts = [e for e in logged["entries"] if e["fields"] == ["audit_extract"]]
    assert extracts and extracts[-1]["endpoint"] == "nervenbahn audit extract actions"
    assert extracts[-1]["consumer"] == "cli:fk.meier"


def test_only_canton_wide_readers_run_it(cli: Cli) -> None:
    refused = cli("--actor", "cw-olten-01:caseworker:so-olten", "audit", "extract",
                  "retroactive")
    allowed = cli("--actor", "admin:administrator:so-canton", "audit", "extract", "live")

    assert refused.code != 0 and "canton-wide-reader" in refused.err and refused.out == ""
    assert allowed.code == 0, allowed.err


@pytest.mark.parametrize(("args", "named"), [
    (("lottery",), "KIND: 'lottery' is not one of retroactive"),
    (("retroactive", "--region", "so-atlantis"), "--region: 'so-atlantis' is not a social"),
    (("retroactive", "--from", "2026-13-01"), "--from: '2026-13-01' is not a date"),
    (("retroactive", "--from", "2026-06-01", "--to", "2026-05-01"), "--to: 2026-05-01 lies"),
    (("retroactive", "--min-amount", "lots"), "--min-amount: 'lots' is not an amount"),
    (("retroactive", "--min-days", "-1"), "--min-days: -1 is negative"),
    (("live", "--min-days", "5"), "--min-days: applies to the kind retroactive only"),
    (("actions", "--min-amount", "5"), "--min-amount: applies to retroactive"),
    (("actions", "--role", "wizard"), "--role: 'wizard' is not one of"),
    (("live", "--format", "xml"), "--format: 'xml' is not csv or json"),
])
def test_a_bad_option_value_is_refused_naming_it(
    cli: Cli, args: tuple[str, ...], named: str
) -> None:
    outcome = cli("audit", "extract", *args)
    assert outcome.code == 1 and named in outcome.err and outcome.out == ""


# --- the demo ----------------------------------------------------------------------------------


def test_the_demo_extract_holds_its_live_retroactive_changes_and_first_back_payments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["demo", "--households", "60", "--reset", "--no-bus"]) == 0
    capsys.readouterr()
    assert main(["--actor", AUDITOR, "audit", "extract", "retroactive", "--format",
                 "json"]) == 0
    retroactive = json.loads(capsys.readouterr().out)["rows"]
    assert main(["--actor", AUDITOR, "audit", "extract", "back-payments", "--format",
                 "json"]) == 0
    back = json.loads(capsys.readouterr().out)["rows"]

    live_changes, first_back = _demo_truth()
    if swiss_today().day != 1:  # the demo's changes are effective on the 1st, recorded today
        assert len(live_changes) == 3
    assert {(r["case_id"], r["case_version"]) for r in retroactive
            if r["source"] == "live"} == live_changes
    assert first_back and _first_run_rows(back, first_back) == first_back


def _demo_truth() -> tuple[set[tuple[str, int]], set[tuple[str, str, str, str]]]:
    """Counted from each case's own history and the first run's own events, not through the
    notification logs the extract reads."""
    container = Container()
    try:
        service = container.service
        live: set[tuple[str, int]] = set()
        for case_id in service.case_ids():
            for entry in service.history(case_id):
                recorded_on = entry.recorded_at.astimezone(SWISS_TIME).date()
                if (entry.event == "BudgetChanged" and not entry.imported
                        and entry.effective_date < recorded_on):
                    live.add((str(case_id), entry.version))
        first = container.payments.runs()[0]
        back = {(str(first.id), str(e.case_id), f"{e.for_month:%Y-%m}", str(e.amount))
                for e in container.payments.run_events(first.id)
                if isinstance(e, PaymentOrdered) and e.kind == "back_payment"}
    finally:
        container.close()
    return live, back


def _first_run_rows(rows: list[dict[str, Any]], truth: set[tuple[str, str, str, str]]
                    ) -> set[tuple[str, str, str, str]]:
    run_ids = {run_id for run_id, *_ in truth}
    return {(r["run_id"], r["case_id"], r["month"], r["amount"]) for r in rows
            if r["run_id"] in run_ids}
