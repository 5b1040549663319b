"""The branch office's pages (in-process): its applications and cases only, no personal data
in the lists, every applicant read in the access log, the desk's actions recorded through the
benefits service, refusals next to their field, another office's things the 404 page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.case import SWISS_TIME
from domain.commands import Actor
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.container import build_benefit_service, build_service, close_service
from projections.benefit_applications import BenefitApplicationsProjection
from projections.branch_office import office_cases
from projections.framework import applied_notification_id, catch_up, rebuild
from projections.storage import open_read_model
from tests.api.conftest import NOW, ReadModels, build_read_models, context_of
from tests.bus.pipeline import store_settings
from tests.domain.case_desk import person_input
from tests.domain.fakes import FakeClock
from tests.web.client import USERS, csrf_of, sign_in
from tests.web.conftest import WebOn

OLTEN_DESK, GRENCHEN_DESK = USERS[2], USERS[3]
OLTEN, TRIMBACH, GRENCHEN = 2581, 2500, 2546
OLTEN_OFFICE = Actor("urs.desk", "branch_office", "akso-olten")
GRENCHEN_OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
FUND = Actor("max.akso", "fund_officer", "akso")
BASE = "/web/office/akso-olten"
EL_AHV = ("signed_application", "pension_statement", "tax_assessment", "account_statements",
          "rent_contract", "health_insurance_policy")


@dataclass
class Desk:
    """The app on the fixture's applications, the benefits service behind it, and the ids:
    O1 Olten, received 15.09.2026, rent contract missing, requested by 25.09.2026 (overdue
       on NOW, 01.10.2026);
    O2 Trimbach, received 28.09.2026, not checked;
    O3 Olten, received 15.09.2026, tax assessment missing, forwarded with a reason; the fund
       delegated document requests to Olten from 20.09.2026 (so it is a delegated task);
    G1 Grenchen (another office's), received 20.09.2026."""

    client: TestClient
    benefits: BenefitService
    ids: dict[str, UUID]
    delegation: UUID


def _run(benefits: BenefitService, name: str, actor: Actor, **fields: Any) -> UUID:
    command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
    return benefits.execute(command).id


def _record(benefits: BenefitService, clock: FakeClock) -> tuple[dict[str, UUID], UUID]:
    ids: dict[str, UUID] = {}

    def receive(key: str, actor: Actor, bfs: int, day: date) -> UUID:
        ids[key] = _run(benefits, "receive_application", actor, kind="el_ahv",
                        municipality_bfs=bfs, applicant=person_input(len(ids) + 1),
                        received_on=day)
        return ids[key]

    def check(application: UUID, missing: str) -> None:
        _run(benefits, "check_completeness", OLTEN_OFFICE, application_id=application,
             documents_present=[code for code in EL_AHV if code != missing])

    o1 = receive("O1", OLTEN_OFFICE, OLTEN, date(2026, 9, 15))
    check(o1, "rent_contract")
    clock.now = datetime(2026, 9, 15, 10, 0, tzinfo=SWISS_TIME)
    _run(benefits, "request_documents", OLTEN_OFFICE, application_id=o1,
         documents=["rent_contract"], due_on=date(2026, 9, 25))
    o3 = receive("O3", OLTEN_OFFICE, OLTEN, date(2026, 9, 15))
    check(o3, "tax_assessment")
    _run(benefits, "forward_application", OLTEN_OFFICE, application_id=o3,
         override_reason="the tax assessment follows")
    clock.now = datetime(2026, 9, 28, 10, 0, tzinfo=SWISS_TIME)
    receive("O2", OLTEN_OFFICE, TRIMBACH, date(2026, 9, 28))
    receive("G1", GRENCHEN_OFFICE, GRENCHEN, date(2026, 9, 20))
    delegation = _run(benefits, "grant_delegation", FUND, branch_office="akso-olten",
                      task="document_request", valid_from=date(2026, 9, 20),
                      valid_until=date(2026, 12, 31))
    clock.now = NOW
    return ids, delegation


@pytest.fixture
def desk(tmp_path: Path, master_key: str, web_on: WebOn) -> Iterator[Desk]:
    """The web app on a store of its own with the applications of `Desk`."""
    settings = store_settings(tmp_path, master_key)
    cases = build_service(settings)
    clock = FakeClock(datetime(2026, 9, 15, 9, 0, tzinfo=SWISS_TIME))
    benefits = build_benefit_service(settings, cases, clock)
    ids, delegation = _record(benefits, clock)
    projection, path = BenefitApplicationsProjection(), tmp_path / "benefit_applications.db"
    rebuild(projection, benefits, path)

    def refresh() -> object:
        after = applied_notification_id(projection, path)
        if after is None:
            return rebuild(projection, benefits, path)
        return catch_up(projection, benefits, path, after=after)

    models = build_read_models(cases, tmp_path)
    client = web_on(models, benefits=lambda: benefits, benefit_applications_db=path,
                    refresh_benefit_applications=refresh)
    yield Desk(client, benefits, ids, delegation)
    benefits.close()
    close_service(cases)


def _signed_in(client: TestClient, user: Any = OLTEN_DESK) -> Response:
    page = sign_in(client, user)
    assert page.status_code == 200, page.text
    return page


def _signed_in_elsewhere(client: TestClient, user: Any = OLTEN_DESK) -> None:
    """Signed in on an app without benefit applications (its landing page cannot answer)."""
    landed = sign_in(client, user)
    assert landed.history[0].status_code == 303


def _events(benefits: BenefitService, application: UUID) -> list[str]:
    return [type(e).__name__ for e in benefits.events.get(application)]


def _field_errors(page: Response, element_id: str) -> list[str]:
    """The reasons shown next to the field whose input has `element_id`."""
    return re.findall(rf'<p class="error" id="e-{re.escape(element_id)}-\d+">([^<]*)</p>',
                      page.text)


def _main(page: Response) -> str:
    return page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0]


