"""Signing in and out in a real Chromium against `nervenbahn serve` (issue 16, item 1): each role
lands on its home page, a wrong password is told in German, five wrong ones lock the account,
sign-out ends the session on the server, a form without its CSRF token is refused, every page
passes axe-core, and the sign-in works with the keyboard alone."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import (
    answered_as_missing,
    axe_check,
    focused,
    screenshot,
    sign_in,
    sign_in_form,
    tab_to,
)
from tests.web.site import Site

pytestmark = pytest.mark.slow

HOMES = {
    "caseworker": "/web/region/so-olten/work",
    "supervisor": "/web/region/so-olten/work",
    "branch_office": "/web/office/akso-olten/applications",
    "fund_officer": "/web/fund/applications",
    "canton": "/web/canton/quarterly",
    "auditor": "/web/audit/case",
}
"""Where each role lands after signing in (the first page of its navigation)."""
SIGN_OUT = "Abmelden"
WRONG = "Benutzername oder Passwort ist falsch."
LOCKED = re.compile(r"Dieses Konto ist nach zu vielen fehlgeschlagenen Anmeldungen bis .+ gesperrt")
SIGNED_OUT = "Sie sind abgemeldet."


def _on_sign_in_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/web/sign-in(\?|$)"))
    expect(page.locator("input[name=password]")).to_be_visible()


@pytest.mark.parametrize("role", sorted(HOMES))
def test_each_role_lands_on_its_home_page_which_passes_axe(
    page: Page, served_web: Site, role: str
) -> None:
    sign_in(page, served_web.url, served_web.user(role))
    expect(page).to_have_url(served_web.url + HOMES[role])
    expect(page.get_by_role("button", name=SIGN_OUT)).to_be_visible()
    axe_check(page)
    screenshot(page, f"home-{role}")


def test_the_sign_in_page_is_german_and_passes_axe(page: Page, served_web: Site) -> None:
    sign_in_form(page, served_web.url)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_label("Passwort")).to_be_visible()
    axe_check(page)
    screenshot(page, "sign-in")


def test_a_wrong_password_is_told_in_german_and_signs_nobody_in(
    page: Page, served_web: Site
) -> None:
    sign_in(page, served_web.url, served_web.user("caseworker"), password="nicht-das-richtige")
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    _on_sign_in_page(page)
    axe_check(page)  # the page with its error


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one_until_reset(
    page: Page, served_web: Site
) -> None:
    user = served_web.user("lockout")
    for attempt in range(4):
        sign_in(page, served_web.url, user, password=f"falsch-{attempt}")
        expect(page.get_by_role("alert")).to_have_text(WRONG)
    sign_in(page, served_web.url, user, password="falsch-4")
    sign_in(page, served_web.url, user)
    expect(page.get_by_role("alert")).to_contain_text(LOCKED)
    _on_sign_in_page(page)
    assert _state(served_web, user.username) == "locked"
    served_web.nervenbahn("users", "reset", user.username, "--password-stdin",
                          stdin="ein neues langes Passwort")
    sign_in(page, served_web.url, user, password="ein neues langes Passwort")
    expect(page.get_by_role("button", name=SIGN_OUT)).to_be_visible()


def _state(site: Site, username: str) -> str:
    """The account's state as `nervenbahn users list` shows it."""
    rows = json.loads(site.nervenbahn("--json", "users", "list"))
    return str(next(row["state"] for row in rows if row["username"] == username))


def test_sign_out_ends_the_session_on_the_server(page: Page, served_web: Site) -> None:
    sign_in(page, served_web.url, served_web.user("caseworker"))
    home = page.url
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    page.get_by_role("button", name=SIGN_OUT).click()
    _on_sign_in_page(page)
    expect(page.get_by_role("status")).to_have_text(SIGNED_OUT)
    page.go_back()  # the page before, as the browser may have kept it: asked for again
    page.reload()
    _on_sign_in_page(page)
    page.goto(home)
    _on_sign_in_page(page)
    replayed = page.request.get(home, headers={"Cookie": cookies}, max_redirects=0)
    assert replayed.status == 303  # the old session cookie, sent again: ended on the server
    assert replayed.headers["location"].startswith("/web/sign-in")


def test_a_form_without_its_csrf_token_is_refused_with_403(page: Page, served_web: Site) -> None:
    sign_in(page, served_web.url, served_web.user("caseworker"))
    home = page.url
    answer = page.request.post(f"{served_web.url}/web/sign-out", form={}, max_redirects=0)
    assert answer.status == 403
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(i => i.remove())")
    with page.expect_response(f"{served_web.url}/web/sign-out") as refused:
        page.get_by_role("button", name=SIGN_OUT).click()
    assert refused.value.status == 403
    page.goto(home)  # neither attempt signed the user out
    expect(page).to_have_url(home)
    expect(page.get_by_role("button", name=SIGN_OUT)).to_be_visible()


def test_the_sign_in_form_without_its_csrf_token_is_refused_with_403(
    page: Page, served_web: Site
) -> None:
    user = served_web.user("caseworker")
    sign_in_form(page, served_web.url)
    answer = page.request.post(f"{served_web.url}/web/sign-in", max_redirects=0,
                               form={"username": user.username, "password": user.password})
    assert answer.status == 403
    assert "nb_session" not in {cookie["name"] for cookie in page.context.cookies()}


def test_signing_in_with_the_keyboard_alone(page: Page, served_web: Site) -> None:
    user = served_web.user("branch_office")
    sign_in_form(page, served_web.url)
    tab_to(page, "username")
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    assert (now := focused(page)) is not None and now.name == "password", now
    page.keyboard.type(user.password)
    page.keyboard.press("Tab")
    assert (now := focused(page)) is not None and now.type == "submit", now
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(served_web.url + HOMES["branch_office"])


@pytest.mark.parametrize(("role", "page_of"), [
    ("caseworker", "/web/region/so-olten/cases/{case}"),
    ("caseworker", "/web/region/so-oberer-leberberg/cases/{case}"),
    ("branch_office", "/web/office/akso-olten/applications/{application}"),
    ("branch_office", "/web/office/akso-grenchen/applications/{application}"),
])
def test_another_regions_case_or_offices_application_answers_as_a_missing_one(
    page: Page, served_web: Site, role: str, page_of: str
) -> None:
    """A user of Olten asks, by URL, for Grenchen's case or application (under their own
    region's or office's path, and under the other's): the answer is the missing one's."""
    case, application = (served_web.cases["so-oberer-leberberg"][0],
                         served_web.applications["akso-grenchen"][0])
    sign_in(page, served_web.url, served_web.user(role))
    answered_as_missing(page, served_web.url + page_of.format(case=case, application=application),
                        served_web.url + page_of.format(case=uuid.uuid4(),
                                                        application=uuid.uuid4()))
    axe_check(page)  # the 404 page, signed in
