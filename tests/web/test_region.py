"""The caseworker's reading pages (in-process): the work list with the proposals to accept or
dismiss, the caseload list by phase, and the case page, whose read of the household is in the
access log; another region's pages and cases answer as missing ones do."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from domain.commands import COMMANDS
from nervenbahn.api.context import ApiContext
from nervenbahn.container import build_service, close_service
from nervenbahn.web.areas import region as region_area
from nervenbahn.web.areas.region_case import CASE_COMMANDS, CASE_PAGE_FIELDS
from nervenbahn.web.i18n import translations
from nervenbahn.web.labels import EVENTS
from projections.region import RegionCase, region_cases
from projections.storage import open_read_model
from tests.api.conftest import ReadModels, build_read_models
from tests.bus.pipeline import command, store_settings
from tests.web.client import USERS, sign_in
from tests.web.conftest import WebOn

OLTEN_CW, SOLOTHURN_CW, OFFICE = USERS[0], USERS[1], USERS[2]
OLTEN, SOLOTHURN = 2581, 2601
GERMAN = translations("de").gettext
REGISTER = {"user_id": "population-register", "role": "system", "organisation": "so-canton"}
PERSON = {"given_name": "Lia", "family_name": "Muster", "ahvn13": "756.9217.0769.85",
          "birth_date": "1990-01-01", "street": "Weg 1", "postal_code": "4600", "town": "Olten"}


def _context(client: TestClient) -> ApiContext:
    context = client.app.state.context  # type: ignore[attr-defined]
    assert isinstance(context, ApiContext)
    return context


def _cases(models: ReadModels, region: str, phase: str | None = None) -> list[RegionCase]:
    with open_read_model(models.region_db, "region_cases") as db:
        return region_cases(db, region, phase=phase, limit=1000)


@pytest.fixture
def olten(web_on: WebOn, seeded: ReadModels) -> TestClient:
    """The app on the seeded store (with its case service), signed in as Olten's caseworker."""
    client = web_on(seeded, service=seeded.service)
    sign_in(client, OLTEN_CW)
    return client


@pytest.fixture
def with_proposals(tmp_path: Path, master_key: str, web_on: WebOn) -> Any:
    """A store of its own: two Olten cases, one the register proposes to hand over, one to
    close; the app on it, signed in as Olten's caseworker."""
    clock = lambda: datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME)  # noqa: E731
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    moved, died = _open(service), _open(service)
    _propose(service, "propose_handover", moved, external_reference="m-7/0",
             to_municipality_bfs=SOLOTHURN, effective_date="2026-02-10")
    _propose(service, "propose_closure", died, external_reference="m 7/1&x",
             reason="death", effective_date="2026-03-01")
    client = web_on(build_read_models(service, tmp_path), service=service)
    sign_in(client, OLTEN_CW)
    yield client, moved, died
    close_service(service)


def _open(service: CaseService) -> str:
    opened = service.execute(command("open_case", municipality_bfs=OLTEN, household_size=1,
                                     applicant=PERSON, application_date="2026-03-02"))
    return str(opened.case_id)


def _propose(service: CaseService, name: str, case_id: str, **fields: Any) -> None:
    service.execute(command(name, case_id=case_id, actor=REGISTER,
                            source="population_register", **fields))


def _body(page: Any) -> str:
    """The page's text without its own address (the layout's language form names it)."""
    return str(page.text).replace(page.url.path, "PATH")


def _h1(page: str) -> str:
    found = re.findall(r"<h1>(.*?)</h1>", page, re.DOTALL)
    assert len(found) == 1, "one h1 a page"
    return found[0]


# --- the work list ---------------------------------------------------------------------------


def test_the_work_list_shows_what_is_due_and_says_overdue_in_words(olten: TestClient) -> None:
    page = olten.get("/web/region/so-olten/work")
    assert page.status_code == 200
    assert _h1(page.text) == "Pendenzen"
    assert "Erstabklärung" in page.text and "überfällig" in page.text
    assert "01.03.2026" in page.text  # the assessment's due date, Swiss format


