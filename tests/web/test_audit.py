"""The auditor's pages in-process: a case as known at a past date beside now, the difference of
a month between two knowledge times, the access log, the hash chains (also after tampering),
and the 404 page for everyone else."""

from __future__ import annotations

import base64
import re
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import urlencode
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from domain.errors import InvalidCommandError
from nervenbahn.api import build_api_context
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.status import verify_installation
from nervenbahn.audit.verify import AuditReport
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from nervenbahn.web.areas.audit import parse_time
from nervenbahn.web.i18n import chf, translations
from nervenbahn.web.labels import EVENTS, LINES
from tests.api.conftest import NOW, Keys, ReadModels, build_read_models, context_of
from tests.bus.pipeline import open_supported_case, store_settings
from tests.web.client import USERS, WebUser, csrf_of, sign_in
from tests.web.conftest import WebOn

AUDITOR = next(u for u in USERS if u.role == "auditor")
AUDIT_PAGES = ("/web/audit/case", "/web/audit/case/diff", "/web/audit/chains",
               "/web/audit/access")

GERMAN = translations("de").gettext
"""A label as the German pages show it."""


@pytest.fixture
def audit_web(web_on: WebOn, seeded: ReadModels) -> TestClient:
    """The app on the seeded store with its case service (the auditor's queries need it)."""
    return web_on(seeded, service=seeded.service)


@pytest.fixture
def auditor(audit_web: TestClient) -> TestClient:
    """Signed in as the auditor."""
    assert sign_in(audit_web, AUDITOR).status_code == 200
    return audit_web


def a_retroactive_change(service: CaseService) -> tuple[UUID, date, date]:
    """From the store: a case, a month and a day at whose end the month was owed another
    amount than is known now (a budget change recorded later, effective earlier)."""
    for case_id in service.case_ids():
        for entry in service.history(case_id):
            if entry.event != "BudgetChanged":
                continue
            day = entry.recorded_at.astimezone(SWISS_TIME).date() - timedelta(days=1)
            for answer in service.budget_by_month(case_id, end_of(day)):
                if service.budget_as_known_at(case_id, answer.month, NOW).amount != answer.amount:
                    return case_id, answer.month, day
    raise AssertionError("the seeded store has no retroactive budget change")


def end_of(day: date) -> datetime:
    """A Swiss date typed into the form means the end of that day."""
    return datetime.combine(day, time.max, tzinfo=SWISS_TIME)


def without_path(page: str) -> str:
    """A page without its own address (the language switch comes back to it)."""
    return re.sub(r'name="back" value="[^"]*"', 'name="back" value=""', page)


