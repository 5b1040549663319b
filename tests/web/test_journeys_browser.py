"""Each role's main journey end to end in a real Chromium against `nervenbahn serve` on the
embedded broker (issue 16, "Done when"): sign in, act, see the effect on the page and in the
store (or through the CLI).

1. Branch office: records a new application, checks it, requests documents, records them and
   forwards it; the list shows it forwarded.
2. Fund: the reference fund application (examples/fund_application.py, an outside program)
   decides a forwarded application over the bus and the office's page shows the decision; a
   fund officer grants one in the browser and delegates a task to an office, which then acts
   under the delegation.
3. Caseworker: starts an advance in view of the applicant's EL application; the fund grants it,
   the claims worker proposes the budget change; the work list shows it, the prefilled
   change_budget form accepts it (after a conflict with a supervisor's change, explained with
   her name) and the case page shows the new budget; a refused command is explained at its
   field.
4. Canton: the quarterly and backlog pages show figures and charts for the seeded data.
5. Auditor: the case as known before a change and now, the hash chains intact, and the access
   log naming the caseworker's web read.

Each journey also asks for a URL out of the user's scope (the same answer as a missing one)
and sends one of its forms without the CSRF token (refused with 403, nothing recorded).
Screenshots for the README with NERVENBAHN_SCREENSHOTS=1 (`screenshot`).

Pages are read again until the read models have caught up (`_reloaded_until`, a deadline):
the case and application pages of the region and the office are built from read models that
consumers of the bus keep, so they show a change a moment after the store has it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from domain import benefit_commands as bc
from domain.benefits import DocumentsReceived
from domain.case import SWISS_TIME
from domain.commands import Actor, swiss_today
from domain.entitlement import budget_in_force
from domain.events import advances_of, proposals_of
from nervenbahn.config import load_settings
from nervenbahn.container import Container
from nervenbahn.web.i18n import translations
from nervenbahn.web.labels import CASE_EVENTS
from tests.bus.fund_runs import EXAMPLE, fund_example, run_fund
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input, valid_ahvn13
from tests.web.browser import answered_as_missing, axe_check, screenshot, sign_in
from tests.web.site import APPLICATION_OFFICES, Site

pytestmark = pytest.mark.slow

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
"""The README screenshots' size."""
CAUGHT_UP_WITHIN_S = 90.0
"""How long a read model (a consumer of the bus) or the claims worker may take."""
OFFICE, OTHER_OFFICE = "akso-olten", "akso-grenchen"
REGION, OTHER_REGION = "so-olten", "so-oberer-leberberg"
OLTEN = APPLICATION_OFFICES[OFFICE]
EL_GRANTED = Decimal("600.00")
"""The monthly EL the fund officer grants on the caseworker's application."""

"""From when a grant's later period changes the amount (the new year's EL figures)."""
NAMES = ("Rosa", "Verena", "Heinz", "Margrit")
"""Given names of the applicants recorded beforehand (the screenshots show them)."""

de = translations("de").gettext
"""The German the pages show (the users are German-speaking); the source texts are English."""

OpenAs = Callable[[str], Page]


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(served_web: Site) -> Iterator[Container]:
    """The served store, in-process (as an installation's other programs would open it):
    to check effects and to record what a journey needs beforehand."""
    container = Container(load_settings(served_web.environment))
    yield container
    container.close()


@pytest.fixture
def open_as(browser: Browser, served_web: Site) -> Iterator[OpenAs]:
    """`open_as(role)`: a page of a fresh browser context (1280×900, German-Swiss) with that
    role's user signed in; several roles side by side in one test."""
    contexts = []

    def start(role: str) -> Page:
        context = browser.new_context(locale="de-CH", viewport=VIEWPORT)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        sign_in(page, served_web.url, served_web.user(role))
        return page

    yield start
    for context in contexts:
        context.close()


def _today() -> date:
    return datetime.now(SWISS_TIME).date()


