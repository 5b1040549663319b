"""The fund officer's pages (in-process): the forwarded applications of every office without
personal data, the detail's applicant read logged first, decisions recorded through the
benefits service (refusals next to their field, nothing recorded), delegations granted and
revoked, what was done under them; other roles and other applications get the 404 page."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID, uuid4

import pytest

from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.audit.access_log import AccessEntry
from tests.api.conftest import NOW
from tests.web.benefit_store import (
    BenefitWeb,
    benefit_web,  # noqa: F401 (a fixture)
    without_path,
)
from tests.web.client import USERS, WebUser, csrf_of, sign_in

FUND = next(user for user in USERS if user.role == "fund_officer")
OTHERS = [user for user in USERS if user.role != "fund_officer"]
LIST = "/web/fund/applications"


def _signed_in(shop: BenefitWeb, user: WebUser = FUND) -> str:
    """Sign `user` in; the session's CSRF token."""
    return csrf_of(sign_in(shop.client, user))


def _listed(page_text: str) -> set[str]:
    return set(re.findall(r'href="/web/fund/applications/([0-9a-f-]{36})"', page_text))


def _stage(shop: BenefitWeb, letter: str) -> str:
    return shop.benefits.application(shop.recorded.ids[letter]).stage


def test_the_list_shows_the_applications_awaiting_the_decision_without_personal_data(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop, ids = benefit_web, benefit_web.recorded.ids
    _signed_in(shop)
    waiting = shop.client.get(LIST)
    every = shop.client.get(f"{LIST}?stage=all")

    assert waiting.status_code == 200 and "An die Ausgleichskasse weitergeleitete" in waiting.text
    assert _listed(waiting.text) == {str(ids["C"])}
    assert "wartet auf den Entscheid" in waiting.text and "Grenchen" in waiting.text
    assert _listed(every.text) == {str(ids[x]) for x in "BCE"}  # A, D, L never forwarded
    assert "Muster" not in every.text and "756." not in every.text
    assert shop.context.access_log.select() == []


def test_the_detail_shows_the_applicant_after_logging_the_read(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    _signed_in(shop)
    application_id = str(shop.recorded.ids["C"])
    page = shop.client.get(f"{LIST}/{application_id}")

    assert page.status_code == 200
    assert "Muster" in page.text and "AHV-Nummer" in page.text
    assert "Letzte Steuerveranlagung" in page.text  # missing, requested under the delegation
    assert page.text.count("<h1>") == 1
    assert [entry.entry for entry in shop.context.access_log.select()] == [AccessEntry(
        at=NOW, consumer="web:fund", scope="fund_officer:akso", case_id=application_id,
        person_id=str(shop.recorded.person_ids["C"]), fields=APPLICANT_FIELDS,
        endpoint="GET /web/fund/applications/{application_id}")]


def test_an_application_not_forwarded_answers_as_a_missing_one(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    _signed_in(shop)
    at_the_office = shop.client.get(f"{LIST}/{shop.recorded.ids['A']}")
    unknown = shop.client.get(f"{LIST}/{uuid4()}")
    malformed = shop.client.get(f"{LIST}/not-an-id")

    assert at_the_office.status_code == unknown.status_code == malformed.status_code == 404
    assert without_path(at_the_office.text) == without_path(unknown.text)
    assert without_path(unknown.text) == without_path(malformed.text)
    assert shop.context.access_log.select() == []


@pytest.mark.parametrize("user", OTHERS, ids=lambda user: user.username)
def test_no_other_role_reaches_the_fund_pages(
    benefit_web: BenefitWeb, user: WebUser  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop, user)
    application = f"{LIST}/{shop.recorded.ids['C']}"
    missing = shop.client.get(f"{LIST}/{uuid4()}")
    for url in (LIST, application, "/web/fund/delegations",
                f"/web/fund/delegations/{shop.recorded.active_delegation}"):
        page = shop.client.get(url)
        assert page.status_code == 404, url
        assert without_path(page.text) == without_path(missing.text), url
    refused = shop.client.post(f"{application}/refuse", data={
        "csrf_token": token, "reason": "income_sufficient"})
    assert refused.status_code == 404
    assert _stage(shop, "C") == "forwarded"
    assert shop.context.access_log.select() == []


def test_a_decision_without_the_csrf_token_is_refused_and_records_nothing(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    _signed_in(shop)
    application = f"{LIST}/{shop.recorded.ids['C']}"
    refused = shop.client.post(f"{application}/grant", data={
        "from_month": "2025-11", "amounts.0.monthly_chf": "812.40"})
    forged = shop.client.post(f"{application}/refuse", data={
        "csrf_token": "guess", "reason": "income_sufficient"})

    assert refused.status_code == forged.status_code == 403
    assert _stage(shop, "C") == "forwarded"


def test_a_grant_the_domain_refuses_shows_why_next_to_the_field_and_records_nothing(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop)
    application = f"{LIST}/{shop.recorded.ids['C']}"
    version = shop.benefits.application(shop.recorded.ids["C"]).version
    page = shop.client.post(f"{application}/grant", data={
        "csrf_token": token, "from_month": "2025-11", "amounts.0.monthly_chf": "-5"})

    assert page.status_code == 422
    assert 'id="e-amounts.0.monthly_chf-1"' in page.text
    assert 'aria-invalid="true"' in page.text and "Es wurde nichts gespeichert" in page.text
    assert 'value="-5"' in page.text  # the form keeps what was entered
    assert shop.benefits.application(shop.recorded.ids["C"]).version == version
    missing = shop.client.post(f"{application}/grant", data={
        "csrf_token": token, "amounts.0.monthly_chf": "812.40"})
    assert missing.status_code == 422 and 'id="e-from_month-1"' in missing.text
    assert _stage(shop, "C") == "forwarded"


def test_a_grant_records_the_decision_with_its_amounts_and_says_so(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop)
    application_id = shop.recorded.ids["C"]
    posted = shop.client.post(f"{LIST}/{application_id}/grant", data={
        "csrf_token": token, "from_month": "2025-11", "amounts.0.monthly_chf": "812.40",
        "amounts.1.from_month": "2026-01", "amounts.1.monthly_chf": "830.00",
        "amounts.2.from_month": "", "amounts.2.monthly_chf": ""}, follow_redirects=False)

    assert posted.status_code == 303
    assert posted.headers["location"] == f"{LIST}/{application_id}?recorded=BenefitGranted"
    page = shop.client.get(posted.headers["location"])
    assert '<p class="notice" role="status">Erfasst: Leistung zugesprochen</p>' in page.text
    assert "Leistung zusprechen" not in page.text  # decided: no form any more
    granted = shop.benefits.application(application_id)
    assert granted.stage == "granted" and str(granted.granted_from) == "2025-11-01"
    assert [(str(a.from_month), str(a.monthly_chf)) for a in granted.schedule] == [
        ("2025-11-01", "812.40"), ("2026-01-01", "830.00")]
    assert _listed(shop.client.get(LIST).text) == set()


def test_a_decision_and_a_delegation_from_the_web_record_the_signed_in_account(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop)
    application_id = shop.recorded.ids["C"]
    shop.client.post(f"{LIST}/{application_id}/refuse", data={
        "csrf_token": token, "reason": "assets_above_limit"})
    shop.client.post("/web/fund/delegations", data={
        "csrf_token": token, "branch_office": "akso-olten", "task": "completeness_check",
        "valid_from": "2026-10-01", "valid_until": "2026-12-31"})

    refused = list(shop.benefits.events.get(application_id))[-1]
    granted = [e for e in _delegation_events(shop) if e.actor.user_id == FUND.username]
    assert type(refused).__name__ == "BenefitRefused"
    assert str(refused.recorded_by) == f"web:{FUND.username}"
    assert refused.actor.user_id == FUND.username
    assert [str(e.recorded_by) for e in granted] == [f"web:{FUND.username}"]
    page = shop.client.get("/web/fund/delegations").text
    assert "<th scope=\"col\">Erfasst von</th>" in page
    done = [row for row in re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL)
            if "Unterlagen angefordert" in row]
    assert len(done) == 1 and "<td>unbekannt</td>" in done[0]  # the fixture's: no edge


def _delegation_events(shop: BenefitWeb) -> list[Any]:
    """Every delegation event of the store, in recording order."""
    return [shop.benefits.decode(n) for n in shop.benefits.notifications(gt=0, limit=1000)
            if "Delegation" in n.topic]


def test_a_refusal_needs_a_reason_and_records_it(benefit_web: BenefitWeb) -> None:  # noqa: F811
    shop = benefit_web
    token = _signed_in(shop)
    application = f"{LIST}/{shop.recorded.ids['C']}"
    without = shop.client.post(f"{application}/refuse", data={"csrf_token": token})
    assert without.status_code == 422 and 'id="e-reason-1"' in without.text
    assert _stage(shop, "C") == "forwarded"

    page = shop.client.post(f"{application}/refuse", data={
        "csrf_token": token, "reason": "assets_above_limit", "note": "Vermögen 2025"})
    assert "Erfasst: Leistung abgelehnt" in page.text
    assert "Vermögen über der Grenze" in page.text
    refused = shop.benefits.application(shop.recorded.ids["C"])
    assert (refused.stage, refused.refusal_reason) == ("refused", "assets_above_limit")


def test_the_delegations_page_lists_every_delegation_and_what_was_done_under_them(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    _signed_in(shop)
    page = shop.client.get("/web/fund/delegations")

    assert page.status_code == 200 and page.text.count("<h1>") == 1
    rows = re.findall(r"<tr>(.*?)</tr>", page.text, re.DOTALL)
    delegations = [row for row in rows if "/web/fund/delegations/" in row and "<td>" in row]
    assert any("Anforderung von Unterlagen" in row and "abgelaufen" in row for row in delegations)
    assert any("Vollständigkeitsprüfung" in row and "widerrufen" in row for row in delegations)
    done = [row for row in rows if "Unterlagen angefordert" in row]
    assert len(done) == 1 and "eva.frei" in done[0]
    assert str(shop.recorded.ids["C"]) in done[0] and "Muster" not in page.text


def test_a_task_is_delegated_and_revoked_through_the_forms(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop)
    posted = shop.client.post("/web/fund/delegations", data={
        "csrf_token": token, "branch_office": "akso-olten", "task": "completeness_check",
        "valid_from": "2026-10-01", "valid_until": "2026-12-31"}, follow_redirects=False)
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert location.endswith("?recorded=DelegationGranted")
    delegation_id = UUID(location.split("/")[-1].split("?")[0])
    granted = shop.benefits.delegation(delegation_id)
    assert (granted.branch_office, granted.task) == ("akso-olten", "completeness_check")
    page = shop.client.get(location)
    assert "Erfasst: Delegation erteilt" in page.text and "aktiv" in page.text

    revoke = f"/web/fund/delegations/{delegation_id}/revoke"
    short = shop.client.post(revoke, data={"csrf_token": token, "reason": "no"})
    assert short.status_code == 422 and 'id="e-reason-1"' in short.text
    assert shop.benefits.delegation(delegation_id).revoked_on is None
    done = shop.client.post(revoke, data={"csrf_token": token, "reason": "the fund checks"})
    assert "Erfasst: Delegation widerrufen" in done.text
    assert "Delegation widerrufen</button>" not in done.text  # nothing left to revoke
    assert shop.benefits.delegation(delegation_id).revoked_on is not None


def test_a_delegation_the_domain_refuses_is_shown_and_not_recorded(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    token = _signed_in(shop)
    before = len(list(shop.benefits.application_histories()))
    unknown_office = shop.client.post("/web/fund/delegations", data={
        "csrf_token": token, "branch_office": "akso-nowhere", "task": "completeness_check",
        "valid_from": "2026-10-01", "valid_until": "2026-12-31"})
    without_csrf = shop.client.post("/web/fund/delegations", data={
        "branch_office": "akso-olten", "task": "completeness_check",
        "valid_from": "2026-10-01", "valid_until": "2026-12-31"})

    assert unknown_office.status_code == 422
    assert 'id="e-branch_office-1"' in unknown_office.text
    assert without_csrf.status_code == 403
    assert len(list(shop.benefits.application_histories())) == before
    page = shop.client.get("/web/fund/delegations")
    assert "akso-olten" not in re.sub(r"<option[^>]*>.*?</option>", "", page.text)
    assert page.text.count('href="/web/fund/delegations/') == 3  # the fixture's 2 + the action's


def test_an_unknown_or_malformed_delegation_answers_as_missing(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    _signed_in(shop)
    unknown = shop.client.get(f"/web/fund/delegations/{uuid4()}")
    malformed = shop.client.get("/web/fund/delegations/x")
    assert unknown.status_code == malformed.status_code == 404
    assert without_path(unknown.text) == without_path(malformed.text)
