"""`nervenbahn benefits …`: each desk, fund and read command's happy path and a refusal
(naming the field or the rule, nothing recorded), as the acting user of --actor."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from domain.case import SWISS_TIME
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.config import load_settings
from tests.cli.conftest import Cli, Outcome
from tests.domain.case_desk import person_input

OFFICE = "eva.frei:branch_office:akso-grenchen"
OTHER_OFFICE = "urs.kurz:branch_office:akso-lommiswil"
FUND = "max.akso:fund_officer:akso"
AUDITOR = "ann.pruef:auditor:finanzkontrolle"
ALL = ["signed_application", "pension_statement", "tax_assessment", "account_statements",
       "rent_contract", "health_insurance_policy"]


def today() -> date:
    """Today in Switzerland, as the CLI judges it, asked when a test runs: a date taken once
    at collection went stale when the suite ran past Swiss midnight (23:00 UTC in winter)."""
    return datetime.now(SWISS_TIME).date()


class Desk:
    """Runs `nervenbahn --json --actor ACTOR benefits …` and reads the answers."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli

    def __call__(self, actor: str, *args: str) -> Outcome:
        return self.cli("--json", "--actor", actor, "benefits", *args)

    def ok(self, actor: str, *args: str) -> Any:
        outcome = self(actor, *args)
        assert outcome.code == 0, outcome.err
        return outcome.json()

    def refused(self, actor: str, *args: str) -> str:
        """Run a command that must be refused (exit 1); its error line."""
        outcome = self(actor, *args)
        assert outcome.code == 1, (outcome.out, outcome.err)
        return outcome.err

    def receive(self, actor: str = OFFICE, municipality: int = 2546, serial: int = 1) -> str:
        person = person_input(serial)
        answer = self.ok(actor, "receive", "--kind", "el_ahv", "--municipality",
                         str(municipality),
                         *[arg for key, value in person.items()
                           for arg in (f"--{key.replace('_', '-')}", str(value))])
        assert answer["events"] == ["ApplicationReceived"]
        return str(answer["id"])

    def check(self, application_id: str, missing: tuple[str, ...] = ()) -> Any:
        present = [arg for code in ALL if code not in missing for arg in ("--present", code)]
        return self.ok(OFFICE, "check", application_id, *present)


@pytest.fixture
def desk(cli: Cli) -> Desk:
    """The CLI on an initialised store."""
    assert cli("init").code == 0
    return Desk(cli)


def _events(desk: Desk, application_id: str) -> list[str]:
    shown = desk.ok(FUND, "show", application_id)
    return [shown["stage"], *shown["missing_documents"]]


def test_receive_records_an_application_and_refuses_another_offices_municipality(
    desk: Desk,
) -> None:
    application_id = desk.receive()
    assert desk.ok(FUND, "show", application_id)["stage"] == "received"

    error = desk.refused(OFFICE, "receive", "--kind", "el_ahv", "--municipality", "2551",
                         *_person_args())
    assert "office-own-municipalities" in error and "actor.organisation" in error
    bad = desk.refused(OFFICE, "receive", "--kind", "pension", "--municipality", "2546",
                       *_person_args())
    assert "kind" in bad and "el_ahv" in bad


def test_check_records_what_is_missing_and_refuses_a_document_off_the_checklist(
    desk: Desk,
) -> None:
    application_id = desk.receive()
    assert desk.check(application_id, ("rent_contract",))["events"] == ["CompletenessChecked"]
    assert _events(desk, application_id) == ["received", "rent_contract"]

    error = desk.refused(OFFICE, "check", application_id, "--present", "horoscope")
    assert "document-on-checklist" in error and "documents_present" in error


def test_request_and_record_documents_and_their_refusals(desk: Desk) -> None:
    application_id = desk.receive()
    desk.check(application_id, ("rent_contract",))
    due = (today() + timedelta(days=14)).isoformat()

    requested = desk.ok(OFFICE, "request-documents", application_id, "--document",
                        "rent_contract", "--due-on", due)
    listed = desk.ok(OFFICE, "list")["applications"]
    past = desk.refused(OFFICE, "request-documents", application_id, "--document",
                        "rent_contract", "--due-on", today().isoformat())
    recorded = desk.ok(OFFICE, "record-documents", application_id, "--document",
                       "rent_contract")
    unknown = desk.refused(OFFICE, "record-documents", application_id, "--document", "x_ray")

    assert requested["events"] == ["DocumentsRequested"]
    assert listed[0]["open_document_requests"] == [
        {"documents": ["rent_contract"], "due_on": due, "open": ["rent_contract"]}]
    assert "due-date-ahead" in past and "due_on" in past
    assert recorded["events"] == ["DocumentsReceived"]
    assert _events(desk, application_id) == ["received"]
    assert "document-on-checklist" in unknown and "documents" in unknown


