"""Where the office's and the caseworker's pages meet in one person (in-process): the branch
office records an EL application for a social-assistance case's applicant (the same person
id, the read logged), the caseworker advances in view of one of the household's pending EL
applications chosen from a list, and the case page shows the household's applications."""

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
from domain.application.cases import CaseService
from domain.benefits import ApplicationReceived
from domain.case import SWISS_TIME, BenefitOnRecord
from domain.commands import Actor, parse_command
from domain.events import advances_of
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.container import build_benefit_service, build_service, close_service
from nervenbahn.web.areas.region_case import APPLICATION_FIELDS, CASE_PAGE_FIELDS
from projections.benefit_applications import BenefitApplicationsProjection
from projections.framework import rebuild
from tests.api.conftest import build_read_models, context_of
from tests.bus.pipeline import store_settings
from tests.domain.case_desk import person_input
from tests.web.client import USERS, csrf_of, form_values, sign_in
from tests.web.conftest import WebOn

CASEWORKER, OLTEN_DESK, GRENCHEN_DESK = USERS[0], USERS[2], USERS[3]
OLTEN_BFS, GRENCHEN_BFS = 2581, 2546
OFFICE = "/web/office/akso-olten"
REGION = "/web/region/so-olten"
CASEWORKER_ACTOR = Actor("cw.olten", "caseworker", "so-olten")
OLTEN_OFFICE = Actor("office.olten", "branch_office", "akso-olten")
GRENCHEN_OFFICE = Actor("office.grenchen", "branch_office", "akso-grenchen")


@dataclass
class Link:
    """Two persons' case and a one-person case of Olten, both supported since this month:
    `couple` (applicant P1, member P2, whose person id is `member`) and `single`. The branch
    offices recorded for P2 an EL to an IV pension (`el_iv`, pending) and a premium reduction
    (`ipv`), and Grenchen an EL for someone else (`stranger`)."""

    web_on: WebOn
    cases: CaseService
    benefits: BenefitService
    couple: UUID
    single: UUID
    member: str
    ids: dict[str, UUID]
    overrides: dict[str, Any]

    def client(self, user: Any) -> TestClient:
        """A client of the app on the store, signed in as `user`."""
        client = self.web_on(self.models, **self.overrides)
        assert sign_in(client, user).status_code in (200, 404)
        return client

    models: Any = None


def _today() -> date:
    return datetime.now(SWISS_TIME).date()


def _case(cases: CaseService, household: list[dict[str, Any]]) -> UUID:
    def run(name: str, **fields: Any) -> UUID:
        return cases.execute(parse_command(name, {
            "actor": CASEWORKER_ACTOR, "correlation_id": str(uuid.uuid4()), **fields})).case_id

    structure = "one_person" if len(household) == 1 else "couple_without_children"
    case_id = run("open_case", municipality_bfs=OLTEN_BFS, household_size=len(household),
                  household_structure=structure, applicant=household[0],
                  other_members=household[1:])
    run("complete_assessment", case_id=str(case_id), needs=["financial"],
        employability="employable")
    run("grant_support", case_id=str(case_id), support_from=_today().replace(day=1).isoformat(),
        housing="1200", health_insurance="350", income="0")
    return case_id


def _receive(benefits: BenefitService, actor: Actor, kind: str, bfs: int,
             applicant: dict[str, Any]) -> UUID:
    return benefits.execute(bc.ReceiveApplication(
        actor=actor, correlation_id=uuid.uuid4(), kind=kind, municipality_bfs=bfs,
        applicant=applicant, received_on=_today())).id


