"""Every page of every role passes axe-core in a real Chromium (issue 16: no serious or critical
violation on any page), has the structure assistive technology relies on (one <h1>, a <title>,
the document's language and one main landmark), and shows the focus wherever it lands (an
outline), tabbed through from the top (on the first page of each route template).

The pages are found as a user finds them: from each role's home page, following every link
(each route template a few times), then sending each GET form as it stands and once filled in,
and each command form emptied (the refusal, with its error summary and the reasons next to the
fields, must pass too). A refused form records nothing: the case commands' forms are sent with a
stale `expected_version` as well, so that even a form the domain would accept empty is refused
as a conflict. The sign-in page, the 404, 403 and error pages are checked apart. Each test
collects what it finds on all its pages and fails once, with the list (page, rule, impact,
elements).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlsplit

import pytest
from playwright.sync_api import Page, Response

from domain.commands import swiss_today
from tests.web.browser import axe_violations, sign_in, sign_in_form
from tests.web.site import Site

pytestmark = pytest.mark.slow

ROLES = ("caseworker", "supervisor", "branch_office", "fund_officer", "canton", "auditor")
IN_FRENCH = ("supervisor",)
"""Roles whose user chooses French for the crawl (and German again after it): the supervisor
sees the caseworker's pages, so these are checked in both languages."""
INSTANCES = 3
"""Pages checked per route template (the same template with other data: a few instances);
a command form (`/do/`) once."""
MORE_STARTS = {"auditor": ("/web/audit/case/diff",)}
"""Pages a role reaches by a link only where data make one (a month that changed)."""
MOST_PAGES = 120
"""Pages checked per role at most (links included): a bound for a crawl gone astray."""
NOT_SENT = ("/web/sign-out", "/web/language", "/check", "/forward", "/withdraw", "/revoke",
            "/web/audit/chains")
"""POST forms not sent emptied: these would record something even when empty (a completeness
check with no document, a forwarding, a withdrawal for the first reason, a revocation today),
and the refusals of their pages are checked by the forms beside them; the auditor's "verify
now" takes no input to refuse (its page is checked as the GET shows it)."""
STALE_VERSION = "999999"
"""An `expected_version` no case has: the command is refused as a conflict if nothing else."""
REACHED = {
    "caseworker": {"/web/region/so-olten/cases/{id}/do/change_budget",
                   "/web/region/so-olten/cases/new"},
    "supervisor": {"/web/region/so-olten/cases/{id}"},
    "branch_office": {"/web/office/akso-olten/applications/{id}",
                      "/web/office/akso-olten/cases/{id}"},
    "fund_officer": {"/web/fund/applications/{id}", "/web/fund/delegations"},
    "canton": {"/web/canton/backlog"},
    "auditor": {"/web/audit/access", "/web/audit/chains"},
}
"""Pages each role's crawl must have reached (so that a crawl that finds nothing fails)."""
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_STRUCTURE = """() => ({
  h1: document.querySelectorAll('h1').length,
  title: document.title.trim(),
  lang: document.documentElement.getAttribute('lang') || '',
  main: document.querySelectorAll('main, [role=main]').length,
})"""
_FOCUS_STOP = """() => {
  const e = document.activeElement;
  if (e === null || e === document.body) return null;
  const style = getComputedStyle(e);
  return {
    name: e.id ? '#' + e.id : `${e.tagName.toLowerCase()} ${(e.innerText || e.name || '').trim()}`,
    shown: style.outlineStyle !== 'none' && style.outlineWidth !== '0px',
  };
}"""
MOST_STOPS = 400
"""Tab presses per page at most (the longest case page has about 120 stops)."""
_LINKS = "() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"
_FORMS = "() => Array.from(document.forms, f => ({method: f.method, action: f.action}))"
_FORM_DATA = """(index) => {
  const form = document.forms[index];
  return Array.from(new FormData(form), ([name, value]) =>
    [name, String(value), form.elements[name].type || '']);
}"""
_EMPTIED = """([index, stale]) => {
  const form = document.forms[index];
  for (const input of form.querySelectorAll('input')) {
    if (input.name === 'expected_version') input.value = stale;
    else if (input.type === 'checkbox' || input.type === 'radio') input.checked = false;
    else if (input.type !== 'hidden') input.value = '';
  }
  for (const select of form.querySelectorAll('select')) {
    if (Array.from(select.options).some(o => o.value === '')) select.value = '';
  }
  form.noValidate = true;
  form.submit();
}"""