def _next_year() -> date:
    """The first day of next year (asked when the test runs, as `_today`)."""
    return date(_today().year + 1, 1, 1)


def _last_segment(url: str) -> UUID:
    """The id a page's address ends with (the thing a POST just recorded)."""
    return UUID(url.split("?")[0].rsplit("/", 1)[1])


def _reloaded_until(page: Page, url: str, shown: Callable[[], bool], what: str) -> None:
    """Open `url` again until `shown()` holds on it (a read model catching up)."""
    wait_until(shown, step=lambda: page.goto(url), within=CAUGHT_UP_WITHIN_S, what=what)


def _submit(form: Locator) -> None:
    """Submit `form` with its (only) submit button and wait for the answer's page."""
    with form.page.expect_navigation():
        form.locator("[type=submit]").click()


def _refused_without_csrf(form: Locator) -> None:
    """Remove the form's CSRF token and send it as the user would (the browser's own checks
    of required fields aside: the server is what is tested): refused with 403."""
    page = form.page
    before = page.url
    form.evaluate("f => { f.noValidate = true; f.querySelector('[name=csrf_token]').remove(); }")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.locator("[type=submit]").click()
    assert answer.value.status == 403, answer.value.status
    page.wait_for_load_state()
    page.goto(before)  # the page again, as the user would open it (no reliance on history)


def _recorded_notice(page: Page, *shown: str) -> None:
    """The page's notice of what was recorded names each of `shown` (as the page words it)."""
    notice = page.locator("[role=status]").filter(has_text=shown[0])
    for text in shown:
        expect(notice).to_contain_text(text)


def _benefit(store: Container, actor: Actor, name: str, **fields: Any) -> Any:
    command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
    return store.benefits.execute(command)


def _forwarded_with_documents_missing(store: Container, serial: int, kind: str = "el_iv",
                                      person_id: UUID | None = None) -> UUID:
    """An application at Olten's office received today, checked (two documents present) and
    forwarded with the rest missing, recorded by the office's desk as an installation's
    other desk would; of the person `person_id` if given."""
    desk = Actor("eva.frei", "branch_office", OFFICE)
    known = {"person_id": str(person_id)} if person_id else {}
    applicant = person_input(serial, given_name=NAMES[serial % len(NAMES)], town="Olten",
                             postal_code="4600", street="Ringstrasse 8", **known)
    app: UUID = _benefit(store, desk, "receive_application", kind=kind, municipality_bfs=OLTEN,
                         applicant=applicant, received_on=_today()).id
    _benefit(store, desk, "check_completeness", application_id=app,
             documents_present=["signed_application", "tax_assessment"])
    _benefit(store, desk, "forward_application", application_id=app,
             override_reason="Unterlagen folgen")
    return app


# --- 1. the branch office ----------------------------------------------------------------------


def _office_records_and_forwards(page: Page, site: Site, *, journey: bool = False) -> UUID:
    """The office's desk in the browser: a new EL application, its completeness check,
    the missing documents requested, then handed in, and the application forwarded. With
    `journey`, also the screenshots, axe-core and the refused form without its token."""
    page.goto(f"{site.url}/web/office/{OFFICE}/applications")
    with page.expect_navigation():
        page.get_by_role("link", name=de("Record a new application")).click()
    form = page.locator("form[action$='/applications/new']")
    form.locator("select[name=kind]").select_option("el_ahv")
    form.locator("select[name=municipality_bfs]").select_option(str(OLTEN))
    for name, value in (("given_name", "Hedwig"), ("family_name", "Studer"),
                        ("ahvn13", valid_ahvn13(4242)), ("birth_date", "1949-03-08"),
                        ("street", "Baslerstrasse 12"), ("postal_code", "4600"),
                        ("town", "Olten")):
        form.locator(f"input[name={name}]").fill(value)
    _submit(form)
    _recorded_notice(page, de("Application received"))
    app = _last_segment(page.url)
    expect(page.get_by_text("Hedwig Studer")).to_be_visible()

    check = page.locator("form[action$='/check']")
    for document in ("signed_application", "pension_statement"):
        check.locator(f"input[value={document}]").check()
    _submit(check)
    _recorded_notice(page, de("Completeness checked"))

    ask = page.locator("form[action$='/request']")
    missing = ask.locator("input[name=documents]")
    assert missing.count() >= 2
    for n in range(missing.count()):
        missing.nth(n).check()
    _submit(ask)
    _recorded_notice(page, de("Documents requested"))
    if journey:
        axe_check(page)
        screenshot(page, "office-application")

    handed_in = page.locator("form[action$='/received']")
    for n in range(handed_in.locator("input[name=documents]").count()):
        handed_in.locator("input[name=documents]").nth(n).check()
    _submit(handed_in)
    _recorded_notice(page, de("Documents received"))
    expect(page.locator("form[action$='/received']")).to_have_count(0)  # nothing missing

    forward = page.locator("form[action$='/forward']")
    if journey:
        _refused_without_csrf(forward)
        forward = page.locator("form[action$='/forward']")
    _submit(forward)
    _recorded_notice(page, de("Forwarded to the fund"))
    return app