# --- the list ----------------------------------------------------------------------------------


def test_the_list_shows_the_offices_applications_with_due_dates_and_no_personal_data(
    desk: Desk,
) -> None:
    landed = _signed_in(desk.client)
    assert str(landed.url).endswith(f"{BASE}/applications")

    rows = {m[0]: m[1] for m in re.findall(
        r'applications/([0-9a-f-]{36})">.*?</td>(.*?)</tr>', landed.text, re.DOTALL)}
    assert set(rows) == {str(desk.ids[k]) for k in ("O1", "O2", "O3")}
    o1, o2, o3 = (rows[str(desk.ids[k])] for k in ("O1", "O2", "O3"))
    assert "25.09.2026 (überfällig)" in o1 and "Mietvertrag" in o1
    assert "Eingegangen" in o1 and ">16<" in o1  # days since 15.09.2026
    assert "noch nicht geprüft" in o2 and "Trimbach" in o2
    assert "An die Ausgleichskasse weitergeleitet" in o3 and "Unterlagen anfordern" in o3
    assert "Steuerveranlagung" in o3
    assert "Muster" not in landed.text and "Person1" not in landed.text
    assert context_of(desk.client).access_log.select() == []


# --- scope: another office's is the 404 page ---------------------------------------------------


def test_another_offices_application_is_the_same_404_page_as_a_missing_one(desk: Desk) -> None:
    _signed_in(desk.client)
    theirs = desk.client.get(f"{BASE}/applications/{desk.ids['G1']}")
    missing = desk.client.get(f"{BASE}/applications/{uuid.uuid4()}")
    malformed = desk.client.get(f"{BASE}/applications/not-an-id")
    other_office = desk.client.get(
        f"/web/office/akso-grenchen/applications/{desk.ids['G1']}")
    nowhere = desk.client.get(f"/web/office/akso-nowhere/applications/{desk.ids['G1']}")

    answers = [theirs, missing, malformed, other_office, nowhere]
    assert [a.status_code for a in answers] == [404] * 5
    assert len({_main(a) for a in answers}) == 1
    assert "Nicht gefunden" in theirs.text and "Muster" not in theirs.text
    assert context_of(desk.client).access_log.select() == []


def test_another_offices_application_cannot_be_acted_on(desk: Desk) -> None:
    page = _signed_in(desk.client)
    before = _events(desk.benefits, desk.ids["G1"])
    answer = desk.client.post(f"{BASE}/applications/{desk.ids['G1']}/withdraw",
                              data={"csrf_token": csrf_of(page), "reason": "death"})
    assert answer.status_code == 404
    assert _events(desk.benefits, desk.ids["G1"]) == before