def test_forward_needs_a_reason_while_documents_are_missing(desk: Desk) -> None:
    application_id = desk.receive()
    desk.check(application_id, ("tax_assessment",))

    error = desk.refused(OFFICE, "forward", application_id)
    forwarded = desk.ok(OFFICE, "forward", application_id, "--override-reason",
                        "the tax assessment follows")

    assert "forward-requires-complete" in error and "override_reason" in error
    assert forwarded["events"] == ["ApplicationForwarded"]
    assert _events(desk, application_id) == ["forwarded", "tax_assessment"]


def test_withdraw_records_the_withdrawal_and_refuses_an_unknown_reason(desk: Desk) -> None:
    application_id = desk.receive()
    error = desk.refused(OFFICE, "withdraw", application_id, "--reason", "bored")
    assert desk.ok(OFFICE, "withdraw", application_id, "--reason",
                   "applicant_request")["events"] == ["ApplicationWithdrawn"]
    assert "reason" in error and "applicant_request" in error
    assert desk.ok(FUND, "show", application_id)["stage"] == "withdrawn"


def _forwarded(desk: Desk) -> str:
    application_id = desk.receive()
    desk.check(application_id)
    desk.ok(OFFICE, "forward", application_id)
    return application_id


def test_grant_is_the_funds_and_refuses_a_branch_office(desk: Desk) -> None:
    application_id = _forwarded(desk)
    month = f"{today():%Y-%m}"
    by_office = desk.refused(OFFICE, "grant", application_id, "--from-month", month,
                             "--amount", f"{month}=812.40")
    malformed = desk.refused(FUND, "grant", application_id, "--from-month", month,
                             "--amount", "812.40")
    granted = desk.ok(FUND, "grant", application_id, "--from-month", month,
                      "--amount", f"{month}=812.40")

    assert "decision-by-fund" in by_office and "actor.role" in by_office
    assert "amounts" in malformed and "YYYY-MM=AMOUNT" in malformed
    assert granted["events"] == ["BenefitGranted"]
    decision = desk.ok(OFFICE, "show", application_id)["decision"]
    assert (decision["outcome"], decision["granted_from"]) == ("granted", f"{month}-01")


def test_refuse_decides_a_forwarded_application_only(desk: Desk) -> None:
    received = desk.receive()
    error = desk.refused(FUND, "refuse", received, "--reason", "income_sufficient")
    forwarded = _forwarded(desk)
    answer = desk.ok(FUND, "refuse", forwarded, "--reason", "income_sufficient")

    assert "decision-after-forwarding" in error and "application_id" in error
    assert answer["events"] == ["BenefitRefused"]
    assert desk.ok(OFFICE, "show", forwarded)["decision"]["refusal_reason"] == (
        "income_sufficient")


def test_delegate_revoke_and_the_auditors_view_of_delegated_actions(desk: Desk) -> None:
    application_id = desk.receive()
    desk.check(application_id, ("rent_contract",))
    desk.ok(OFFICE, "forward", application_id, "--override-reason", "rent contract follows")
    period = ("--valid-from", today().isoformat(), "--valid-until",
              (today() + timedelta(days=30)).isoformat())

    by_office = desk.refused(OFFICE, "delegate", "--office", "akso-grenchen", "--task",
                             "document_request", *period)
    delegation = str(desk.ok(FUND, "delegate", "--office", "akso-grenchen", "--task",
                             "document_request", *period)["id"])
    desk.ok(OFFICE, "request-documents", application_id, "--document", "rent_contract",
            "--due-on", (today() + timedelta(days=10)).isoformat(), "--delegation-id", delegation)
    actions = desk.ok(AUDITOR, "delegated-actions")["actions"]
    refused_reader = desk.refused(OFFICE, "delegated-actions")
    revoked = desk.ok(FUND, "revoke-delegation", delegation, "--reason", "the fund does it")
    again = desk.refused(FUND, "revoke-delegation", delegation, "--reason", "once more")

    assert "delegation-by-fund" in by_office
    assert [(a["delegation_id"], a["application_id"], a["event"], a["branch_office"])
            for a in actions] == [(delegation, application_id, "DocumentsRequested",
                                   "akso-grenchen")]
    assert "delegated-actions-readers" in refused_reader and "actor.role" in refused_reader
    assert revoked["events"] == ["DelegationRevoked"]
    assert "delegation-revoked" in again


