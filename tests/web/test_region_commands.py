"""The caseworker's command forms (in-process): a case opened, assessed, granted and its
budget changed through the forms; refusals next to their field with nothing recorded; a case
changed meanwhile named by who changed it; the EL decision's budget proposal and a register's
closure accepted from the work list's link; another region's case not reachable."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from domain.application.claims import CLAIMS_ACTOR
from domain.case import SWISS_TIME, BenefitOnRecord
from domain.commands import Actor, RecordReimbursement, parse_command
from domain.errors import ApplicationNotFoundError
from domain.events import proposals_of
from domain.reference import load_reference_data
from nervenbahn.container import build_service, close_service
from nervenbahn.web.areas.region_commands_forms import FORMS
from nervenbahn.web.labels import CHOICES
from tests.api.conftest import NOW, ReadModels, build_read_models
from tests.bus.pipeline import store_settings
from tests.domain.case_desk import person_input
from tests.web.client import PASSWORD, USERS, csrf_of, form_values, sign_in
from tests.web.conftest import WebOn

OLTEN, SOLOTHURN = USERS[0], USERS[1]
REGION = "/web/region/so-olten"
OLTEN_BFS, SOLOTHURN_BFS = 2581, 2601
_APPLICATIONS: dict[UUID, BenefitOnRecord] = {}
"""The benefit applications the case service looks up (an advance needs one)."""


def _application(application_id: UUID) -> BenefitOnRecord:
    try:
        return _APPLICATIONS[application_id]
    except KeyError:
        raise ApplicationNotFoundError(application_id) from None


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadModels]:
    """A store of its own (the tests record into it) with its read models, whose case
    service looks benefit applications up in `_APPLICATIONS`."""
    folder = tmp_path_factory.mktemp("region-commands")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    service = build_service(store_settings(folder, key), benefits=_application)
    yield build_read_models(service, folder)
    close_service(service)


@pytest.fixture
def web(web_on: WebOn, store: ReadModels) -> TestClient:
    """The app recording into the store, on today's clock, signed in as Olten's caseworker."""
    client = web_on(store, service=store.service, clock=lambda: datetime.now(SWISS_TIME))
    sign_in(client, OLTEN)
    return client


def _today() -> str:
    return datetime.now(SWISS_TIME).date().isoformat()


def _month() -> str:
    return datetime.now(SWISS_TIME).date().replace(day=1).isoformat()


def _version(store: ReadModels, case_id: UUID) -> int:
    return store.service.get_case(case_id).version


def _submit(client: TestClient, url: str, **fields: Any) -> Any:
    """Load the form at `url`, fill in `fields` over what it holds, post it."""
    form = client.get(url)
    assert form.status_code == 200, form.text
    return client.post(url.split("?")[0], data={**form_values(form.text), **fields},
                       follow_redirects=False)


def _recorded(answer: Any, region: str = "so-olten") -> tuple[UUID, str]:
    """The case and the events a 303 to the case page names."""
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(rf"/web/region/{region}/cases/([0-9a-f-]+)\?recorded=(.*)",
                         answer.headers["location"])
    assert found, answer.headers["location"]
    return UUID(found[1]), found[2].replace("%2C", ",")


def _open(client: TestClient, serial: int, bfs: int = OLTEN_BFS,
          region: str = "so-olten") -> UUID:
    person = person_input(serial)
    answer = _submit(client, f"/web/region/{region}/cases/new", municipality_bfs=str(bfs),
                     household_size="1", household_structure="one_person", **person)
    case_id, events = _recorded(answer, region)
    assert events == "CaseOpened"
    return case_id


def _do(client: TestClient, case_id: UUID, command: str, query: str = "", **fields: Any) -> Any:
    return _submit(client, f"{REGION}/cases/{case_id}/do/{command}{query}", **fields)


def _supported(client: TestClient, serial: int) -> UUID:
    case_id = _open(client, serial)
    _recorded(_do(client, case_id, "complete_assessment", needs=["financial"],
                  employability="employable"))
    _recorded(_do(client, case_id, "grant_support", support_from=_month(), housing="1200",
                  health_insurance="350", income="0"))
    return case_id


def _propose(store: ReadModels, case_id: UUID, command: str, reference: str,
             **fields: Any) -> None:
    """A proposal of the population register (a system actor), effective today."""
    register = Actor("population-register", "system", "so-canton")
    store.service.execute(parse_command(command, {
        "actor": register, "correlation_id": str(uuid.uuid4()), "case_id": str(case_id),
        "external_reference": reference, "source": "population-register",
        "effective_date": _today(), **fields}))


def _error_at(page: str, name: str) -> str:
    found = re.search(rf'<p class="error" id="e-{name}-1">([^<]*)</p>', page)
    assert found, f"no refusal next to {name}"
    return found[1]


# --- a journey ---------------------------------------------------------------------------------


def test_a_command_from_the_web_records_the_signed_in_account_beside_the_actor(
    web: TestClient, store: ReadModels
) -> None:
    case_id = _open(web, 71)

    (opened,) = store.service.events.get(case_id)

    assert str(opened.recorded_by) == f"web:{OLTEN.username}"
    assert (opened.actor.user_id, opened.actor.role) == (OLTEN.username, "caseworker")
    assert opened.import_origin is None


def test_a_case_is_opened_assessed_granted_and_its_budget_changed(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 1)
    assessed = _do(web, case_id, "complete_assessment", needs=["financial", "housing"],
                   employability="partially_employable")
    assert _recorded(assessed) == (case_id, "AssessmentCompleted")
    granted = _do(web, case_id, "grant_support", support_from=_month(), housing="1200.00",
                  health_insurance="350.00", income="0")
    assert _recorded(granted) == (case_id, "SupportGranted")

    form = web.get(f"{REGION}/cases/{case_id}/do/change_budget")
    assert '<h1>Budget ändern</h1>' in form.text
    assert 'name="housing" type="text" value="1200.00"' in form.text  # the budget in force
    changed = _do(web, case_id, "change_budget", effective_date=_today(),
                  reason="income_change", housing="1'200.00", health_insurance="350.00",
                  income="450.50")
    assert _recorded(changed) == (case_id, "BudgetChanged")

    case = store.service.get_case(case_id)
    assert case.phase == "supported" and case.assessment is not None
    assert {line.code: line.amount for line in case.budgets[-1].lines}["income"] == Decimal(
        "-450.50")
    assert store.service.history(case_id)[-1].actor.user_id == OLTEN.username


@pytest.mark.parametrize("command", sorted(set(FORMS) - {"open_case"}))
def test_every_command_has_its_form_in_german_with_a_label_for_each_field(
    web: TestClient, store: ReadModels, command: str,
) -> None:
    case_id = _supported(web, 100 + sorted(FORMS).index(command))
    page = web.get(f"{REGION}/cases/{case_id}/do/{command}")
    assert page.status_code == 200, page.text
    assert page.text.count("<h1>") == 1 and 'lang="de"' in page.text
    assert f'name="expected_version" value="{_version(store, case_id)}"' in page.text
    for item in FORMS[command].inputs:
        assert f'for="f-{item.name}' in page.text or f'<legend>{item.label}' not in page.text
    assert re.search(r'<button type="submit" class="primary">[^<]+</button>', page.text)


def test_a_french_speaking_caseworker_gets_the_forms_in_french(web: TestClient) -> None:
    case_id = _open(web, 13)
    page = web.get(f"{REGION}/cases/new")
    web.post("/web/language", data={"csrf_token": csrf_of(page), "language": "fr"})
    form = web.get(f"{REGION}/cases/{case_id}/do/complete_assessment")
    assert 'lang="fr"' in form.text and "<h1>Évaluation initiale (Erstabklärung)</h1>" in form.text
    assert "Partiellement apte au travail" in form.text
    assert "Enregistrer l'évaluation</button>" in form.text


def test_every_choice_a_form_offers_has_a_label() -> None:
    for spec in FORMS.values():
        for item in spec.inputs:
            if item.kind in ("select", "checkboxes"):
                assert spec.choices(item), (spec.command, item.name)
                assert set(spec.choices(item)) <= set(CHOICES), (spec.command, item.name)


# --- refusals ----------------------------------------------------------------------------------


def test_a_missing_field_is_refused_next_to_it_and_nothing_is_recorded(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 2)
    before = _version(store, case_id)
    refused = _do(web, case_id, "complete_assessment", employability="employable")
    assert refused.status_code == 422
    assert _error_at(refused.text, "needs").startswith("List should have at least 1 item")
    assert 'value="employable" selected' in refused.text  # what was entered stays
    assert _version(store, case_id) == before


def test_a_malformed_amount_is_refused_next_to_it(web: TestClient, store: ReadModels) -> None:
    case_id = _open(web, 3)
    _recorded(_do(web, case_id, "complete_assessment", needs=["debt"],
                  employability="employable"))
    before = _version(store, case_id)
    refused = _do(web, case_id, "grant_support", support_from=_month(), housing="zwölfhundert",
                  health_insurance="350", income="0")
    assert refused.status_code == 422
    assert "decimal" in _error_at(refused.text, "housing")
    assert 'value="zwölfhundert"' in refused.text
    assert _version(store, case_id) == before


def test_a_rule_naming_a_field_is_shown_next_to_it(web: TestClient, store: ReadModels) -> None:
    case_id = _open(web, 4)
    before = _version(store, case_id)
    refused = _do(web, case_id, "hand_over_case", to_municipality_bfs=str(OLTEN_BFS))
    assert refused.status_code == 422
    reason = _error_at(refused.text, "to_municipality_bfs")
    assert "the case&#39;s own social region" in reason and "handover-to-other-region" in reason
    assert _version(store, case_id) == before


def test_a_rule_naming_no_field_is_shown_above_the_form(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 5)
    before = _version(store, case_id)
    refused = _do(web, case_id, "grant_support", support_from=_month(), housing="1200",
                  health_insurance="350", income="0")
    assert refused.status_code == 422
    summary = refused.text.split('id="error-summary"')[1].split("</div>")[0]
    assert "Es wurde nichts gespeichert" in summary
    assert "not allowed in phase &#39;intake&#39;" in summary
    assert "decision-requires-assessment" in summary
    assert _version(store, case_id) == before


def test_a_check_across_fields_is_shown_at_the_field_it_names(
    web: TestClient, store: ReadModels,
) -> None:
    cases = _cases(store)
    refused = _submit(web, f"{REGION}/cases/new", municipality_bfs=str(OLTEN_BFS),
                      household_size="1", household_structure="couple_with_children",
                      **person_input(14))
    assert refused.status_code == 422
    assert "does not fit a household of 1" in _error_at(refused.text, "household_structure")
    assert 'value="Person14"' in refused.text  # what was entered stays
    assert _cases(store) == cases


# --- a case changed meanwhile ------------------------------------------------------------------


def test_a_case_changed_meanwhile_names_who_changed_what_and_offers_a_reload(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _supported(web, 6)
    users = web.app.state.context.users  # type: ignore[attr-defined]
    users.add("sv.olten", role="supervisor", organisation="so-olten", password=PASSWORD,
              now=NOW, by="test")
    supervisor = TestClient(web.app, base_url="https://testserver")
    sign_in(supervisor, OLTEN.__class__("sv.olten", "supervisor", "so-olten"))

    url = f"{REGION}/cases/{case_id}/do/agree_goal"
    stale = web.get(url)
    loaded_at = _version(store, case_id)
    _recorded(_do(supervisor, case_id, "start_measure", kind="job_coaching"))
    _recorded(_do(supervisor, case_id, "complete_review", outcome="continue"))
    conflict = web.post(url, data={
        "csrf_token": csrf_of(stale), "expected_version": str(loaded_at),
        "category": "employment", "title": "Bewerbungen schreiben", "due_date": _month(),
    }, follow_redirects=False)

    assert conflict.status_code == 409
    assert "Der Fall wurde inzwischen von sv.olten geändert" in conflict.text
    assert "Massnahme begonnen, Überprüfung abgeschlossen" in conflict.text
    assert f'href="{url}"' in conflict.text  # reload the form
    assert _version(store, case_id) == loaded_at + 2
    assert store.service.get_case(case_id).goals == {}


# --- proposals of the work list ----------------------------------------------------------------


def test_the_el_decisions_budget_proposal_fills_the_budget_change_in(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _supported(web, 7)
    application_id = uuid.uuid4()
    person = store.service.get_case(case_id).applicant.person_id
    _APPLICATIONS[application_id] = BenefitOnRecord(application_id, "el_ahv", person, "forwarded")
    started = _do(web, case_id, "start_advance", application_id=str(application_id),
                  advance_from=_month(), commitment_kind="payment_order",
                  commitment_date=_today())
    assert _recorded(started) == (case_id, "AdvanceStarted")
    month = datetime.now(SWISS_TIME).date().replace(day=1)
    store.service.execute(RecordReimbursement(
        actor=CLAIMS_ACTOR, correlation_id=uuid.uuid4(), case_id=case_id,
        application_id=application_id, decided_on=_today(), el={month: "500.00"},
        paid={month: "900.00"}, monthly_el="500.00"))
    (reference,) = proposals_of(store.service.get_case(case_id))

    form = web.get(f"{REGION}/cases/{case_id}/do/change_budget?proposal={reference}")
    assert f"aus dem Vorschlag {reference}" in form.text
    assert 'name="income" type="text" value="500.00"' in form.text  # 0.00 + the EL
    assert 'name="housing" type="text" value="1200.00"' in form.text
    assert f'name="effective_date" type="date" value="{_month()}"' in form.text
    assert 'value="income_change" selected' in form.text

    accepted = _do(web, case_id, "change_budget", query=f"?proposal={reference}")
    assert _recorded(accepted) == (case_id, "BudgetChanged")
    case = store.service.get_case(case_id)
    assert proposals_of(case)[reference].status == "resolved"
    assert {line.code: line.amount for line in case.budgets[-1].lines}["income"] == Decimal(
        "-500.00")


def test_a_registers_closure_proposal_fills_the_closure_in(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 8)
    _propose(store, case_id, "propose_closure", "zivilstand:8", reason="death")

    dismiss = web.get(f"{REGION}/cases/{case_id}/do/dismiss_proposal?proposal=zivilstand:8")
    assert 'value="zivilstand:8" selected' in dismiss.text
    form = web.get(f"{REGION}/cases/{case_id}/do/close_case?proposal=zivilstand:8")
    assert 'value="death" selected' in form.text
    closed = _do(web, case_id, "close_case", query="?proposal=zivilstand:8")
    assert _recorded(closed) == (case_id, "CaseClosed")
    case = store.service.get_case(case_id)
    assert case.closure == {"reason": "death",
                            "closed_on": datetime.now(SWISS_TIME).date()}


def test_a_registers_handover_proposal_fills_the_new_municipality_in(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 15)
    _propose(store, case_id, "propose_handover", "umzug:15",
             to_municipality_bfs=SOLOTHURN_BFS)

    form = web.get(f"{REGION}/cases/{case_id}/do/hand_over_case?proposal=umzug:15")
    assert f'<option value="{SOLOTHURN_BFS}" selected>Solothurn ({SOLOTHURN_BFS})' in form.text
    handed = _do(web, case_id, "hand_over_case", query="?proposal=umzug:15")
    assert handed.status_code == 303  # to the case list: the case page is Solothurn's now
    assert handed.headers["location"] == f"{REGION}/cases?recorded=CaseHandedOver"
    assert store.service.get_case(case_id).social_region == "so-solothurn"
    # the case is Solothurn's now: Olten's forms for it are the 404 page
    assert web.get(f"{REGION}/cases/{case_id}/do/close_case").status_code == 404


# --- scope and CSRF ----------------------------------------------------------------------------


def test_another_regions_case_is_the_404_page_of_a_missing_one(
    web: TestClient, web_on: WebOn, store: ReadModels,
) -> None:
    other = web_on(store, service=store.service, clock=lambda: datetime.now(SWISS_TIME))
    sign_in(other, SOLOTHURN)
    theirs = _open(other, 9, SOLOTHURN_BFS, "so-solothurn")
    before = _version(store, theirs)

    foreign = web.get(f"{REGION}/cases/{theirs}/do/close_case")
    missing = web.get(f"{REGION}/cases/{uuid.uuid4()}/do/close_case")
    malformed = web.get(f"{REGION}/cases/not-a-case/do/close_case")
    their_page = web.get(f"/web/region/so-solothurn/cases/{theirs}/do/close_case")
    their_new = web.get("/web/region/so-solothurn/cases/new")
    assert {foreign.status_code, missing.status_code, malformed.status_code,
            their_page.status_code, their_new.status_code} == {404}
    bodies = {page.text.replace(str(page.url.path), "PATH") for page in (
        foreign, missing, malformed, their_page)}
    assert len(bodies) == 1 and "Nicht gefunden" in bodies.pop()  # but for the path itself

    page = web.get(f"{REGION}/cases/new")
    posted = web.post(f"{REGION}/cases/{theirs}/do/close_case", data={
        "csrf_token": csrf_of(page), "reason": "other", "expected_version": str(before)})
    assert posted.status_code == 404
    assert _version(store, theirs) == before


def test_a_form_without_its_csrf_token_is_refused_and_records_nothing(
    web: TestClient, store: ReadModels,
) -> None:
    case_id = _open(web, 10)
    before, cases = _version(store, case_id), _cases(store)
    refused = web.post(f"{REGION}/cases/{case_id}/do/close_case", data={
        "reason": "other", "expected_version": str(before)})
    assert refused.status_code == 403
    assert _version(store, case_id) == before
    opened = web.post(f"{REGION}/cases/new", data={
        "municipality_bfs": str(OLTEN_BFS), "household_size": "1", **person_input(11)})
    assert opened.status_code == 403
    assert _cases(store) == cases


def _cases(store: ReadModels) -> int:
    return sum(1 for _ in store.service.case_ids())


def test_an_unknown_command_is_the_404_page(web: TestClient) -> None:
    case_id = _open(web, 12)
    for command in ("propose_closure", "record_reimbursement", "open_case", "nothing"):
        assert web.get(f"{REGION}/cases/{case_id}/do/{command}").status_code == 404


def test_the_reference_data_has_the_municipalities_the_tests_use() -> None:
    reference = load_reference_data()
    assert reference.municipality(OLTEN_BFS).region_id == "so-olten"
    assert reference.municipality(SOLOTHURN_BFS).region_id == "so-solothurn"