def test_branch_office_records_completes_and_forwards_a_new_application(
    open_as: OpenAs, served_web: Site, store: Container
) -> None:
    page = open_as("branch_office")
    app = _office_records_and_forwards(page, served_web, journey=True)

    listing = f"{served_web.url}/web/office/{OFFICE}/applications"
    page.goto(listing)
    row = page.locator("tr", has=page.locator(f"a[href$='/applications/{app}']"))
    expect(row).to_contain_text(de("Forwarded to the fund"))
    axe_check(page)
    screenshot(page, "office-applications")

    found = store.benefits.application(app)
    assert (found.stage, found.kind, found.municipality_bfs) == ("forwarded", "el_ahv", OLTEN)
    events = [type(e).__name__ for e in store.benefits.events.get(app)]
    assert events == ["ApplicationReceived", "CompletenessChecked", "DocumentsRequested",
                      "DocumentsReceived", "ApplicationForwarded"]  # the refused one: none
    assert {e.actor.user_id for e in store.benefits.events.get(app)} == {"eva.frei"}  # type: ignore[attr-defined]
    shown = json.loads(served_web.nervenbahn(
        "--json", "--actor", f"eva.frei:branch_office:{OFFICE}", "benefits", "show", str(app)))
    assert shown["stage"] == "forwarded" and shown["applicant"]["family_name"] == "Studer"

    # Another office's list, and a case of another office's municipalities, as missing ones.
    answered_as_missing(page, f"{served_web.url}/web/office/{OTHER_OFFICE}/applications",
                        f"{served_web.url}/web/office/akso-nirgendwo/applications")
    answered_as_missing(
        page, f"{served_web.url}/web/office/{OFFICE}/cases/{served_web.cases[OTHER_REGION][0]}",
        f"{served_web.url}/web/office/{OFFICE}/cases/{uuid.uuid4()}")


# --- 2. the fund -------------------------------------------------------------------------------


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the reference fund application is not here")
def test_the_funds_reference_application_decides_over_the_bus_and_the_office_sees_it(
    open_as: OpenAs, served_web: Site, store: Container
) -> None:
    page = open_as("branch_office")
    app = _office_records_and_forwards(page, served_web)
    key = json.loads(served_web.nervenbahn("--json", "apikeys", "add", "--consumer",
                                           "vendor-app", "--scope", "bus_reader"))["key"]

    # The outside program runs until it has been idle for a while; again if the forwarding
    # had not reached the topic yet when it caught up.
    wait_until(lambda: store.benefits.application(app).stage != "forwarded",
               step=lambda: run_fund(served_web.url, key), within=180,
               what="the fund application's decision recorded")

    fund = fund_example()
    _, figures = fund.figures_of(_today().year)
    expected = fund.decide(fund.Application(str(app), kind="el_ahv", received_on=_today(),
                                            forwarded=True, missing=set()), figures)
    decided = store.benefits.application(app)
    assert decided.stage == expected.kind
    label = de("Granted") if expected.kind == "granted" else de("Refused")
    url = f"{served_web.url}/web/office/{OFFICE}/applications/{app}"
    _reloaded_until(page, url, lambda: page.locator("dl.facts").first.inner_text()
                    .count(label) > 0, what="the office's page to show the decision")
    if expected.kind == "granted":
        assert decided.granted_from == _today().replace(day=1)
        expect(page.locator("dl.facts").first).to_contain_text(
            _today().replace(day=1).strftime("%d.%m.%Y"))
    timeline = page.locator("table", has=page.locator(
        "caption", has_text=de("What was recorded, oldest first")))
    expect(timeline).to_contain_text(de("Benefit granted") if expected.kind == "granted"
                                     else de("Benefit refused"))


