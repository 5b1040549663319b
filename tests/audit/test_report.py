"""The HTML audit report, parsed: its timeline rows, the budget by month as known then (with
later changes marked), the verification result, escaping and the absence of personal data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from uuid import UUID

import pytest

from domain.application.cases import CaseService
from nervenbahn.audit.hashing import ChainBreak, ChainHead, ChainVerification
from nervenbahn.audit.report import build_case_report, render_case_report
from tests.domain.bitemporal_case import (
    ACTOR,
    EXPECTED,
    KNOWN_AT,
    START,
    record_retroactive_case,
)
from tests.domain.case_desk import build_desk

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def _chf(text: str) -> Decimal:
    """CHF 2'611.00 (or CHF +200.00) as a number."""
    return Decimal(text.removeprefix("CHF ").replace("'", ""))


class Tables(HTMLParser):
    """The text of every cell of every table with an id, by table id; and every tag seen."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def story() -> Iterator[tuple[CaseService, UUID]]:
    desk = build_desk(ACTOR, START)
    case_id = record_retroactive_case(desk.service, desk.clock)
    yield desk.service, case_id
    desk.service.close()


INTACT = ChainVerification(
    chain="events:stored_events", records=6, head=ChainHead(6, bytes(range(32))),
    first_break=None, checkpoints_checked=2,
    checkpoint={"sequence": 2, "created_at": "2026-06-30T22:00:00+00:00", "position": 6},
)


def render(story: tuple[CaseService, UUID], *verifications: ChainVerification,
           note: str | None = None) -> Tables:
    service, case_id = story
    report = build_case_report(service, case_id, KNOWN_AT["31 May"], now=NOW,
                               verifications=verifications, verification_note=note)
    return Tables(render_case_report(report))


def test_timeline_has_every_event_with_times_actor_source_and_whether_it_was_known(
    story: tuple[CaseService, UUID],
) -> None:
    rows = render(story, INTACT).tables["timeline"][1:]
    live, later = "laufend erfasst", "nein (später erfasst)"
    assert [(r[0], r[1], r[2], r[5], r[6], r[7]) for r in rows] == [
        ("1", "05.01.2026 09:00:00", "05.01.2026", "Fall eröffnet", live, "ja"),
        ("2", "05.01.2026 09:00:00", "05.01.2026", "Erstabklärung abgeschlossen", live, "ja"),
        ("3", "06.01.2026 09:00:00", "01.01.2026", "Unterstützung gewährt", live, "ja"),
        ("4", "10.05.2026 09:00:00", "11.03.2026", "Budget geändert", live, "ja"),
        ("5", "20.06.2026 09:00:00", "01.02.2026", "Budget geändert", live, later),
        ("6", "25.06.2026 09:00:00", "20.05.2026", "Fall abgeschlossen", live, later),
    ]
    assert {r[3] for r in rows} == {"anna.keller / Sozialarbeiter/in / so-solothurn"}
    assert {r[4] for r in rows} == {"unbekannt"}  # recorded by a service that established no one
    assert rows[4][8].endswith("Grund: Miete geändert; Haushaltsgrösse: 1; "
                               "Geänderte Positionen: Wohnkosten")


def test_budget_by_month_is_as_known_then_with_later_changes_marked(
    story: tuple[CaseService, UUID],
) -> None:
    rows = render(story, INTACT).tables["months"][1:]
    then, now = EXPECTED["31 May"][:5], EXPECTED["30 June"][:5]  # January to May (T's month)
    assert [r[0] for r in rows] == ["01.2026", "02.2026", "03.2026", "04.2026", "05.2026"]
    assert [_chf(r[2]) for r in rows] == then
    marks = [r[5] for r in rows]
    for mark, known_then, known_now in zip(marks, then, now, strict=True):
        if known_now == known_then:
            assert mark == ""
        else:
            difference = known_now - known_then
            assert mark.startswith("später geändert: jetzt CHF ")
            assert _chf(mark.split("jetzt ")[1].split(" (")[0]) == known_now
            assert _chf(mark.split("(")[1].rstrip(")")) == difference
    assert marks[1] == "später geändert: jetzt CHF 2'411.00 (CHF -200.00)"  # 2411 − 2611


def test_state_is_the_state_then(story: tuple[CaseService, UUID]) -> None:
    state = dict((row[0], row[1]) for row in render(story, INTACT).tables["state"])
    assert state["Phase"] == "Unterstützt"
    assert state["Abschluss"] == "–"  # the closure was recorded on 25 June
    assert state["Geltendes Budget"].startswith("CHF 2'011.00 ab 11.03.2026 (Einkommen geändert;")


def test_verification_names_the_checkpoint_or_the_first_break(
    story: tuple[CaseService, UUID],
) -> None:
    broken = ChainVerification(
        chain="events:stored_events", records=6, head=ChainHead(6, bytes(32)),
        first_break=ChainBreak(4, "stored bytes differ from the chained hash"),
    )
    rows = render(story, INTACT, broken).tables["verification"][1:]
    # the first chain has no break, but the verification failed: it is not called intact
    assert rows[0][1] == ("kein Bruch in dieser Kette (aber die Prüfung ist fehlgeschlagen: "
                          "siehe oben)")
    assert render(story, INTACT).tables["verification"][1][1] == "intakt"
    assert rows[0][3] == f"6: {bytes(range(32)).hex()}"
    assert rows[0][4] == "Laufnummer 2, erstellt 01.07.2026 00:00:00, Position 6 (2 geprüft)"
    assert rows[1][1] == "unterbrochen an Position 4: stored bytes differ from the chained hash"
    assert rows[1][4] == "keine (0 geprüft)"


def test_without_verification_the_report_says_so(story: tuple[CaseService, UUID]) -> None:
    parsed = render(story, note="not verified: no signing key")
    assert "verification" not in parsed.tables
    service, case_id = story
    html = render_case_report(build_case_report(
        service, case_id, KNOWN_AT["31 May"], now=NOW, verification_note="not verified: <x>"
    ))
    assert "Nicht geprüft." in html and "not verified: &lt;x&gt;" in html


def test_everything_is_escaped_and_self_contained(story: tuple[CaseService, UUID]) -> None:
    evil = ChainVerification(
        chain="<script>alert(1)</script>", records=0, head=ChainHead(0, bytes(32)),
        first_break=ChainBreak(1, "<img src=x onerror=alert(2)>"),
    )
    parsed = render(story, evil)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert parsed.tables["verification"][1][0] == "<script>alert(1)</script>"  # shown as text
    service, case_id = story
    html = render_case_report(build_case_report(service, case_id, KNOWN_AT["31 May"], now=NOW))
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_the_report_holds_no_personal_data(story: tuple[CaseService, UUID]) -> None:
    service, case_id = story
    applicant = service.get_case(case_id).applicant.to_plain()
    html = render_case_report(build_case_report(service, case_id, KNOWN_AT["30 June"], now=NOW))
    for field in ("given_name", "family_name", "ahvn13", "street", "birth_date"):
        assert applicant[field] not in html, field