def first_cells(page: str, table: str) -> list[str]:
    """The first cell of each body row of table `table`."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no table {table}"
    return [unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<tr>\s*<t[hd][^>]*>(.*?)</t[hd]>", body[1], re.S)]


def row_of(page: str, table: str, first_cell: str) -> str:
    """The text of the row of table `table` whose first cell is `first_cell`."""
    body = re.search(rf'<table id="{table}">(.*?)</table>', page, re.S)
    assert body, f"no table {table}"
    for row in re.findall(r"<tr>(.*?)</tr>", body[1], re.S):
        cells = [unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        if cells and cells[0] == first_cell:
            return " | ".join(cells)
    raise AssertionError(f"no row {first_cell!r} in table {table}")


def test_a_case_as_known_at_a_past_date_shows_then_and_now_as_the_store_says(
    auditor: TestClient, seeded: ReadModels
) -> None:
    service = seeded.service
    case_id, month, day = a_retroactive_change(service)
    then = service.budget_as_known_at(case_id, month, end_of(day))
    now = service.budget_as_known_at(case_id, month, NOW)
    page = auditor.get("/web/audit/case", params={"case_id": str(case_id),
                                                  "as_of": day.strftime("%d.%m.%Y")})
    assert page.status_code == 200, page.text
    row = row_of(page.text, "months", month.strftime("%m.%Y"))
    assert f"| {chf(then.amount)} | {chf(now.amount)} |" in row
    state = service.case_as_of(case_id, end_of(day))
    assert f"{state.version} (zuletzt erfasst" in unescape(page.text)
    recorded = [e.version for e in service.history(case_id) if e.recorded_at <= end_of(day)]
    assert first_cells(page.text, "timeline") == [str(v) for v in recorded]
    assert len(recorded) < len(service.history(case_id))  # later events are not shown


def test_the_difference_names_the_changed_lines_and_the_events_that_changed_them(
    auditor: TestClient, seeded: ReadModels
) -> None:
    service = seeded.service
    case_id, month, day = a_retroactive_change(service)
    case = auditor.get("/web/audit/case", params={"case_id": str(case_id),
                                                  "as_of": day.strftime("%d.%m.%Y")})
    link = re.search(r'href="(/web/audit/case/diff\?[^"]+)"', case.text)
    assert link, "a changed month links to its difference"
    page = auditor.get(unescape(link[1]))
    assert page.status_code == 200, page.text
    expected = service.diff_as_known(case_id, month, end_of(day), NOW)
    assert expected.lines and expected.caused_by
    for line in expected.lines:
        assert row_of(page.text, "lines", GERMAN(LINES[line.code])).endswith(
            f"| {chf(line.before)} | {chf(line.after)} | {chf(line.difference)}")
    for event in expected.caused_by:
        assert row_of(page.text, "caused-by", str(event.version)).split(" | ")[3] == GERMAN(
            EVENTS[event.event])


def test_each_case_read_is_logged_under_every_household_member_before_it_is_shown(
    auditor: TestClient, seeded: ReadModels
) -> None:
    case_id, month, day = a_retroactive_change(seeded.service)
    log = context_of(auditor).access_log
    before = len(log.select(limit=1000))
    auditor.get("/web/audit/case", params={"case_id": str(case_id), "as_of": ""})
    auditor.get("/web/audit/case/diff", params={
        "case_id": str(case_id), "month": month.strftime("%Y-%m"),
        "known_at": day.isoformat()})
    entries = [item.entry for item in log.select(limit=1000)[before:]]
    case = seeded.service.case_as_of(case_id, NOW)
    members = {str(p.person_id) for p in [case.applicant, *case.other_members]}
    reads = {(e.endpoint, e.fields): {x.person_id for x in entries if x.endpoint == e.endpoint}
             for e in entries}
    assert reads == {
        ("GET /web/audit/case", ("case_state", "timeline", "budget_month")): members,
        ("GET /web/audit/case/diff", ("budget_month_diff",)): members,
    }
    assert {(e.consumer, e.scope, e.case_id) for e in entries} == {
        ("web:auditor", "auditor:finanzkontrolle", str(case_id))}


def test_the_access_log_page_shows_a_read_just_made_and_the_webs_own_reads(
    auditor: TestClient, seeded: ReadModels, keys: Keys
) -> None:
    office = keys.of("branch_office:akso-olten")
    listed = auditor.get("/v1/branch-offices/akso-olten/cases", headers=office).json()
    case_id = listed["cases"][0]["case_id"]
    read = auditor.get(f"/v1/branch-offices/akso-olten/cases/{case_id}", headers=office)
    assert read.status_code == 200
    auditor.get("/web/audit/case", params={"case_id": case_id})
    person = str(seeded.service.case_as_of(UUID(case_id), NOW).applicant.person_id)
    page = auditor.get("/web/audit/access", params={"person_id": person})
    assert page.status_code == 200
    rows = [row_of(page.text, "entries", str(item.id))
            for item in context_of(auditor).access_log.select(person_id=person)]
    moment = NOW.astimezone(SWISS_TIME).strftime("%d.%m.%Y %H:%M")
    assert any(r.startswith(f"1 | {moment} | branch_office-akso-olten | branch_office:akso-olten "
                            f"| {case_id} | ") and r.endswith(
                                "GET /v1/branch-offices/{office_id}/cases/{case_id}")
               for r in rows), rows
    assert rows[-1].endswith(
        "| web:auditor | auditor:finanzkontrolle | " + case_id
        + " | case_state, timeline, budget_month | GET /web/audit/case")


def test_a_malformed_time_or_id_is_refused_next_to_its_field_and_nothing_is_logged(
    auditor: TestClient, seeded: ReadModels
) -> None:
    case_id = next(seeded.service.case_ids())
    log = context_of(auditor).access_log
    before = len(log.select(limit=1000))
    page = auditor.get("/web/audit/case", params={"case_id": str(case_id), "as_of": "31.13.2025"})
    assert page.status_code == 422
    error = re.search(r'<p class="error" id="e-as_of-1">([^<]*)</p>', page.text)
    assert error and "31.13.2025" in unescape(error[1])
    page = auditor.get("/web/audit/access", params={"person_id": "nobody"})
    assert page.status_code == 422
    assert 'id="e-person_id-1"' in page.text and "is not a UUID" in unescape(page.text)
    page = auditor.get("/web/audit/case/diff", params={
        "case_id": str(case_id), "month": "2025-03", "known_at": "01.06.2025",
        "compared_to": "01.05.2025"})
    assert page.status_code == 422
    assert 'id="e-compared_to-1"' in page.text and "lies before known_at" in page.text
    missing = auditor.get("/web/audit/case", params={"case_id": str(UUID(int=7))})
    assert missing.status_code == 404 and 'id="e-case_id-1"' in missing.text
    assert len(log.select(limit=1000)) == before


@pytest.mark.parametrize("user", [u for u in USERS if u.role != "auditor"],
                         ids=lambda u: u.username)
def test_everyone_but_auditors_gets_the_404_page_for_every_audit_address(
    audit_web: TestClient, seeded: ReadModels, user: WebUser
) -> None:
    sign_in(audit_web, user)
    missing = audit_web.get("/web/no-such-page")
    assert missing.status_code == 404
    case_id = str(next(seeded.service.case_ids()))
    for url in (*AUDIT_PAGES, f"/web/audit/case?{urlencode({'case_id': case_id})}",
                f"/web/audit/access?{urlencode({'case_id': case_id})}"):
        page = audit_web.get(url)
        assert page.status_code == 404, url
        assert without_path(page.text) == without_path(missing.text), url


def test_the_pages_ask_for_sign_in_first(audit_web: TestClient) -> None:
    for url in AUDIT_PAGES:
        page = audit_web.get(url)
        assert page.url.path == "/web/sign-in" and f"next={url}" in str(page.url).replace(
            "%2F", "/")


# --- the hash chains, on a store of the test's own ------------------------------------------


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[tuple[Settings, ReadModels]]:
    """A SQLite store with three supported cases and a signed checkpoint, its read models."""
    folder = tmp_path / "own"
    folder.mkdir()
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    service = build_service(settings)
    for n in range(3):
        open_supported_case(service, n)
    db = open_audit_database(settings.store)
    try:
        assert write_checkpoint(db, SigningKey.from_seed(
            settings.signing_key.get_secret_value())) is not None
    finally:
        db.close()
    yield settings, build_read_models(service, folder)
    close_service(service)


def test_the_chains_page_shows_intact_chains_then_a_tampered_event_as_broken(
    web_on: WebOn, own_store: tuple[Settings, ReadModels]
) -> None:
    settings, models = own_store

    def verify() -> AuditReport:  # the app's own access log, as `serve` wires it
        log = context_of(client).access_log
        assert isinstance(log, SQLiteAccessLog)
        return verify_installation(settings, log.path)

    client = web_on(models, service=models.service, verify_chains=verify)
    sign_in(client, AUDITOR)
    client.get("/web/audit/case", params={"case_id": str(next(models.service.case_ids()))})
    page = client.get("/web/audit/chains")
    assert page.status_code == 200
    row = row_of(page.text, "chains", "events:stored_events")
    assert row.startswith("events:stored_events | 9 | 9: ") and row.endswith("| intakt")
    assert "| Nr. 1 vom " in row and ", Position 9 |" in row  # the checkpoint signed
    assert row_of(page.text, "chains", "Zugriffsprotokoll (access-log)").endswith("| intakt")
    assert "Geprüft:" in page.text

    assert settings.store.sqlite_path is not None
    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute("UPDATE stored_events SET topic = topic || 'x' WHERE rowid = 4")
    shown = client.get("/web/audit/chains")  # the minute-old verification, saying when it ran
    assert "intakt" in row_of(shown.text, "chains", "events:stored_events")
    assert "Geprüft am" in shown.text
    page = client.post("/web/audit/chains", data={"csrf_token": csrf_of(shown)})
    assert page.status_code == 200
    row = row_of(page.text, "chains", "events:stored_events")
    assert "GEBROCHEN" in row and "Position 4:" in row
    assert "Nicht geprüft:" in page.text


def test_without_a_verifier_the_chains_page_says_so(auditor: TestClient) -> None:
    page = auditor.get("/web/audit/chains")
    assert page.status_code == 200
    assert 'id="unavailable"' in page.text and 'id="chains"' not in page.text


def test_the_installations_context_verifies_its_own_store_and_access_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NERVENBAHN_ACCESS_LOG", raising=False)
    settings = store_settings(tmp_path, base64.b64encode(secrets.token_bytes(32)).decode())
    service = build_service(settings)
    open_supported_case(service)
    context = build_api_context(settings, service)
    try:
        assert context.verify_chains is not None
        report = context.verify_chains()
    finally:
        context.close()
        close_service(service)
    assert report.ok
    assert [(v.chain, v.records) for v in report.chains] == [("events:stored_events", 3)]
    assert report.access_log is not None and report.access_log.chain == "access-log"


@pytest.mark.parametrize(("typed", "meant"), [
    ("", NOW),
    ("31.12.2025", datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=SWISS_TIME)),
    ("1.3.2025 14:05", datetime(2025, 3, 1, 14, 5, tzinfo=SWISS_TIME)),
    ("01.03.2025 14:05:09", datetime(2025, 3, 1, 14, 5, 9, tzinfo=SWISS_TIME)),
    ("2025-03-01T14:05", datetime(2025, 3, 1, 14, 5, tzinfo=SWISS_TIME)),
    ("2025-03-01T13:05:00+00:00", datetime(2025, 3, 1, 14, 5, tzinfo=SWISS_TIME)),
])
def test_a_typed_time_is_swiss_unless_it_says_otherwise(typed: str, meant: datetime) -> None:
    assert parse_time("as_of", typed, NOW) == meant


@pytest.mark.parametrize("typed", ["31.02.2025", "yesterday", "31.12.1899", "2025-03-01T25:00"])
def test_a_time_that_is_none_names_its_field_and_what_was_typed(typed: str) -> None:
    with pytest.raises(InvalidCommandError) as refused:
        parse_time("known_at", typed, NOW)
    [(field, reason)] = refused.value.problems
    assert field == "known_at"
    assert typed in reason or "1899" in reason  # the bounds name the year