def _fund_grants(page: Page, site: Site, app: UUID, month: date, monthly: Decimal) -> None:
    """The fund officer grants `app` in the browser from `month` with `monthly` CHF."""
    page.goto(f"{site.url}/web/fund/applications")
    with page.expect_navigation():
        page.locator(f"a[href='/web/fund/applications/{app}']").click()
    grant = page.locator("form[action$='/grant']")
    grant.locator("input[name=from_month]").fill(month.strftime("%Y-%m"))
    grant.locator("input[name='amounts.0.monthly_chf']").fill(str(monthly))
    _submit(grant)
    _recorded_notice(page, de("Benefit granted"))


def test_a_fund_officer_grants_in_the_browser_and_an_office_acts_under_a_delegation(
    open_as: OpenAs, served_web: Site, store: Container
) -> None:
    granted, delegated = (_forwarded_with_documents_missing(store, n) for n in (501, 502))
    officer = open_as("fund_officer")

    # A grant without its token is refused; one with an amount that is no amount is refused
    # at its field; the grant with its amounts from this month is recorded.
    officer.goto(f"{served_web.url}/web/fund/applications/{granted}")
    _refused_without_csrf(officer.locator("form[action$='/grant']"))
    grant = officer.locator("form[action$='/grant']")
    grant.locator("input[name=from_month]").fill(_today().strftime("%Y-%m"))
    grant.locator("input[name='amounts.0.monthly_chf']").fill("viel")
    _submit(grant)
    expect(officer.locator(".field.invalid", has=officer.locator(
        "input[name='amounts.0.monthly_chf']")).locator(".error")).not_to_be_empty()
    assert store.benefits.application(granted).stage == "forwarded"
    grant = officer.locator("form[action$='/grant']")
    grant.locator("input[name='amounts.0.monthly_chf']").fill("812.40")
    grant.locator("input[name='amounts.1.from_month']").fill(_next_year().strftime("%Y-%m"))
    grant.locator("input[name='amounts.1.monthly_chf']").fill("845.10")
    _submit(grant)
    _recorded_notice(officer, de("Benefit granted"))
    expect(officer.locator("dl.facts").first).to_contain_text(de("granted"))
    axe_check(officer)
    screenshot(officer, "fund-decision")
    decided = store.benefits.application(granted)
    assert decided.stage == "granted" and decided.granted_from == _today().replace(day=1)
    assert [(p.from_month, p.monthly_chf) for p in decided.schedule] == [
        (_today().replace(day=1), Decimal("812.40")), (_next_year(), Decimal("845.10"))]

    # An application still at its office is not the fund's: it answers as a missing one.
    received = served_web.applications[OTHER_OFFICE][2]
    answered_as_missing(officer, f"{served_web.url}/web/fund/applications/{received}",
                        f"{served_web.url}/web/fund/applications/{uuid.uuid4()}")

    # The fund delegates recording documents received to Olten's office for a month.
    officer.goto(f"{served_web.url}/web/fund/delegations")
    form = officer.locator("form[action='/web/fund/delegations']")
    form.locator("select[name=branch_office]").select_option(OFFICE)
    form.locator("select[name=task]").select_option("documents_received")
    form.locator("input[name=valid_from]").fill(_today().isoformat())
    form.locator("input[name=valid_until]").fill((_today() + timedelta(days=30)).isoformat())
    _submit(form)
    _recorded_notice(officer, de("Delegation granted"))
    delegation = str(_last_segment(officer.url))

    # The office completes the forwarded application under it.
    office = open_as("branch_office")
    office.goto(f"{served_web.url}/web/office/{OFFICE}/applications/{delegated}")
    handed_in = office.locator("form[action$='/received']")
    expect(handed_in.locator("select[name=delegation_id]")).to_have_value(delegation)
    handed_in.locator("input[value=account_statements]").check()
    _submit(handed_in)
    _recorded_notice(office, de("Documents received"))
    [event] = [e for e in store.benefits.events.get(delegated)
               if isinstance(e, DocumentsReceived)]
    assert str(event.delegation_id) == delegation and event.actor.user_id == "eva.frei"

    officer.goto(f"{served_web.url}/web/fund/delegations/{delegation}")
    done = officer.locator("table.actions")
    expect(done).to_contain_text(de("Documents received"))
    expect(done).to_contain_text("eva.frei")