@dataclass
class Audit:
    """What was checked in one test and what was found there."""

    page: Page
    language: str = "de"
    """The language every page must declare (<html lang>)."""
    findings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def check(self, what: str, answer: Response | None, *statuses: int | None,
              focus: bool = True) -> None:
        """Check the page as it stands (`what` names it in the findings): its answer's status
        one of `statuses` (200 if none; `None`: not checked), axe-core, its structure and, if
        `focus`, the focus outline of every element tabbed to."""
        status = None if answer is None else answer.status
        if statuses != (None,) and status not in (statuses or (200,)):
            self.findings.append(f"{what}: answered {status}, expected {statuses or (200,)}")
        self.findings.extend(f"{what}: {v}" for v in axe_violations(self.page))
        self.findings.extend(f"{what}: {problem}"
                             for problem in _structure(self.page, self.language))
        hidden = _focus_hidden(self.page) if focus else []
        if hidden:
            self.findings.append(f"{what}: focus not visible (no outline) on {', '.join(hidden)}")
        self.checked.append(what)

    def assert_clean(self) -> None:
        """Fail with every finding, if any."""
        assert not self.findings, (f"{len(self.findings)} problems on {len(self.checked)} "
                                    "pages:\n" + "\n".join(self.findings))


def _focus_hidden(page: Page) -> list[str]:
    """Tab through the page from its top, as a keyboard user does, until the focus leaves it:
    the elements that took the focus without showing it (no outline)."""
    hidden: list[str] = []
    for _ in range(MOST_STOPS):
        page.keyboard.press("Tab")
        stop: dict[str, Any] | None = page.evaluate(_FOCUS_STOP)
        if stop is None:
            return hidden
        if not stop["shown"] and stop["name"] not in hidden:
            hidden.append(stop["name"])
    return [*hidden, f"(more than {MOST_STOPS} Tab stops)"]


def _structure(page: Page, language: str) -> list[str]:
    found: dict[str, Any] = page.evaluate(_STRUCTURE)
    problems = []
    if found["h1"] != 1:
        problems.append(f"structure: {found['h1']} <h1> (one expected)")
    if not found["title"]:
        problems.append("structure: no <title>")
    if found["lang"] != language:
        problems.append(f"structure: <html lang={found['lang']!r}>")
    if found["main"] != 1:
        problems.append(f"structure: {found['main']} main landmarks (one expected)")
    return problems


def template_of(url: str) -> str:
    """The route template of `url`: ids replaced by {id}, the query by its parameters' names
    (`/web/region/so-olten/cases/{id}?recorded`)."""
    parts = urlsplit(url)
    path = "/".join("{id}" if _UUID.match(part) else part for part in parts.path.split("/"))
    names = sorted({pair.split("=")[0] for pair in parts.query.split("&") if pair})
    return path + ("?" + "&".join(names) if names else "")


@dataclass(frozen=True)
class FoundForm:
    """A form as the crawl found it: the page it is on, its place there, method and action."""

    page: str
    index: int
    method: str
    action: str


def _crawl(audit: Audit, base: str, more: tuple[str, ...] = ()) -> list[FoundForm]:
    """Check every page reachable by links from the current one and from the `more` paths
    (INSTANCES per template); the forms found on them, one per method and action template."""
    page = audit.page
    queue, seen = deque([page.url, *(base + path for path in more)]), Counter[str]()
    forms: dict[tuple[str, str], FoundForm] = {}
    while queue and len(audit.checked) < MOST_PAGES:
        url = queue.popleft()
        key = template_of(url)
        if seen[key] >= (1 if "/do/" in key else INSTANCES) or url in audit.checked:
            continue
        seen[key] += 1
        # The focus outline is the template's (its markup and the style sheet), not the data's:
        # tabbed through on a template's first page only (the tabbing is half the crawl's time).
        audit.check(url, page.goto(url), focus=seen[key] == 1)
        for link in page.evaluate(_LINKS):
            link = link.split("#")[0]
            if link.startswith(f"{base}/web/") and "/web/static/" not in link:
                queue.append(link)
        for index, form in enumerate(page.evaluate(_FORMS)):
            found = FoundForm(url, index, form["method"], form["action"])
            forms.setdefault((found.method, template_of(found.action)), found)
    return list(forms.values())