@pytest.fixture
def link(tmp_path: Path, master_key: str, web_on: WebOn) -> Iterator[Link]:
    """The cases and applications of `Link` in one store, the app on its read models."""
    settings = store_settings(tmp_path, master_key)
    found: list[BenefitService] = []

    def on_record(application_id: UUID) -> BenefitOnRecord:
        return found[0].on_record(application_id)

    cases = build_service(settings, benefits=on_record)
    benefits = build_benefit_service(settings, cases)
    found.append(benefits)
    member = str(uuid.uuid4())
    couple = _case(cases, [person_input(1), person_input(2, person_id=member)])
    single = _case(cases, [person_input(3)])
    ids = {
        "el_iv": _receive(benefits, OLTEN_OFFICE, "el_iv", OLTEN_BFS,
                          person_input(2, person_id=member)),
        "ipv": _receive(benefits, OLTEN_OFFICE, "ipv", OLTEN_BFS,
                        person_input(2, person_id=member)),
        "stranger": _receive(benefits, GRENCHEN_OFFICE, "el_ahv", GRENCHEN_BFS,
                             person_input(4)),
    }
    projection, path = BenefitApplicationsProjection(), tmp_path / "benefit_applications.db"
    rebuild(projection, benefits, path)

    def refresh() -> None:
        rebuild(projection, benefits, path)

    overrides = {"service": cases, "benefits": lambda: benefits,
                 "benefit_applications_db": path, "refresh_benefit_applications": refresh,
                 "clock": lambda: datetime.now(SWISS_TIME)}
    yield Link(web_on, cases, benefits, couple, single, member, ids, overrides,
               models=build_read_models(cases, tmp_path / "models"))
    benefits.close()
    close_service(cases)


def _main(page: Response) -> str:
    return page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0]


def _hidden(page: Response, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page.text)
    assert found, f"no hidden {name}"
    return found[1]


def _value(page: Response, name: str) -> str:
    found = re.search(rf'<input id="f-{name}" name="{name}" type="[a-z]+" value="([^"]*)"',
                      page.text)
    assert found, f"no input {name}"
    return found[1]


def _options(page: Response, name: str) -> dict[str, str]:
    select = page.text.split(f'<select id="f-{name}"', 1)[1].split("</select>", 1)[0]
    return dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select))


def _form_of(page: Response) -> dict[str, Any]:
    """What the page's form sends as loaded."""
    return form_values(page.text)


def _received(benefits: BenefitService, application_id: UUID) -> ApplicationReceived:
    event = next(iter(benefits.events.get(application_id)))
    assert isinstance(event, ApplicationReceived)
    return event


def _applications(benefits: BenefitService) -> list[UUID]:
    return list(benefits.application_ids())


# --- 1. the branch office: an EL application for a case's applicant ---------------------------


def test_the_case_page_leads_to_the_form_filled_in_for_its_applicant_read_logged(
    link: Link,
) -> None:
    office = link.client(OLTEN_DESK)
    case = office.get(f"{OFFICE}/cases/{link.couple}")
    assert case.status_code == 200
    href = f"{OFFICE}/applications/new?case={link.couple}"
    assert f'<a href="{href}">EL-Gesuch für diese Person erfassen</a>' in case.text

    form = office.get(href)
    assert form.status_code == 200
    applicant = link.cases.get_case(link.couple).applicant
    assert _hidden(form, "person_id") == str(applicant.person_id)
    assert _hidden(form, "case") == str(link.couple)
    assert _value(form, "given_name") == "Person1" and _value(form, "family_name") == "Muster"
    assert _value(form, "ahvn13") == applicant.to_plain()["ahvn13"]
    assert _value(form, "birth_date") == "1980-04-12"
    assert 'value="2581" selected' in form.text  # the case's municipality

    logged = [item.entry for item in context_of(office).access_log.select()]
    assert [(e.case_id, e.person_id, e.fields, e.endpoint) for e in logged][-1] == (
        str(link.couple), str(applicant.person_id), APPLICANT_FIELDS,
        "GET /web/office/{office_id}/applications/new")