# --- 3. the caseworker -------------------------------------------------------------------------


@pytest.fixture
def advancing_case(served_web: Site, store: Container) -> tuple[UUID, UUID]:
    """A supported case of Olten and its applicant's EL application, forwarded to the fund.
    (Recorded here through the domain: the office's new-application form does not yet offer
    to name a case's person.)"""
    case_id = served_web.cases[REGION][0]
    person = store.service.get_case(case_id).applicant.person_id
    return case_id, _forwarded_with_documents_missing(store, 601, "el_ahv", person)


def test_caseworker_advances_then_accepts_the_el_proposal_after_a_conflict(
    open_as: OpenAs, served_web: Site, store: Container, advancing_case: tuple[UUID, UUID]
) -> None:
    case_id, app = advancing_case
    page = open_as("caseworker")
    case_url = f"{served_web.url}/web/region/{REGION}/cases/{case_id}"
    first = _today().replace(day=1)

    # The advance: first refused at its field (signed tomorrow), then started.
    page.goto(case_url)
    with page.expect_navigation():
        page.locator("a[href$='/do/start_advance']").click()
    version = store.service.get_case(case_id).version
    form = page.locator("form.narrow")
    form.locator("select[name=application_id]").select_option(str(app))
    form.locator("input[name=advance_from]").fill(first.isoformat())
    form.locator("select[name=commitment_kind]").select_option("payment_order")
    form.locator("input[name=commitment_date]").fill((_today() + timedelta(days=1)).isoformat())
    _submit(form)
    refused = page.locator(".field.invalid", has=page.locator("input[name=commitment_date]"))
    expect(refused.locator(".error")).not_to_be_empty()
    expect(page.get_by_role("alert")).to_contain_text(de("Nothing was recorded"))
    assert store.service.get_case(case_id).version == version
    form = page.locator("form.narrow")
    form.locator("input[name=commitment_date]").fill(_today().isoformat())
    _submit(form)
    _recorded_notice(page, de(CASE_EVENTS["AdvanceStarted"]))
    assert [a.application_id for a in advances_of(store.service.get_case(case_id))
            if a.is_open] == [app]

    # The fund officer grants the EL; the claims worker records the claim and the proposal.
    _fund_grants(open_as("fund_officer"), served_web, app, first, EL_GRANTED)
    work = f"{served_web.url}/web/region/{REGION}/work"
    row = page.locator("tr", has=page.locator(f"a[href$='/cases/{case_id}']")).filter(
        has_text=de("Budget change"))
    _reloaded_until(page, work, lambda: row.count() == 1,
                    what="the EL proposal in the work list")
    axe_check(page)
    screenshot(page, "caseworker-worklist")
    [proposal] = [p for p in proposals_of(store.service.get_case(case_id)).values()
                  if p.kind == "budget_change" and p.status == "open"]
    assert proposal.income == EL_GRANTED

    # Accepting it: the form comes filled in, the EL added to the income.
    before = budget_in_force(store.service.get_case(case_id).budgets, first)
    assert before is not None
    income_before = -next(line.amount for line in before.lines if line.code == "income")
    with page.expect_navigation():
        row.get_by_role("link", name=de("Accept")).click()
    form = page.locator("form.narrow")
    expect(form.locator("input[name=income]")).to_have_value(str(income_before + EL_GRANTED))
    expect(form.locator("input[name=effective_date]")).to_have_value(first.isoformat())
    expect(form.locator("select[name=reason]")).to_have_value("income_change")
    axe_check(page)
    screenshot(page, "caseworker-change-budget")
    _refused_without_csrf(form)  # the form is loaded anew on going back
    assert "BudgetChanged" not in [e.event for e in store.service.history(case_id)]

    # Meanwhile the supervisor agrees a goal on the case: the caseworker's change conflicts.
    supervisor = open_as("supervisor")
    supervisor.goto(f"{case_url}/do/agree_goal")
    goal = supervisor.locator("form.narrow")
    goal.locator("select[name=category]").select_option(index=1)
    goal.locator("input[name=title]").fill("Deutschkurs B1 abschliessen")
    goal.locator("input[name=due_date]").fill((_today() + timedelta(days=90)).isoformat())
    _submit(goal)
    _recorded_notice(supervisor, de(CASE_EVENTS["GoalAgreed"]))
    _submit(page.locator("form.narrow"))
    conflict = page.get_by_role("alert")
    expect(conflict).to_contain_text(served_web.user("supervisor").username)
    expect(conflict).to_contain_text(de("goal agreed"))
    with page.expect_navigation():
        conflict.get_by_role("link", name=de("Reload the form")).click()
    _submit(page.locator("form.narrow"))
    _recorded_notice(page, de(CASE_EVENTS["BudgetChanged"]))

    after = budget_in_force(store.service.get_case(case_id).budgets, first)
    assert after is not None and after.total == before.total - EL_GRANTED
    budget = page.locator("table", has=page.locator("caption", has_text=first.strftime(
        "%d.%m.%Y")))
    _reloaded_until(page, case_url, lambda: budget.count() > 0,
                    what="the case page to show the new budget")
    expect(budget).to_contain_text(f"{after.total:,.2f}".replace(",", "'"))
    axe_check(page)
    screenshot(page, "caseworker-case")

    # Another region's case, and another region's work list, answer as missing ones.
    other = served_web.cases[OTHER_REGION][0]
    answered_as_missing(
        page, f"{served_web.url}/web/region/{REGION}/cases/{other}/do/change_budget",
        f"{served_web.url}/web/region/{REGION}/cases/{uuid.uuid4()}/do/change_budget")
    answered_as_missing(page, f"{served_web.url}/web/region/{OTHER_REGION}/work",
                        f"{served_web.url}/web/region/so-nirgendwo/work")