def test_the_work_list_links_each_proposal_to_accept_and_dismiss(with_proposals: Any) -> None:
    client, moved, died = with_proposals
    page = client.get("/web/region/so-olten/work")
    assert page.status_code == 200
    base = "/web/region/so-olten/cases"
    assert f'href="{base}/{moved}/do/hand_over_case?proposal=m-7%2F0"' in page.text
    assert f'href="{base}/{moved}/do/dismiss_proposal?proposal=m-7%2F0"' in page.text
    closure = quote("m 7/1&x", safe="").replace("%20", "+")
    assert f'href="{base}/{died}/do/close_case?proposal={closure}"' in page.text
    assert f'href="{base}/{died}/do/dismiss_proposal?proposal={closure}"' in page.text
    assert "Vorschlag: Dossier übergeben (Umzug)" in page.text


def test_the_case_page_links_its_open_proposals(with_proposals: Any) -> None:
    client, moved, _died = with_proposals
    page = client.get(f"/web/region/so-olten/cases/{moved}")
    assert page.status_code == 200
    assert f"/cases/{moved}/do/hand_over_case?proposal=m-7%2F0" in page.text
    assert f"/cases/{moved}/do/dismiss_proposal?proposal=m-7%2F0" in page.text
    assert "so-solothurn (BFS 2601)" in page.text