def test_the_application_recorded_from_the_form_is_the_case_applicants(link: Link) -> None:
    office = link.client(OLTEN_DESK)
    form = office.get(f"{OFFICE}/applications/new?case={link.couple}")
    before = _applications(link.benefits)
    answer = office.post(f"{OFFICE}/applications/new", data=_form_of(form),
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    (new,) = set(_applications(link.benefits)) - set(before)
    assert answer.headers["location"] == (
        f"{OFFICE}/applications/{new}?recorded=ApplicationReceived")
    received = _received(link.benefits, new)
    assert received.applicant.person_id == link.cases.get_case(link.couple).applicant.person_id
    assert (received.kind, received.municipality_bfs, received.branch_office) == (
        "el_ahv", OLTEN_BFS, "akso-olten")


def test_a_refused_application_keeps_the_person_in_the_form(link: Link) -> None:
    office = link.client(OLTEN_DESK)
    form = office.get(f"{OFFICE}/applications/new?case={link.couple}")
    before = _applications(link.benefits)
    refused = office.post(f"{OFFICE}/applications/new",
                          data=_form_of(form) | {"ahvn13": "756.0000.0000.00"})
    assert refused.status_code == 422
    assert re.search(r'<p class="error" id="e-ahvn13-1">', refused.text)
    assert _hidden(refused, "person_id") == _hidden(form, "person_id")
    assert _applications(link.benefits) == before


def test_another_offices_case_is_the_same_404_page_as_a_missing_one(link: Link) -> None:
    grenchen = link.client(GRENCHEN_DESK)
    theirs = grenchen.get(f"/web/office/akso-grenchen/applications/new?case={link.couple}")
    missing = grenchen.get(f"/web/office/akso-grenchen/applications/new?case={uuid.uuid4()}")
    malformed = grenchen.get("/web/office/akso-grenchen/applications/new?case=nonsense")
    assert theirs.status_code == missing.status_code == malformed.status_code == 404
    assert _main(theirs) == _main(missing) == _main(malformed)
    assert context_of(grenchen).access_log.select() == []


def test_a_person_id_not_of_the_offices_case_records_nothing(link: Link) -> None:
    office = link.client(OLTEN_DESK)
    form = office.get(f"{OFFICE}/applications/new?case={link.couple}")
    sent = _form_of(form)
    before = _applications(link.benefits)
    for tampered in ({"person_id": link.member},  # a member's, not the case's applicant
                     {"person_id": str(uuid.uuid4())},
                     {"case": str(uuid.uuid4())},
                     {"case": ""}):
        answer = office.post(f"{OFFICE}/applications/new", data=sent | tampered)
        assert answer.status_code == 404, tampered
    grenchen = link.client(GRENCHEN_DESK)
    token = csrf_of(grenchen.get("/web/office/akso-grenchen/applications/new"))
    theirs = grenchen.post("/web/office/akso-grenchen/applications/new",
                           data=sent | {"csrf_token": token, "municipality_bfs": "2546"})
    assert theirs.status_code == 404
    assert _applications(link.benefits) == before


def test_the_form_without_its_csrf_token_is_refused_and_records_nothing(link: Link) -> None:
    office = link.client(OLTEN_DESK)
    form = office.get(f"{OFFICE}/applications/new?case={link.couple}")
    before = _applications(link.benefits)
    sent = {k: v for k, v in _form_of(form).items() if k != "csrf_token"}
    assert office.post(f"{OFFICE}/applications/new", data=sent).status_code == 403
    assert _applications(link.benefits) == before


# --- 2. the caseworker: an advance in view of one of the household's applications -------------


def test_the_advance_form_offers_the_households_pending_el_applications(link: Link) -> None:
    office = link.client(OLTEN_DESK)
    office_form = office.get(f"{OFFICE}/applications/new?case={link.couple}")
    office.post(f"{OFFICE}/applications/new", data=_form_of(office_form))
    (el_ahv,) = set(_applications(link.benefits)) - set(link.ids.values())
    link.benefits.execute(bc.WithdrawApplication(  # no longer pending: not offered
        actor=OLTEN_OFFICE, correlation_id=uuid.uuid4(), application_id=el_ahv,
        reason="applicant_request"))
    renewed = office.post(f"{OFFICE}/applications/new", data=_form_of(office_form),
                          follow_redirects=False)
    new = UUID(renewed.headers["location"].split("/")[-1].split("?")[0])

    caseworker = link.client(CASEWORKER)
    form = caseworker.get(f"{REGION}/cases/{link.couple}/do/start_advance")
    assert form.status_code == 200
    offered = _options(form, "application_id")
    assert set(offered) == {"", str(link.ids["el_iv"]), str(new)}
    today = _today().strftime("%d.%m.%Y")
    assert offered[str(new)] == (
        f"EL zur AHV – eingegangen am {today} – AHV-Zweigstelle Sozialregion Olten – {new}")
    assert offered[str(link.ids["el_iv"])].startswith("EL zur IV – ")
    logged = [item.entry for item in context_of(caseworker).access_log.select()]
    members = {str(p.person_id) for p in (link.cases.get_case(link.couple).applicant,
                                          *link.cases.get_case(link.couple).other_members)}
    assert {e.person_id for e in logged} == members
    assert {(e.case_id, e.fields) for e in logged} == {(str(link.couple), APPLICATION_FIELDS)}

    started = caseworker.post(f"{REGION}/cases/{link.couple}/do/start_advance", data={
        "csrf_token": csrf_of(form), "expected_version": _hidden(form, "expected_version"),
        "application_id": str(new), "advance_from": _today().replace(day=1).isoformat(),
        "commitment_kind": "payment_order", "commitment_date": _today().isoformat()},
        follow_redirects=False)
    assert started.status_code == 303, started.text
    assert started.headers["location"].endswith("?recorded=AdvanceStarted")
    (advance,) = advances_of(link.cases.get_case(link.couple))
    assert (advance.application_id, advance.benefit_kind) == (new, "el_ahv")


def test_an_application_the_domain_refuses_is_named_at_the_field(link: Link) -> None:
    caseworker = link.client(CASEWORKER)
    form = caseworker.get(f"{REGION}/cases/{link.couple}/do/start_advance")
    version = link.cases.get_case(link.couple).version
    refused = caseworker.post(f"{REGION}/cases/{link.couple}/do/start_advance", data={
        "csrf_token": csrf_of(form), "expected_version": str(version),
        "application_id": str(link.ids["ipv"]),  # not offered: a premium reduction
        "advance_from": _today().replace(day=1).isoformat(),
        "commitment_kind": "payment_order", "commitment_date": _today().isoformat()})
    assert refused.status_code == 422
    reason = re.search(r'<p class="error" id="e-application_id-1">([^<]*)</p>', refused.text)
    assert reason and "advance-in-view-of-el" in reason[1]
    assert link.cases.get_case(link.couple).version == version


def test_without_pending_el_applications_the_form_says_so(link: Link) -> None:
    caseworker = link.client(CASEWORKER)
    form = caseworker.get(f"{REGION}/cases/{link.single}/do/start_advance")
    assert form.status_code == 200
    assert _options(form, "application_id") == {"": "Bitte wählen …"}
    hint = re.search(r'<p class="hint" id="h-application_id">([^<]*)</p>', form.text)
    assert hint and "Keine hängigen EL-Gesuche" in hint[1]
    assert 'aria-describedby="h-application_id"' in form.text


# --- 3. the caseworker's case page: the household's applications -------------------------------


def test_the_case_page_shows_the_households_applications(link: Link) -> None:
    caseworker = link.client(CASEWORKER)
    page = caseworker.get(f"{REGION}/cases/{link.couple}")
    assert page.status_code == 200
    section = page.text.split('id="benefit-applications"', 1)[1].split("<h2", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.DOTALL)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.DOTALL) for row in rows]
    by_id = {c[-1].removeprefix("<code>").removesuffix("</code>"): c[:-1] for c in cells if c}
    assert set(by_id) == {str(link.ids["el_iv"]), str(link.ids["ipv"])}
    assert by_id[str(link.ids["el_iv"])] == [
        "Haushaltsmitglied", "EL zur IV-Rente", "Eingegangen", "AHV-Zweigstelle Sozialregion Olten",
        _today().strftime("%d.%m.%Y"), "–"]
    assert "Muster" not in section and "756." not in section
    logged = context_of(caseworker).access_log.select()
    assert logged and all(item.entry.fields == CASE_PAGE_FIELDS for item in logged)

    single = caseworker.get(f"{REGION}/cases/{link.single}")
    assert "Für die Personen des Haushalts ist kein Leistungsgesuch erfasst." in single.text