# --- 4. the canton -----------------------------------------------------------------------------


def _language_change_refused_without_csrf(page: Page) -> None:
    """The only form of a reading role's pages (the language), without its token: 403 and
    the page still German."""
    _refused_without_csrf(page.locator("form[action='/web/language']"))
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "de")


def test_canton_sees_quarterly_and_backlog_figures_with_their_charts(
    open_as: OpenAs, served_web: Site
) -> None:
    page = open_as("canton")
    seeded = swiss_today().replace(day=1) - timedelta(days=21)  # the cases' application date
    quarter = f"{seeded.year}Q{(seeded.month - 1) // 3 + 1}"
    quarterly = f"{served_web.url}/web/canton/quarterly?quarter={quarter}"
    figures = page.locator("table").first
    _reloaded_until(page, quarterly, lambda: "Olten" in figures.inner_text(),
                    what="the quarter's figures of the seeded cases")
    expect(page.locator("h1")).to_contain_text(quarter)
    charts = page.locator("svg[role=img]")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 3
    assert all(charts.nth(n).get_attribute("aria-label") for n in range(charts.count()))
    axe_check(page)
    screenshot(page, "canton-quarterly")

    page.goto(f"{served_web.url}/web/canton/backlog")
    expect(page.locator("svg[role=img]").first).to_be_visible()
    expect(page.locator("table").first).to_contain_text("Olten")
    axe_check(page)
    screenshot(page, "canton-backlog")

    # A region's case is no page of the canton's: as a missing one.
    answered_as_missing(
        page, f"{served_web.url}/web/region/{REGION}/cases/{served_web.cases[REGION][0]}",
        f"{served_web.url}/web/region/{REGION}/cases/{uuid.uuid4()}")
    page.goto(quarterly)
    _language_change_refused_without_csrf(page)