def _rows(html: str) -> list[str]:
    """The rows of a page's table body."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    return re.findall(r"<tr>.*?</tr>", body.group(1), re.S) if body else []


def test_the_work_list_comes_in_pages_that_add_up_to_the_whole_list(
    olten: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _rows(olten.get("/web/region/so-olten/work").text)
    monkeypatch.setattr(region_area, "PAGE_SIZE", 1)
    pages, number = [], 1
    while True:
        page = olten.get("/web/region/so-olten/work", params={"page": str(number)})
        assert page.status_code == 200
        pages.append(page.text)
        if 'rel="next"' not in page.text:
            break
        number += 1

    assert len(whole) > 1, "the seeded region has more than a page of one"
    assert [row for page in pages for row in _rows(page)] == whole
    assert f"{len(whole)} Pendenzen, Seite 1" in pages[0]
    assert 'rel="prev"' not in pages[0] and 'rel="prev"' in pages[-1]
    assert olten.get("/web/region/so-olten/work", params={"page": "x"}).text == pages[0]


def test_another_regions_work_list_is_the_not_found_page(olten: TestClient) -> None:
    other = olten.get("/web/region/so-solothurn/work")
    missing = olten.get("/web/region/so-nowhere/work")
    assert other.status_code == missing.status_code == 404
    assert _body(other) == _body(missing)


def test_a_branch_office_user_does_not_reach_a_regions_pages(
    web_on: WebOn, seeded: ReadModels
) -> None:
    client = web_on(seeded, service=seeded.service)
    sign_in(client, OFFICE)
    assert client.get("/web/region/so-olten/work").status_code == 404
    assert client.get("/web/region/so-olten/cases").status_code == 404


# --- the caseload list -----------------------------------------------------------------------


def test_the_case_list_filters_by_phase_and_shows_no_personal_data(
    olten: TestClient, seeded: ReadModels
) -> None:
    supported = _cases(seeded, "so-olten", "supported")
    others = [c for c in _cases(seeded, "so-olten") if c.phase != "supported"]
    assert supported and others
    page = olten.get("/web/region/so-olten/cases", params={"phase": "supported"})
    assert page.status_code == 200 and _h1(page.text) == "Dossiers"
    assert all(c.case_id in page.text for c in supported)
    assert not any(c.case_id in page.text for c in others)
    assert '<option value="supported" selected>' in page.text
    applicant = seeded.service.get_case(UUID(supported[0].case_id)).applicant
    assert applicant.family_name not in page.text
    assert _context(olten).access_log.select(limit=10) == []


def test_the_case_list_pages(olten: TestClient, monkeypatch: pytest.MonkeyPatch,
                             seeded: ReadModels) -> None:
    monkeypatch.setattr(region_area, "PAGE_SIZE", 3)
    every = [c.case_id for c in _cases(seeded, "so-olten")]
    assert len(every) == 4
    first = olten.get("/web/region/so-olten/cases")
    second = olten.get("/web/region/so-olten/cases", params={"page": "2"})
    assert [c in first.text for c in every] == [True, True, True, False]
    assert [c in second.text for c in every] == [False, False, False, True]
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text


# --- the case page ---------------------------------------------------------------------------


def test_the_case_page_shows_the_household_budget_and_timeline_and_logs_the_read(
    olten: TestClient, seeded: ReadModels
) -> None:
    case_id = _cases(seeded, "so-olten", "supported")[0].case_id
    case = seeded.service.get_case(UUID(case_id))
    page = olten.get(f"/web/region/so-olten/cases/{case_id}")
    assert page.status_code == 200
    assert case_id in _h1(page.text)
    assert case.applicant.family_name in page.text and case.applicant.ahvn13 in page.text
    assert "Unterstützt" in page.text and "Budget pro Monat" in page.text
    assert "CHF " in page.text
    months = re.findall(r"<td>(\d\d\.\d{4})", page.text)
    assert months[0] == "11.2025" and months[-1] == "01.2027" and len(months) == 15
    events = [entry.event for entry in seeded.service.history(UUID(case_id))]
    assert all(f"<td>{escape(GERMAN(EVENTS[event]))}</td>" in page.text for event in events)
    logged = _context(olten).access_log.select(case_id=case_id)
    persons = {str(p.person_id) for p in (case.applicant, *case.other_members)}
    assert {item.entry.person_id for item in logged} == persons
    assert all(item.entry.fields == CASE_PAGE_FIELDS for item in logged)
    assert logged[0].entry.consumer == "web:cw.olten"
    assert logged[0].entry.scope == "caseworker:so-olten"
    assert logged[0].entry.endpoint == "GET /web/region/{region_id}/cases/{case_id}"


def test_the_case_page_links_every_command_of_the_case_process(
    olten: TestClient, seeded: ReadModels
) -> None:
    case_id = _cases(seeded, "so-olten")[0].case_id
    page = olten.get(f"/web/region/so-olten/cases/{case_id}")
    for name, _label in CASE_COMMANDS:
        assert name in COMMANDS
        assert f'href="/web/region/so-olten/cases/{case_id}/do/{name}"' in page.text
    assert "Dossier schliessen" in page.text


def test_the_case_page_names_what_was_just_recorded(olten: TestClient,
                                                    seeded: ReadModels) -> None:
    case_id = _cases(seeded, "so-olten")[0].case_id
    page = olten.get(f"/web/region/so-olten/cases/{case_id}",
                     params={"recorded": "GoalAgreed,<script>"})
    assert re.search(r'role="status">\s*<p>Gespeichert: Ziel vereinbart</p>', page.text)
    assert "<script>" not in page.text


def test_another_regions_case_is_the_same_not_found_page_as_a_missing_one(
    web_on: WebOn, seeded: ReadModels
) -> None:
    client = web_on(seeded, service=seeded.service)
    sign_in(client, SOLOTHURN_CW)
    case_id = _cases(seeded, "so-olten")[0].case_id
    other = client.get(f"/web/region/so-solothurn/cases/{case_id}")
    missing = client.get("/web/region/so-solothurn/cases/00000000-0000-4000-8000-000000000000")
    malformed = client.get("/web/region/so-solothurn/cases/not-a-uuid")
    foreign = client.get(f"/web/region/so-olten/cases/{case_id}")
    assert {r.status_code for r in (other, missing, malformed, foreign)} == {404}
    assert _body(other) == _body(missing) == _body(malformed) == _body(foreign)
    assert _context(client).access_log.select(case_id=case_id) == []


def test_the_pages_speak_french_to_a_user_who_chose_it(olten: TestClient,
                                                       seeded: ReadModels) -> None:
    _context(olten).users.set_language(OLTEN_CW.username, "fr")  # type: ignore[union-attr]
    work = olten.get("/web/region/so-olten/work")
    case_id = _cases(seeded, "so-olten", "supported")[0].case_id
    case = olten.get(f"/web/region/so-olten/cases/{case_id}")
    assert 'lang="fr"' in work.text and "en retard" in work.text
    assert "Budget par mois" in case.text and "Clore le dossier" in case.text
    assert "CHF " in case.text and re.search(r"\d\d\.\d\d\.\d{4}", case.text)