def test_list_shows_the_offices_own_applications_without_personal_data(desk: Desk) -> None:
    own = desk.receive()
    theirs = desk.receive(OTHER_OFFICE, 2551, serial=2)

    mine = desk(OFFICE, "list")
    everything = desk.ok(FUND, "list")["applications"]
    elsewhere = desk.refused(OFFICE, "list", "--office", "akso-lommiswil")
    caseworker = desk.refused("cw:caseworker:so-olten", "list")
    table = desk.cli("--actor", OFFICE, "benefits", "list")

    assert [a["application_id"] for a in json.loads(mine.out)["applications"]] == [own]
    assert "Muster" not in mine.out and "Person" not in mine.out
    assert {a["application_id"] for a in everything} == {own, theirs}
    assert "office-own-municipalities" in elsewhere
    assert "benefit-roles" in caseworker
    assert table.code == 0 and own in table.out


def test_show_opens_the_applicant_logs_the_read_and_hides_another_offices(desk: Desk) -> None:
    own = desk.receive()
    theirs = desk.receive(OTHER_OFFICE, 2551, serial=2)

    shown = desk.ok(OFFICE, "show", own)
    other = desk.refused(OFFICE, "show", theirs)
    unknown = desk.refused(OFFICE, "show", "7d3c1f4e-0000-4000-8000-000000000000")

    assert shown["applicant"]["family_name"] == "Muster"
    assert shown["days_since_receipt"] == 0
    assert other.replace(theirs, "ID") == unknown.replace(
        "7d3c1f4e-0000-4000-8000-000000000000", "ID")
    assert [(e.case_id, e.consumer, e.endpoint) for e in _logged_reads()] == [
        (own, "cli:eva.frei", "nervenbahn benefits show")]


@pytest.mark.parametrize("actor", ["cw:caseworker:so-oberer-leberberg",
                                   "sv:supervisor:so-olten", "ops:administrator:so-canton",
                                   AUDITOR, OTHER_OFFICE])
def test_show_out_of_scope_is_refused_as_an_unknown_one_and_nothing_is_logged(
    desk: Desk, actor: str
) -> None:
    own = desk.receive()
    unknown = "7d3c1f4e-0000-4000-8000-000000000000"

    theirs = desk.refused(actor, "show", own)
    nothing = desk.refused(actor, "show", unknown)
    listed = desk(actor, "list")

    assert "Muster" not in theirs
    assert theirs.replace(own, "ID") == nothing.replace(unknown, "ID")
    assert own not in listed.out + listed.err  # another office lists its own, others none
    assert _logged_reads() == []


def test_an_allowed_show_is_listed_for_auditors(desk: Desk) -> None:
    own = desk.receive()
    person_id = desk.ok(OFFICE, "show", own)["applicant"]["person_id"]

    listed = desk.cli("--json", "--actor", AUDITOR, "audit", "access", "--person", person_id)

    assert listed.code == 0, listed.err
    entries: Any = listed.json()
    assert [(e["case_id"], e["consumer"], e["endpoint"]) for e in entries["entries"]] == [
        (own, "cli:eva.frei", "nervenbahn benefits show")]


def test_receive_for_a_known_person_keeps_their_id_and_refuses_an_erased_or_malformed_one(
    desk: Desk
) -> None:
    person_id = "0b1f4c2e-5a6d-4e7f-8a9b-0c1d2e3f4a5b"
    linked = desk.ok(OFFICE, "receive", "--kind", "el_ahv", "--municipality", "2546",
                     "--person-id", person_id, *_person_args())["id"]
    assert desk.ok(OFFICE, "show", linked)["applicant"]["person_id"] == person_id
    erased = desk.cli("--actor", "ops:administrator:so-canton", "person", "erase", person_id,
                      "--yes")
    assert erased.code == 0, erased.err

    again = desk(OFFICE, "receive", "--kind", "el_ahv", "--municipality", "2546",
                 "--person-id", person_id, *_person_args())
    malformed = desk.refused(OFFICE, "receive", "--kind", "el_ahv", "--municipality", "2546",
                             "--person-id", "nope", *_person_args())

    assert again.code != 0 and f"person {person_id} was erased" in again.err
    assert "applicant.person_id" in malformed


def _logged_reads() -> list[AccessEntry]:
    log = SQLiteAccessLog(load_settings().api.access_log)
    try:
        return [item.entry for item in log.select()]
    finally:
        log.close()


def _person_args(serial: int = 1) -> list[str]:
    return [arg for key, value in person_input(serial).items()
            for arg in (f"--{key.replace('_', '-')}", str(value))]


def test_projections_rebuild_reads_the_benefits_store(desk: Desk) -> None:
    desk.receive()
    desk.receive(OTHER_OFFICE, 2551, serial=2)
    outcome = desk.cli("--json", "projections", "rebuild", "benefit_applications")
    assert outcome.code == 0, outcome.err
    answer = json.loads(outcome.out[outcome.out.index("{"):])  # after the progress bar
    assert (answer["projection"], answer["events"]) == ("benefit_applications", 2)