# --- 5. the auditor ----------------------------------------------------------------------------


def test_auditor_compares_a_case_before_a_change_checks_the_chains_and_the_access_log(
    open_as: OpenAs, served_web: Site, store: Container
) -> None:
    case_id = served_web.cases[REGION][1]
    caseworker = served_web.user("caseworker")
    before_change = datetime.now(SWISS_TIME).strftime("%d.%m.%Y %H:%M:%S")  # as typed
    first = _today().replace(day=1)
    budget = budget_in_force(store.service.get_case(case_id).budgets, first)
    assert budget is not None
    lines = {line.code: line.amount for line in budget.lines}
    # The caseworker raises the rent in the browser (and so reads the case there).
    reader = open_as("caseworker")
    reader.goto(f"{served_web.url}/web/region/{REGION}/cases/{case_id}/do/change_budget")
    form = reader.locator("form.narrow")
    form.locator("input[name=effective_date]").fill(first.isoformat())
    form.locator("select[name=reason]").select_option("rent_change")
    form.locator("input[name=housing]").fill(str(lines["housing"] + 150))
    _submit(form)
    _recorded_notice(reader, de(CASE_EVENTS["BudgetChanged"]))

    page = open_as("auditor")
    page.goto(f"{served_web.url}/web/audit/case")
    ask = page.locator("form[action='/web/audit/case']")
    ask.locator("input[name=case_id]").fill(str(case_id))
    ask.locator("input[name=as_of]").fill((_today() - timedelta(days=1)).strftime("%d.%m.%Y"))
    _submit(ask)  # yesterday: this installation's store was made today
    expect(page.locator(".field.invalid", has=page.locator("input[name=case_id]"))
           ).to_contain_text(str(case_id))
    ask = page.locator("form[action='/web/audit/case']")
    ask.locator("input[name=as_of]").fill(before_change)
    _submit(ask)
    months = page.locator("#months")
    changed = months.locator("tr", has_text=first.strftime("%m.%Y"))
    expect(changed.get_by_role("link")).to_contain_text(
        de("Changed: what changed in %(month)s") % {"month": first.strftime("%m.%Y")})
    axe_check(page)
    screenshot(page, "auditor-case")

    page.goto(f"{served_web.url}/web/audit/chains")
    expect(page.get_by_role("status")).to_contain_text(de("Verified:"))
    results = page.locator("#chains tbody tr td:last-child")
    assert results.count() >= 2
    assert {results.nth(n).inner_text().strip() for n in range(results.count())} == {de("intact")}
    axe_check(page)
    screenshot(page, "auditor-chains")

    page.goto(f"{served_web.url}/web/audit/access?case_id={case_id}")
    expect(page.locator("table")).to_contain_text(f"web:{caseworker.username}")

    answered_as_missing(
        page, f"{served_web.url}/web/region/{REGION}/cases/{case_id}",
        f"{served_web.url}/web/region/{REGION}/cases/{uuid.uuid4()}")
    page.goto(f"{served_web.url}/web/audit/chains")
    _language_change_refused_without_csrf(page)