def _get_forms(audit: Audit, forms: list[FoundForm], fills: dict[str, str]) -> None:
    """Each GET form's answer as it stands, with its text fields wrong, and with its empty
    fields filled from `fills` (the form's refusals at their fields, then its result)."""
    page = audit.page
    for form in (f for f in forms if f.method == "get"):
        page.goto(form.page)
        fields: list[list[str]] = page.evaluate(_FORM_DATA, form.index)
        pairs = [(name, value) for name, value, _ in fields]
        wrong = [(name, "nicht gültig" if kind == "text" else value)
                 for name, value, kind in fields]
        filled = [(name, value or fills.get(name, "")) for name, value in pairs]
        for label, sent in (("as it stands", pairs), ("with wrong values", wrong),
                            ("filled in", filled)):
            query = "&".join(f"{name}={quote_plus(value)}" for name, value in sent)
            audit.check(f"GET form {form.action} {label}", page.goto(f"{form.action}?{query}"),
                        200, 422)


def _refused_forms(audit: Audit, forms: list[FoundForm]) -> None:
    """Each POST form sent emptied (see NOT_SENT): its refusal, which must record nothing."""
    page = audit.page
    for form in forms:
        if form.method != "post" or form.action.endswith(NOT_SENT):
            continue
        page.goto(form.page)
        with page.expect_navigation() as sent:
            page.evaluate(_EMPTIED, [form.index, STALE_VERSION])
        audit.check(f"refused form {form.action}", sent.value, 409, 422)


def _fills(site: Site) -> dict[str, str]:
    """Values for the GET forms' empty fields: a seeded case, this month."""
    return {"case_id": str(site.cases["so-olten"][0]), "month": swiss_today().strftime("%Y-%m")}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_a_role_passes_axe_and_has_its_landmarks(
    page: Page, served_web: Site, role: str
) -> None:
    audit = Audit(page, "fr" if role in IN_FRENCH else "de")
    sign_in(page, served_web.url, served_web.user(role))
    home = page.url
    _choose_language(page, audit.language)
    try:
        forms = _crawl(audit, served_web.url, MORE_STARTS.get(role, ()))
        _get_forms(audit, forms, _fills(served_web))
        _refused_forms(audit, forms)
    finally:
        page.goto(home)
        _choose_language(page, "de")
    reached = {template_of(url) for url in audit.checked}
    assert REACHED[role] <= reached, f"the crawl missed {REACHED[role] - reached}"
    audit.assert_clean()


def _choose_language(page: Page, language: str) -> None:
    """Choose `language` with the header's button (nothing if it is the page's already)."""
    button = page.locator(f'form[action="/web/language"] button[value="{language}"]')
    if button.count():
        with page.expect_navigation():
            button.click()


def test_the_sign_in_and_the_error_pages_pass_axe(page: Page, served_web: Site) -> None:
    audit = Audit(page)
    sign_in_form(page, served_web.url)
    audit.check("sign-in", page.goto(f"{served_web.url}/web/sign-in"))
    sign_in(page, served_web.url, served_web.user("caseworker"), password="nicht-das-richtige")
    audit.check("sign-in, wrong password", None, None)
    sign_in(page, served_web.url, served_web.user("caseworker"))
    audit.check("404", page.goto(f"{served_web.url}/web/region/so-olten/cases/{uuid.uuid4()}"),
                404)
    audit.check("404 elsewhere", page.goto(f"{served_web.url}/web/nothing-here"), 404)
    with page.expect_navigation() as forbidden:  # the language form without its CSRF token
        page.evaluate("""() => {
            const form = document.querySelector('form[action="/web/language"]');
            form.querySelector('input[name=csrf_token]').remove(); form.submit(); }""")
    audit.check("403", forbidden.value, 403)
    with page.expect_navigation() as failed:  # a page that only answers GET, sent a POST
        page.evaluate("""() => { const form = document.createElement('form');
            form.method = 'post'; form.action = '/web/region/so-olten/work';
            document.body.append(form); form.submit(); }""")
    audit.check("error page", failed.value, 405)
    assert "Nicht verfügbar" in page.locator("h1").inner_text()
    audit.assert_clean()
