"""Every page of every role speaks German or French, in Swiss formats: each role's pages
(followed by link from its home page, as benchmarks/web_pages.py collects them) are rendered
in-process in both languages and their text (tags stripped) is searched for

- English words: a word of the catalogues' English source texts (or a few common English
  words) that the page's language does not use itself ("Status", "Budget" and "Total" are
  German too);
- codes: CamelCase event names (`GoalAgreed`), snake_case codes (`basic_needs`) and Python's
  `None`, `True`, `False`;
- ISO dates (`2026-12-31`; a page writes `31.12.2026`) and amounts without their thousands
  separator (`1234.50`; a page writes `CHF 1'234.50`).

Proper names and ids pass (user names, AHV numbers, UUIDs, the short allow-list below).
Left out of the search: text the domain wrote in English (a command's refusal, "Field
required"), which the page marks `lang="en"` after a translated sentence introducing it;
what people wrote (a goal's title, a budget line's basis), marked `translate="no"`; and
identifiers shown as stored in `<code>` (ids, the access log's fields and endpoints).

The pages show the API tests' seeded cases and the branch offices' applications of
tests/web/benefit_store.py."""

from __future__ import annotations

import html
import re
from collections import deque
from functools import cache

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from httpx import Response

from nervenbahn.web.i18n import LOCALE_FOLDER
from tests.api.conftest import ReadModels
from tests.web.benefit_store import (
    BenefitWeb,
    benefit_web,  # noqa: F401 (a fixture)
)
from tests.web.client import USERS, WebUser, csrf_of, sign_in
from tests.web.conftest import WebOn

LANGUAGES = ("de", "fr")
ONE_PER_ROLE = tuple({user.role: user for user in reversed(USERS)}.values())
"""The first test user of each role."""
PER_TEMPLATE = 2
"""Pages collected per page template (`/web/region/{r}/cases/{id}` …), as the benchmark
does with 3."""
PAGE_LIMIT = 120
"""Pages per role at most."""

COMMON_ENGLISH = frozenset((
    "the", "a", "an", "of", "and", "or", "to", "is", "are", "was", "were", "be", "been",
    "for", "with", "without", "not", "no", "yes", "by", "on", "at", "from", "this", "that",
    "these", "those", "it", "its", "has", "have", "had", "must", "should", "may", "can",
    "cannot", "will", "would", "field", "required", "value", "invalid", "missing",
    "unknown", "error", "input", "please", "here", "there", "when", "which", "who", "what",
    "into", "than", "then", "only", "also", "after", "before", "until", "since", "none",
    "true", "false",
))
"""English words a page might show that no catalogue text need contain (a domain's message)."""

ALLOWED = frozenset((
    "chf", "ahv", "iv", "el", "ipv", "bfs", "rav", "akso", "so", "id", "ok", "pdf", "csv",
    "svg", "html", "url", "email", "e-mail",
))
"""Names, abbreviations and official terms both languages use as they are."""

_USER_NAMES = frozenset(part for user in USERS for part in user.username.split("."))
_LINK = re.compile(r'href="(/web/[^"#]*)"')
_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+)(?=/|$)")
_AS_WRITTEN = re.compile(
    r'<(?P<tag>[a-z0-9]+)\b[^>]*\b(?:lang="en"|translate="no")[^>]*>.*?</(?P=tag)>', re.DOTALL)
_CODE = re.compile(r"<code\b.*?</code>", re.DOTALL)
_HIDDEN = re.compile(r"<(script|style|title)\b.*?</\1>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_UUID = re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\b[0-9a-f]{8}\b")
_WORD = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ_'’]*(?:-[A-Za-zÀ-ÿ_]+)*")
_CAMEL = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)+$")
_PYTHON = frozenset({"None", "True", "False"})
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_UNGROUPED_AMOUNT = re.compile(r"(?<![\d.'’])\d{4,}\.\d{2}(?![\d.])")