def test_the_other_offices_user_gets_the_404_page_for_every_page(desk: Desk) -> None:
    _signed_in(desk.client, GRENCHEN_DESK)
    missing = desk.client.get(f"/web/office/akso-grenchen/applications/{uuid.uuid4()}")
    for path in ("/applications", "/applications/new", f"/applications/{desk.ids['O1']}",
                 "/cases"):
        answer = desk.client.get(BASE + path)
        assert answer.status_code == 404, path
        assert _main(answer) == _main(missing)
    assert context_of(desk.client).access_log.select() == []


# --- the detail --------------------------------------------------------------------------------


def test_the_detail_shows_the_applicant_and_logs_the_read_first(desk: Desk) -> None:
    _signed_in(desk.client)
    application = str(desk.ids["O1"])
    page = desk.client.get(f"{BASE}/applications/{application}")

    assert page.status_code == 200
    assert "Person1 Muster" in page.text and "15.09.2026" in page.text
    assert "25.09.2026 (überfällig)" in page.text
    assert page.text.count("<h1>") == 1
    (logged,) = context_of(desk.client).access_log.select()
    person = desk.benefits.application(desk.ids["O1"]).applicant.person_id
    assert (logged.entry.consumer, logged.entry.scope, logged.entry.case_id,
            logged.entry.person_id, logged.entry.fields, logged.entry.endpoint) == (
        "web:office.olten", "branch_office:akso-olten", application, str(person),
        APPLICANT_FIELDS, "GET /web/office/{office_id}/applications/{application_id}")


# --- a new application -------------------------------------------------------------------------


def _new(client: TestClient, **changes: str) -> Response:
    form = client.get(f"{BASE}/applications/new")
    assert form.status_code == 200
    data = {"csrf_token": csrf_of(form), "kind": "el_iv", "municipality_bfs": str(TRIMBACH),
            "given_name": "Lea", "family_name": "Graf", "ahvn13": person_input(40)["ahvn13"],
            "birth_date": "1961-02-03", "street": "Baslerstrasse 2", "postal_code": "4632",
            "town": "Trimbach", "received_on": "2026-09-30"} | changes
    return client.post(f"{BASE}/applications/new", data=data)


def test_a_new_application_is_recorded_and_its_page_says_so(desk: Desk) -> None:
    _signed_in(desk.client)
    form = desk.client.get(f"{BASE}/applications/new")
    assert '<option value="2500">Trimbach</option>' in form.text
    assert 'value="2026-10-01"' in form.text  # received today by default

    page = _new(desk.client)

    assert page.status_code == 200
    assert page.history[0].status_code == 303
    new_id = UUID(re.findall(r"applications/([0-9a-f-]{36})", str(page.url))[0])
    assert 'role="status"' in page.text and "Gesuch eingegangen" in page.text
    application = desk.benefits.application(new_id)
    assert (application.kind, application.municipality_bfs, application.branch_office,
            application.received_on) == ("el_iv", TRIMBACH, "akso-olten", date(2026, 9, 30))
    assert application.applicant.family_name == "Graf"
    assert application.stage == "received"
    (received,) = desk.benefits.events.get(new_id)
    office_user = str(received.recorded_by)  # the signed-in account, beside the actor
    assert office_user.startswith("web:") and office_user[4:] == received.actor.user_id
    timeline = page.text[page.text.index("Erfasst von"):]
    assert f"<td>{office_user}</td>" in timeline


def test_a_refused_application_shows_the_reason_next_to_the_ahv_field(desk: Desk) -> None:
    _signed_in(desk.client)
    before = len(list(desk.benefits.application_ids()))

    page = _new(desk.client, ahvn13="756.1234.5678.00", postal_code="123")

    assert page.status_code == 422
    assert "AHVN13" in _field_errors(page, "ahvn13")[0]
    assert _field_errors(page, "postal_code")
    assert not _field_errors(page, "given_name")
    assert 'aria-invalid="true"' in page.text and 'value="Lea"' in page.text
    assert len(list(desk.benefits.application_ids())) == before


