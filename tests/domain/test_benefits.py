"""Benefit applications and delegations: one test per rule, each refusal names its rule and
field and records nothing; bitemporal amounts; the auditor's list of delegated actions."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import domain.reference
from domain.application.benefits import BENEFITS_EVENTS_TABLE, BenefitService
from domain.benefits import BenefitApplication
from domain.commands import Actor
from domain.errors import ApplicationNotFoundError, InvalidCommandError
from domain.personal_data import ErasedPersonalData, SealedPersonalData
from domain.reference import load_benefit_checklists

from .benefit_desk import (
    ALL_DOCUMENTS,
    FUND,
    GRENCHEN_OFFICE,
    LOMMISWIL,
    LOMMISWIL_OFFICE,
    BenefitDesk,
    build_benefit_desk,
)
from .case_desk import person_input

CHECKLISTS = Path(domain.reference.__file__).parent / "data" / "benefit_checklists.json"
CASEWORKER = Actor("anna.keller", "caseworker", "so-solothurn")


@pytest.fixture
def desk() -> Iterator[BenefitDesk]:
    """A fresh benefits desk."""
    built = build_benefit_desk()
    yield built
    built.service.close()


def test_checklists_are_read_from_the_data_file_with_sources() -> None:
    raw = json.loads(CHECKLISTS.read_text("utf-8"))
    assert raw["sources"] and all(s["url"].startswith("https://") for s in raw["sources"])
    loaded = load_benefit_checklists()
    assert set(loaded) == {"el_ahv", "el_iv", "ipv"}
    assert [d.code for d in loaded["el_ahv"]] == ALL_DOCUMENTS["el_ahv"]


def test_received_application_is_at_the_municipalitys_office_and_sealed(
    desk: BenefitDesk,
) -> None:
    application_id = desk.receive()
    application = desk.service.application(application_id)
    assert (application.branch_office, application.stage) == ("akso-grenchen", "received")
    assert isinstance(application.applicant, SealedPersonalData)
    assert application.applicant.family_name == "Muster"
    stored = desk.service.recorder.select_events(application_id)[0].state
    assert b"Muster" not in stored and b"Person1" not in stored


def test_erasing_the_applicant_shreds_their_data_in_the_application(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    person_id = desk.service.application(application_id).applicant.person_id
    assert desk.service.vault.erase(person_id)
    opened = desk.service.application(application_id).applicant
    assert isinstance(opened, SealedPersonalData)
    assert isinstance(opened.open(), ErasedPersonalData)


def test_an_office_cannot_receive_for_another_offices_municipality(desk: BenefitDesk) -> None:
    message = desk.refused("office-own-municipalities", "receive_application",
                           LOMMISWIL_OFFICE, kind="el_ahv", municipality_bfs=2546,
                           applicant=person_input(1), received_on=desk.today)
    assert "actor.organisation" in message


def test_a_caseworker_has_no_part_in_benefit_applications(desk: BenefitDesk) -> None:
    desk.refused("benefit-roles", "receive_application", CASEWORKER, kind="ipv",
                 municipality_bfs=2546, applicant=person_input(1), received_on=desk.today)


def test_receipt_date_cannot_lie_in_the_future(desk: BenefitDesk) -> None:
    desk.refused("effective-date-limit", "receive_application", GRENCHEN_OFFICE,
                 kind="el_ahv", municipality_bfs=2546, applicant=person_input(1),
                 received_on=desk.today + timedelta(days=1))


def test_malformed_commands_name_the_field() -> None:
    desk_cmd = build_benefit_desk()
    with pytest.raises(InvalidCommandError, match="kind"):
        desk_cmd.run("receive_application", GRENCHEN_OFFICE, kind="el_xyz",
                     municipality_bfs=2546, applicant=person_input(1), received_on="2025-11-01")
    with pytest.raises(InvalidCommandError, match="task"):
        desk_cmd.run("grant_delegation", branch_office="akso-grenchen", task="decision",
                     valid_from="2025-11-03", valid_until="2025-11-30")
    with pytest.raises(InvalidCommandError, match="valid_until"):
        desk_cmd.run("grant_delegation", branch_office="akso-grenchen",
                     task="completeness_check", valid_from="2025-11-30",
                     valid_until="2025-11-03")
    with pytest.raises(InvalidCommandError, match="monthly_chf"):
        desk_cmd.run("grant_benefit", application_id="0" * 32, from_month="2025-11",
                     amounts=[{"from_month": "2025-11", "monthly_chf": 12.5}])
    with pytest.raises(InvalidCommandError, match="first period"):
        desk_cmd.run("grant_benefit", application_id="0" * 32, from_month="2025-11",
                     amounts=[{"from_month": "2025-12", "monthly_chf": "12.50"}])
    assert desk_cmd.service.max_position() == 0


def test_completeness_check_names_what_is_missing(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    desk.run("check_completeness", application_id=application_id,
             documents_present=["signed_application", "rent_contract"])
    application = desk.service.application(application_id)
    assert application.missing == sorted(set(ALL_DOCUMENTS["el_ahv"])
                                         - {"signed_application", "rent_contract"})
    assert application.waiting_for_documents


def test_documents_off_the_checklist_are_refused(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    message = desk.refused("document-on-checklist", "check_completeness",
                           application_id=application_id, documents_present=["iv_decision"])
    assert "documents_present: iv_decision" in message


def test_forwarding_with_documents_missing_needs_a_reason(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    desk.refused("forward-requires-complete", "forward_application", GRENCHEN_OFFICE,
                 application_id=application_id)
    desk.run("check_completeness", application_id=application_id,
             documents_present=["signed_application"])
    message = desk.refused("forward-requires-complete", "forward_application",
                           GRENCHEN_OFFICE, application_id=application_id)
    assert "tax_assessment" in message
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=application_id,
             override_reason="applicant in hospital, documents follow")
    assert desk.service.application(application_id).stage == "forwarded"


def test_requested_documents_arrive_and_complete_the_application(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    desk.run("check_completeness", application_id=application_id,
             documents_present=ALL_DOCUMENTS["el_ahv"][:-1])
    desk.refused("request-missing-documents", "request_documents",
                 application_id=application_id, documents=["rent_contract"],
                 due_on=desk.today + timedelta(days=30))
    desk.refused("due-date-ahead", "request_documents", application_id=application_id,
                 documents=["health_insurance_policy"], due_on=desk.today)
    desk.run("request_documents", application_id=application_id,
             documents=["health_insurance_policy"], due_on=desk.today + timedelta(days=30))
    desk.run("record_documents_received", application_id=application_id,
             documents=["health_insurance_policy"], received_on=desk.today)
    application = desk.service.application(application_id)
    assert application.missing == [] and not application.waiting_for_documents
    assert application.requests[0].due_on == desk.today + timedelta(days=30)
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=application_id)


def test_no_decision_before_forwarding(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    desk.refused("decision-after-forwarding", "grant_benefit", application_id=application_id,
                 from_month="2025-11", amounts=[{"from_month": "2025-11", "monthly_chf": "900"}])
    desk.refused("decision-after-forwarding", "refuse_benefit",
                 application_id=application_id, reason="income_sufficient")


def test_only_the_fund_decides(desk: BenefitDesk) -> None:
    application_id = desk.forwarded()
    desk.refused("decision-by-fund", "grant_benefit", GRENCHEN_OFFICE,
                 application_id=application_id, from_month="2025-11",
                 amounts=[{"from_month": "2025-11", "monthly_chf": "900"}])


def test_benefit_is_owed_from_the_month_of_the_application(desk: BenefitDesk) -> None:
    application_id = desk.forwarded()
    desk.refused("benefit-from-month-of-application", "grant_benefit",
                 application_id=application_id, from_month="2025-10",
                 amounts=[{"from_month": "2025-10", "monthly_chf": "900"}])
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "900.00"},
                      {"from_month": "2026-01", "monthly_chf": "950.50"}])
    application = desk.service.application(application_id)
    assert application.owed_for(date(2025, 10, 1)) == Decimal("0.00")
    assert application.owed_for(date(2025, 12, 1)) == Decimal("900.00")
    assert application.owed_for(date(2026, 5, 1)) == Decimal("950.50")
    desk.refused("decision-once", "refuse_benefit", application_id=application_id,
                 reason="other")


def test_what_was_owed_as_known_then_and_now(desk: BenefitDesk) -> None:
    application_id = desk.forwarded()
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "900.00"}])
    granted_at = desk.clock()
    desk.move_to(date(2026, 2, 10))
    desk.run("amend_decision", application_id=application_id, reason="rent rose",
             amounts=[{"from_month": "2025-12", "monthly_chf": "1000.00"}])
    desk.move_to(date(2026, 4, 20))
    desk.run("end_benefit", application_id=application_id,
             condition_ceased_on=date(2026, 3, 14), reason="moved_away")
    service = desk.service
    december = date(2025, 12, 1)
    assert service.owed_as_known(application_id, december, granted_at) == Decimal("900.00")
    assert service.owed_as_known(application_id, december, desk.clock()) == Decimal("1000.00")
    assert service.owed_as_known(application_id, date(2026, 3, 1), desk.clock()) == Decimal(
        "1000.00")
    assert service.owed_as_known(application_id, date(2026, 4, 1), desk.clock()) == Decimal(
        "0.00")
    assert service.owed_as_known(application_id, date(2026, 4, 1), granted_at) == Decimal(
        "900.00")
    before = granted_at - timedelta(seconds=1)
    assert service.owed_as_known(application_id, december, before) == Decimal("0.00")


def test_the_fund_dates_its_decision_between_forwarding_and_today(desk: BenefitDesk) -> None:
    granted, refused, early, late = (desk.forwarded() for _ in range(4))
    forwarded_on = desk.today
    desk.move_to(forwarded_on + timedelta(days=20))
    fund_day = forwarded_on + timedelta(days=12)

    desk.run("grant_benefit", application_id=granted, from_month=f"{forwarded_on:%Y-%m}",
             decided_on=fund_day,
             amounts=[{"from_month": f"{forwarded_on:%Y-%m}", "monthly_chf": "900.00"}])
    desk.run("refuse_benefit", application_id=refused, reason="income_sufficient")
    desk.refused("decision-date-after-forwarding", "refuse_benefit", application_id=early,
                 reason="income_sufficient", decided_on=forwarded_on - timedelta(days=1))
    message = desk.refused("decision-date-not-future", "refuse_benefit", application_id=late,
                           reason="income_sufficient", decided_on=desk.today + timedelta(days=1))

    assert desk.service.application(granted).decided_on == fund_day
    assert desk.service.application(refused).decided_on == desk.today
    assert message.startswith("decided_on") or "decided_on:" in message


def test_amendment_and_end_stay_within_the_grant(desk: BenefitDesk) -> None:
    application_id = desk.forwarded()
    desk.refused("benefit-granted", "amend_decision", application_id=application_id,
                 reason="rent rose", amounts=[{"from_month": "2025-11", "monthly_chf": "1"}])
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "900.00"}])
    desk.refused("amend-within-grant", "amend_decision", application_id=application_id,
                 reason="rent rose", amounts=[{"from_month": "2025-10", "monthly_chf": "1"}])
    desk.refused("end-after-grant", "end_benefit", application_id=application_id,
                 condition_ceased_on=date(2025, 10, 31), reason="death")


def test_withdrawal_only_before_the_decision(desk: BenefitDesk) -> None:
    application_id = desk.receive()
    desk.not_found("withdraw_application", LOMMISWIL_OFFICE, application_id=application_id,
                   reason="applicant_request")
    desk.run("withdraw_application", GRENCHEN_OFFICE, application_id=application_id,
             reason="applicant_request")
    desk.refused("application-undecided", "forward_application", GRENCHEN_OFFICE,
                 application_id=application_id, override_reason="just because")


# --- delegation --------------------------------------------------------------------------------


def test_until_forwarded_the_office_completes_the_application_in_its_own_right(
    desk: BenefitDesk,
) -> None:
    application_id = desk.receive()
    checks = desk.delegate("completeness_check")
    message = desk.refused("office-own-work-before-forwarding", "check_completeness",
                           GRENCHEN_OFFICE, application_id=application_id,
                           documents_present=[], delegation_id=checks)
    assert "delegation_id" in message
    desk.run("check_completeness", GRENCHEN_OFFICE, application_id=application_id,
             documents_present=["signed_application"])
    desk.run("request_documents", GRENCHEN_OFFICE, application_id=application_id,
             documents=["rent_contract"], due_on=desk.today + timedelta(days=20))
    desk.run("record_documents_received", GRENCHEN_OFFICE, application_id=application_id,
             documents=["rent_contract"], received_on=desk.today)
    events: list[Any] = list(desk.service.events.get(application_id))
    assert [type(e).__name__ for e in events[1:]] == [
        "CompletenessChecked", "DocumentsRequested", "DocumentsReceived"]
    assert all(e.delegation_id is None for e in events)
    assert desk.service.delegated_actions() == []


def test_once_forwarded_an_office_completes_it_only_under_a_delegation(
    desk: BenefitDesk,
) -> None:
    application_id = desk.forwarded(documents=["signed_application"])
    message = desk.refused("delegation-required", "check_completeness", GRENCHEN_OFFICE,
                           application_id=application_id, documents_present=[])
    assert "forwarded" in message and "delegation_id" in message
    desk.refused("delegation-required", "record_documents_received", GRENCHEN_OFFICE,
                 application_id=application_id, documents=["rent_contract"],
                 received_on=desk.today)
    delegation_id = desk.delegate("completeness_check")
    desk.run("check_completeness", GRENCHEN_OFFICE, application_id=application_id,
             documents_present=["pension_statement"], delegation_id=delegation_id)
    desk.run("request_documents", application_id=application_id,
             documents=["rent_contract"], due_on=desk.today + timedelta(days=20))
    actions = desk.service.delegated_actions(delegation_id)
    assert [(a.application_id, a.event, a.branch_office) for a in actions] == [
        (application_id, "CompletenessChecked", "akso-grenchen")]
    assert desk.service.delegated_actions() == actions
    assert desk.service.application(application_id).stage == "forwarded"


def test_a_delegation_covers_its_task_office_and_municipalities_only(desk: BenefitDesk) -> None:
    application_id = desk.forwarded(documents=[])
    checks = desk.delegate("completeness_check")
    desk.refused("delegation-task", "request_documents", GRENCHEN_OFFICE,
                 application_id=application_id, documents=["rent_contract"],
                 due_on=desk.today + timedelta(days=9), delegation_id=checks)
    lommiswil = desk.delegate("completeness_check", office="akso-lommiswil")
    desk.refused("delegation-to-this-office", "check_completeness", GRENCHEN_OFFICE,
                 application_id=application_id, documents_present=[], delegation_id=lommiswil)
    desk.not_found("check_completeness", LOMMISWIL_OFFICE, application_id=application_id,
                   documents_present=[], delegation_id=lommiswil)
    desk.refused("delegation-unknown", "check_completeness", GRENCHEN_OFFICE,
                 application_id=application_id, documents_present=[],
                 delegation_id=application_id)
    desk.refused("delegation-for-branch-offices", "check_completeness", FUND,
                 application_id=application_id, documents_present=[], delegation_id=checks)
    assert LOMMISWIL  # the office's own municipality is not Grenchen's


def test_decisions_stay_the_funds_also_for_an_office_with_delegations(
    desk: BenefitDesk,
) -> None:
    application_id = desk.forwarded()
    for task in ("completeness_check", "document_request", "documents_received"):
        desk.delegate(task)
    desk.refused("decision-by-fund", "refuse_benefit", GRENCHEN_OFFICE,
                 application_id=application_id, reason="income_sufficient")


def test_a_revoked_delegation_refuses_naming_it(desk: BenefitDesk) -> None:
    application_id = desk.forwarded(documents=[])
    delegation_id = desk.delegate("completeness_check")
    desk.refused("delegation-by-fund", "revoke_delegation", GRENCHEN_OFFICE,
                 delegation_id=delegation_id, reason="crisis over")
    desk.run("revoke_delegation", delegation_id=delegation_id, reason="crisis over")
    message = desk.refused("delegation-revoked", "check_completeness", GRENCHEN_OFFICE,
                           application_id=application_id, documents_present=[],
                           delegation_id=delegation_id)
    assert str(delegation_id) in message
    desk.refused("delegation-revoked", "revoke_delegation", delegation_id=delegation_id,
                 reason="twice")


def test_an_expired_delegation_refuses_naming_it(desk: BenefitDesk) -> None:
    application_id = desk.forwarded(documents=[])
    delegation_id = desk.delegate("documents_received", days=10)
    desk.refused("expiry-after-period", "expire_delegation", delegation_id=delegation_id)
    desk.move_to(desk.today + timedelta(days=11))
    message = desk.refused("delegation-expired", "record_documents_received",
                           GRENCHEN_OFFICE, application_id=application_id,
                           documents=["rent_contract"], received_on=desk.today,
                           delegation_id=delegation_id)
    assert str(delegation_id) in message
    desk.run("expire_delegation", Actor("timer", "system", "so-canton"),
             delegation_id=delegation_id)
    assert desk.service.delegation(delegation_id).expired
    desk.refused("delegation-expired", "expire_delegation", delegation_id=delegation_id)


def test_a_delegation_is_not_valid_before_its_period(desk: BenefitDesk) -> None:
    application_id = desk.forwarded(documents=[])
    delegation_id = desk.run(
        "grant_delegation", branch_office="akso-grenchen", task="completeness_check",
        valid_from=desk.today + timedelta(days=3), valid_until=desk.today + timedelta(days=9)).id
    desk.refused("delegation-not-yet-valid", "check_completeness", GRENCHEN_OFFICE,
                 application_id=application_id, documents_present=[],
                 delegation_id=delegation_id)


def test_delegations_are_granted_by_the_fund_to_known_offices(desk: BenefitDesk) -> None:
    fields: dict[str, Any] = {"task": "completeness_check", "valid_from": desk.today,
              "valid_until": desk.today + timedelta(days=5)}
    desk.refused("delegation-by-fund", "grant_delegation", GRENCHEN_OFFICE,
                 branch_office="akso-grenchen", **fields)
    desk.refused("branch-office-known", "grant_delegation", branch_office="akso-nowhere",
                 **fields)
    desk.refused("delegation-period-not-past", "grant_delegation",
                 branch_office="akso-grenchen", task="completeness_check",
                 valid_from=desk.today - timedelta(days=9),
                 valid_until=desk.today - timedelta(days=1))


def test_replaying_the_stored_events_gives_the_stored_state(desk: BenefitDesk) -> None:
    application_id = desk.forwarded()
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "900.00"}])
    replayed: BenefitApplication | None = None
    for event in desk.service.events.get(application_id):
        replayed = event.mutate(replayed)  # type: ignore[attr-defined]
    assert replayed is not None
    stored = desk.service.application(application_id)
    assert replayed.owed_for(date(2025, 12, 1)) == stored.owed_for(date(2025, 12, 1))
    assert {k: v for k, v in vars(replayed).items() if k != "applicant"} == {
        k: v for k, v in vars(stored).items() if k != "applicant"}


def test_the_benefits_store_keeps_its_own_table_on_sqlite(tmp_path: Path) -> None:
    # The values of benefit events (amounts, requests, sealed persons) survive a real backend,
    # in a table of their own beside the case store's.
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "store.db")}
    memory = build_benefit_desk()
    first = BenefitService(env, vault=memory.service.vault, reference=memory.service.reference,
                           offices=memory.service.offices, clock=memory.clock)
    desk = BenefitDesk(first, memory.clock, memory.keystore)
    application_id = desk.receive()
    desk.run("check_completeness", application_id=application_id, documents_present=[])
    desk.run("request_documents", application_id=application_id, documents=["rent_contract"],
             due_on=desk.today + timedelta(days=20))
    desk.run("forward_application", application_id=application_id, override_reason="urgent")
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "900.05"}])
    again = BenefitService(env, vault=memory.service.vault, reference=memory.service.reference,
                           offices=memory.service.offices, clock=memory.clock)
    application = again.application(application_id)
    assert application.owed_for(date(2025, 11, 1)) == Decimal("900.05")
    assert application.requests[0].documents == ["rent_contract"]
    assert application.applicant.to_plain()["given_name"] == "Person1"
    with sqlite3.connect(tmp_path / "store.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master")}
    assert BENEFITS_EVENTS_TABLE in tables and "stored_events" not in tables


# --- no existence leaks ------------------------------------------------------------------------


OUT_OF_SCOPE_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("check_completeness", {"documents_present": []}),
    ("request_documents", {"documents": ["rent_contract"], "due_on": "2099-01-01"}),
    ("record_documents_received", {"documents": ["rent_contract"], "received_on": "2025-11-03"}),
    ("forward_application", {"override_reason": "urgent"}),
    ("withdraw_application", {"reason": "applicant_request"}),
    ("grant_benefit", {"from_month": "2025-11",
                       "amounts": [{"from_month": "2025-11", "monthly_chf": "900"}]}),
]
"""Commands an office might try on an application, with fields valid for any of them."""


@pytest.mark.parametrize(("name", "fields"), OUT_OF_SCOPE_COMMANDS,
                         ids=[name for name, _ in OUT_OF_SCOPE_COMMANDS])
@pytest.mark.parametrize("forwarded", [False, True], ids=["received", "forwarded"])
def test_another_offices_application_is_answered_as_a_missing_one(
    desk: BenefitDesk, name: str, fields: dict[str, Any], forwarded: bool,
) -> None:
    existing = desk.forwarded(documents=[]) if forwarded else desk.receive()
    missing = uuid.uuid4()
    lommiswil = desk.delegate("completeness_check", office="akso-lommiswil")
    extra = {"delegation_id": lommiswil} if name == "check_completeness" else {}
    answers = [desk.not_found(name, LOMMISWIL_OFFICE, application_id=application_id,
                              **fields, **extra)
               for application_id in (existing, missing)]
    assert [type(a) for a in answers] == [ApplicationNotFoundError] * 2
    shapes = {str(a).replace(str(i), "<id>") for a, i in zip(answers, (existing, missing),
                                                              strict=True)}
    assert shapes == {"application <id> not found"}
    assert [a.application_id for a in answers] == [existing, missing]  # type: ignore[attr-defined]
    assert vars(answers[0]).keys() == vars(answers[1]).keys()
    assert desk.service.delegated_actions() == []


def test_a_role_without_part_is_refused_alike_for_existing_and_missing_ids(
    desk: BenefitDesk,
) -> None:
    existing = desk.receive()
    answers = {desk.refused("benefit-roles", "withdraw_application", CASEWORKER,
                            application_id=application_id, reason="applicant_request"
                            ).replace(str(application_id), "<id>")
               for application_id in (existing, uuid.uuid4())}
    assert len(answers) == 1


def test_the_fund_is_told_of_a_missing_application_as_not_found(desk: BenefitDesk) -> None:
    missing = uuid.uuid4()
    error = desk.not_found("refuse_benefit", application_id=missing, reason="other")
    assert str(error) == f"application {missing} not found"
    with pytest.raises(ApplicationNotFoundError):
        desk.service.application(missing)