def template_of(path: str) -> str:
    """A page's address with its ids and query replaced."""
    return _ID.sub("/{id}", path.split("?")[0])


def collect(client: TestClient) -> list[str]:
    """The pages a signed-in user reaches by links from their home page, breadth first, at
    most `PER_TEMPLATE` per template."""
    home = str(client.get("/web/").url.path)
    seen, queue, kept, per_template = {home}, deque([home]), [], {template_of(home): 1}
    while queue and len(kept) < PAGE_LIMIT:
        path = queue.popleft()
        page = client.get(path)
        assert page.status_code == 200, f"GET {path}: {page.status_code}"
        kept.append(path)
        for link in _LINK.findall(page.text):
            link = html.unescape(link)
            template = template_of(link)
            if link in seen or link.startswith("/web/static") or "sign-out" in link:
                continue
            if per_template.get(template, 0) >= PER_TEMPLATE:
                continue
            per_template[template] = per_template.get(template, 0) + 1
            seen.add(link)
            queue.append(link)
    return kept


def text_of(page: str, *, codes: bool = True) -> str:
    """A page's visible text: without the parts marked English, tags and ids (and without
    `<code>` elements unless `codes`)."""
    body = page.split("<body", 1)[-1]
    body = _AS_WRITTEN.sub(" ", _HIDDEN.sub(" ", body))
    if not codes:
        body = _CODE.sub(" ", body)
    return _UUID.sub(" ", html.unescape(_TAG.sub(" ", body)))


@cache
def _catalogue_words(language: str) -> tuple[frozenset[str], frozenset[str]]:
    """The words of the English source texts, and those of `language`'s translations."""
    english: set[str] = set()
    translated: set[str] = set()
    for po in sorted((LOCALE_FOLDER / language).glob("*.po")):
        with po.open("rb") as handle:
            for message in read_po(handle):
                if message.id:
                    english.update(_words(str(message.id)))
                    translated.update(_words(str(message.string)))
    return frozenset(english), frozenset(translated)


def _words(text: str) -> set[str]:
    text = re.sub(r"%\([a-z_]+\)[sd]", " ", text)
    return {word.lower() for word in _WORD.findall(text)}


def foreign_words(text: str, language: str, written: frozenset[str] = frozenset()) -> set[str]:
    """The English words and codes in a page's text in `language` (but those of `written`,
    what people wrote)."""
    english, translated = _catalogue_words(language)
    found = set()
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower in ALLOWED or lower in _USER_NAMES or lower in written:
            continue
        code = word in _PYTHON or _CAMEL.match(word) or "_" in word.strip("_")
        if code or ((lower in english or lower in COMMON_ENGLISH) and lower not in translated):
            found.add(word)
    return found


def format_problems(text: str) -> set[str]:
    """ISO dates and amounts without the Swiss thousands separator."""
    return set(_ISO_DATE.findall(text)) | set(_UNGROUPED_AMOUNT.findall(text))


def problems_of(client: TestClient, user: WebUser, case_id: str, written: frozenset[str]
                ) -> list[str]:
    """Each of the user's pages (and refused forms) that is not all in its language, in both
    languages."""
    assert sign_in(client, user).status_code == 200
    paths = collect(client) + [path.format(case=case_id) for path in SHOWN.get(user.role, ())]
    found = []
    for language in LANGUAGES:
        chosen = client.post("/web/language", data={
            "csrf_token": csrf_of(client.get("/web/")), "language": language})
        assert chosen.status_code == 200
        pages = [(path, client.get(path)) for path in paths]
        pages += [(f"POST {path}", page) for path, page in refused(client, user, paths, case_id)]
        for path, page in pages:
            assert page.status_code in (200, 422), f"{path}: {page.status_code}"
            assert f'<html lang="{language}">' in page.text, path
            words = foreign_words(text_of(page.text, codes=False), language, written)
            formats = format_problems(text_of(page.text))
            if words or formats:
                found.append(f"{language} {template_of(path)} ({path}): "
                             f"{', '.join(sorted(words | formats))}")
    return found