def test_a_rule_of_the_domain_is_shown_next_to_its_field(desk: Desk) -> None:
    _signed_in(desk.client)
    before = len(list(desk.benefits.application_ids()))
    future = _new(desk.client, received_on="2026-10-02")
    elsewhere = _new(desk.client, municipality_bfs=str(GRENCHEN))
    assert future.status_code == elsewhere.status_code == 422
    assert "2026-10-02" in _field_errors(future, "received_on")[0]
    assert "Es wurde nichts gespeichert" in elsewhere.text
    assert len(list(desk.benefits.application_ids())) == before


def test_forms_without_the_csrf_token_are_refused_and_record_nothing(desk: Desk) -> None:
    _signed_in(desk.client)
    before = len(list(desk.benefits.application_ids()))
    o2 = desk.ids["O2"]
    new = desk.client.post(f"{BASE}/applications/new", data={
        "kind": "el_ahv", "municipality_bfs": str(OLTEN), "given_name": "Lea"})
    check = desk.client.post(f"{BASE}/applications/{o2}/check",
                             data={"documents_present": list(EL_AHV)})
    forged = desk.client.post(f"{BASE}/applications/{o2}/withdraw",
                              data={"reason": "death", "csrf_token": "guessed"})

    assert [new.status_code, check.status_code, forged.status_code] == [403, 403, 403]
    assert len(list(desk.benefits.application_ids())) == before
    assert _events(desk.benefits, o2) == ["ApplicationReceived"]


# --- the desk's actions ------------------------------------------------------------------------


def test_the_completeness_check_and_the_document_request_are_recorded(desk: Desk) -> None:
    _signed_in(desk.client)
    o2 = desk.ids["O2"]
    page = desk.client.get(f"{BASE}/applications/{o2}")
    assert 'id="check_completeness-documents_present-rent_contract"' in page.text

    checked = desk.client.post(f"{BASE}/applications/{o2}/check", data={
        "csrf_token": csrf_of(page),
        "documents_present": ["signed_application", "pension_statement", "tax_assessment",
                              "account_statements", "health_insurance_policy"]})
    assert checked.status_code == 200 and "Vollständigkeit geprüft" in checked.text
    assert desk.benefits.application(o2).missing == ["rent_contract"]

    too_late = desk.client.post(f"{BASE}/applications/{o2}/request", data={
        "csrf_token": csrf_of(checked), "documents": ["rent_contract"],
        "due_on": "2026-09-30"})
    assert too_late.status_code == 422
    assert "2026-09-30" in " ".join(_field_errors(too_late, "due_on"))
    assert _events(desk.benefits, o2)[-1] == "CompletenessChecked"

    requested = desk.client.post(f"{BASE}/applications/{o2}/request", data={
        "csrf_token": csrf_of(checked), "documents": ["rent_contract"],
        "due_on": "2026-10-31"})
    assert requested.status_code == 200 and "Unterlagen angefordert" in requested.text
    assert desk.benefits.application(o2).requests[-1].due_on == date(2026, 10, 31)
    assert "31.10.2026" in requested.text


def test_forwarding_with_documents_missing_needs_a_reason_next_to_its_field(desk: Desk) -> None:
    page = _signed_in(desk.client)
    o1 = desk.ids["O1"]
    refused = desk.client.post(f"{BASE}/applications/{o1}/forward",
                               data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 422
    assert "rent_contract" in " ".join(
        _field_errors(refused, "override_reason"))
    assert desk.benefits.application(o1).stage == "received"

    forwarded = desk.client.post(f"{BASE}/applications/{o1}/forward", data={
        "csrf_token": csrf_of(page), "override_reason": "the rent contract follows"})
    assert forwarded.status_code == 200 and "Erfasst" in forwarded.text
    assert desk.benefits.application(o1).stage == "forwarded"


def test_documents_received_are_recorded_and_no_longer_missing(desk: Desk) -> None:
    page = _signed_in(desk.client)
    o1 = desk.ids["O1"]
    done = desk.client.post(f"{BASE}/applications/{o1}/received", data={
        "csrf_token": csrf_of(page), "documents": ["rent_contract"],
        "received_on": "2026-09-30"})
    assert done.status_code == 200 and "Unterlagen eingegangen" in done.text
    assert desk.benefits.application(o1).missing == []


def test_a_forwarded_application_is_completed_only_under_the_funds_delegation(
    desk: Desk,
) -> None:
    _signed_in(desk.client)
    o3 = desk.ids["O3"]
    page = desk.client.get(f"{BASE}/applications/{o3}")
    assert f'<option value="{desk.delegation}"' in page.text
    assert "/check" not in page.text and "/forward" not in page.text

    without = desk.client.post(f"{BASE}/applications/{o3}/request", data={
        "csrf_token": csrf_of(page), "documents": ["tax_assessment"], "due_on": "2026-10-20"})
    assert without.status_code == 422
    assert _events(desk.benefits, o3)[-1] == "ApplicationForwarded"

    under = desk.client.post(f"{BASE}/applications/{o3}/request", data={
        "csrf_token": csrf_of(page), "documents": ["tax_assessment"], "due_on": "2026-10-20",
        "delegation_id": str(desk.delegation)})
    assert under.status_code == 200, under.text
    (event,) = [e for e in desk.benefits.events.get(o3)
                if type(e).__name__ == "DocumentsRequested"]
    assert event.delegation_id == desk.delegation  # type: ignore[attr-defined]
    assert str(desk.delegation) in under.text  # the timeline names it


def test_a_withdrawal_is_recorded_with_its_reason(desk: Desk) -> None:
    page = _signed_in(desk.client)
    o2 = desk.ids["O2"]
    done = desk.client.post(f"{BASE}/applications/{o2}/withdraw",
                            data={"csrf_token": csrf_of(page), "reason": "moved_away"})
    assert done.status_code == 200 and "Gesuch zurückgezogen" in done.text
    assert desk.benefits.application(o2).stage == "withdrawn"
    assert "Zurückgezogen" in desk.client.get(f"{BASE}/applications").text


# --- social-assistance cases -----------------------------------------------------------------


def _olten_case(seeded: ReadModels, client: TestClient) -> str:
    offices = context_of(client).branch_offices
    with open_read_model(seeded.branch_office_db, "office_cases") as db:
        return office_cases(db, offices["akso-olten"].municipalities, limit=1)[0].case_id


def test_the_cases_list_has_no_personal_data_and_the_case_page_logs_its_read(
    web: TestClient, seeded: ReadModels,
) -> None:
    _signed_in_elsewhere(web)
    case_id = _olten_case(seeded, web)
    listed = web.get(f"{BASE}/cases")
    assert listed.status_code == 200 and f"cases/{case_id}" in listed.text
    assert "Muster" not in listed.text and "756." not in listed.text
    assert context_of(web).access_log.select() == []

    page = web.get(f"{BASE}/cases/{case_id}")
    assert page.status_code == 200 and "756." in page.text
    (logged,) = context_of(web).access_log.select()
    assert (logged.entry.case_id, logged.entry.fields, logged.entry.endpoint) == (
        case_id, APPLICANT_FIELDS, "GET /web/office/{office_id}/cases/{case_id}")


def test_another_offices_case_is_the_same_404_page_as_a_missing_one(
    web: TestClient, seeded: ReadModels,
) -> None:
    _signed_in_elsewhere(web, GRENCHEN_DESK)
    case_id = _olten_case(seeded, web)
    theirs = web.get(f"/web/office/akso-grenchen/cases/{case_id}")
    missing = web.get(f"/web/office/akso-grenchen/cases/{uuid.uuid4()}")
    by_url = web.get(f"{BASE}/cases/{case_id}")
    assert theirs.status_code == missing.status_code == by_url.status_code == 404
    assert _main(theirs) == _main(missing) == _main(by_url)
    assert context_of(web).access_log.select() == []


def test_the_pages_are_in_french_for_a_french_user(desk: Desk) -> None:
    page = _signed_in(desk.client)
    desk.client.post("/web/language", data={"csrf_token": csrf_of(page), "language": "fr"})
    detail = desk.client.get(f"{BASE}/applications/{desk.ids['O1']}")
    listed = desk.client.get(f"{BASE}/applications")
    new = desk.client.get(f"{BASE}/applications/new")
    assert [detail.status_code, listed.status_code, new.status_code] == [200, 200, 200]
    assert 'lang="fr"' in detail.text and "25.09.2026 (en retard)" in detail.text
    assert "Demandes de prestations" in listed.text and "Numéro AVS" in new.text