SHOWN = {
    "caseworker": ("/web/region/so-olten/cases/{case}",),
    "auditor": ("/web/audit/case?case_id={case}",
                "/web/audit/case?case_id={case}&as_of=01.03.2026",
                "/web/audit/case/diff?case_id={case}&month=2026-03&known_at=01.03.2026",
                "/web/audit/access?case_id={case}",
                "/web/audit/case?case_id={case}&as_of=31.13.2025",
                "/web/audit/access?person_id=nobody"),
}
"""Pages a link does not lead to (a GET form filled in), by role: a case with goals and a
budget, and forms refused."""


def refused(client: TestClient, user: WebUser, paths: list[str], case_id: str
            ) -> list[tuple[str, Response]]:
    """Empty forms posted (refused by the domain with its reasons in English)."""
    application = next((path for path in paths
                        if template_of(path) == "/web/fund/applications/{id}"), None)
    posts = {
        "caseworker": ["/web/region/so-olten/cases/new",
                       f"/web/region/so-olten/cases/{case_id}/do/agree_goal",
                       f"/web/region/so-olten/cases/{case_id}/do/change_budget"],
        "branch_office": ["/web/office/akso-olten/applications/new"],
        "fund_officer": ["/web/fund/delegations",
                         *([f"{application}/grant", f"{application}/refuse"]
                           if application else [])],
    }.get(user.role, [])
    token = csrf_of(client.get("/web/"))
    return [(path, client.post(path, data={"csrf_token": token})) for path in posts]


def test_the_check_finds_english_words_codes_and_formats() -> None:
    page = ('<html lang="de"><body><h1>Fall</h1><p>Goal agreed</p><td>GoalAgreed</td>'
            '<td>basic_needs 1006.00</td><td>2026-12-31</td><td>None</td>'
            '<p>Begründung: <span lang="en">Field required</span></p>'
            '<td>CHF 1’006.00, 31.12.2026, 756.1234.5678.97, 3f2e0371</td></body></html>')
    text = text_of(page)
    assert foreign_words(text, "de") == {"Goal", "agreed", "GoalAgreed", "basic_needs", "None"}
    assert format_problems(text) == {"1006.00", "2026-12-31"}


def a_case_with_goals(models: ReadModels) -> str:
    """An Olten case with goals agreed and a budget (the richest page of a case)."""
    service = models.service
    for case_id in service.case_ids():
        case = service.get_case(case_id)
        if case.social_region == "so-olten" and case.goals and case.budgets:
            return str(case_id)
    raise AssertionError("no Olten case with goals in the seeded store")


def written_words(models: ReadModels) -> frozenset[str]:
    """The words of the goals' titles of the seeded store: what people wrote, shown as they
    wrote it (a page marks it `translate="no"`, except in a form's choices, which carry no
    markup)."""
    service = models.service
    return frozenset(word for case_id in service.case_ids()
                     for goal in service.get_case(case_id).goals.values()
                     for word in _words(goal.title))


@pytest.fixture
def everything(web_on: WebOn, seeded: ReadModels, benefit_web: BenefitWeb,  # noqa: F811
               ) -> TestClient:
    """The app on the seeded cases and on the branch offices' applications."""
    context = benefit_web.context
    return web_on(seeded, service=seeded.service, benefits=context.benefits,
                  benefit_applications_db=context.benefit_applications_db,
                  refresh_benefit_applications=context.refresh_benefit_applications)


@pytest.mark.parametrize("user", ONE_PER_ROLE, ids=lambda user: user.username)
def test_every_page_is_in_the_users_language(
    everything: TestClient, seeded: ReadModels, user: WebUser
) -> None:
    problems = problems_of(everything, user, a_case_with_goals(seeded), written_words(seeded))
    assert not problems, "\n".join(problems)
