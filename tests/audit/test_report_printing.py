"""The audit report printed to PDF by Debian's Chromium (as an auditor's browser prints it):
a long case runs over several pages, every page names the report id and its page number
("Seite 2 von 5", "page 2 de 5"), and every page of a long table starts with its header."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from uuid import UUID

import pytest
from playwright.sync_api import Browser
from pypdf import PdfReader

from nervenbahn.audit.report import CaseReport, build_case_report, render_case_report
from tests.audit.test_report import INTACT, NOW
from tests.audit.test_report_languages_and_payments import open_supported_case
from tests.domain.bitemporal_case import ACTOR, START, _at, _command, end_of
from tests.domain.case_desk import build_desk

CHANGES = 60
"""Budget changes recorded after the story: enough rows for several landscape A4 pages."""


@pytest.fixture(scope="module")
def long_report() -> Iterator[CaseReport]:
    """A supported case whose rent changed every week for more than a year."""
    desk = build_desk(ACTOR, START)
    cid = str(open_supported_case(desk.service, desk.clock))
    day = date(2026, 1, 12)
    for n in range(CHANGES):
        _at(desk.clock, day)
        desk.service.execute(
            _command(
                "change_budget",
                case_id=cid,
                effective_date=day.isoformat(),
                reason="rent_change",
                housing=str(1000 + n),
                health_insurance="350",
                income="0",
            )
        )
        day += timedelta(days=7)
    yield build_case_report(
        desk.service, UUID(cid), end_of(day), now=NOW, verifications=[INTACT], orders=()
    )
    desk.service.close()


def _pages(browser: Browser, html: str) -> list[str]:
    """The text of each printed page."""
    page = browser.new_page()
    try:
        page.set_content(html, wait_until="load")
        pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    finally:
        page.close()
    # NFKC: the font's ligatures (ﬀ, ﬁ) back to letters, as in "…dff4" of a report id
    return [
        unicodedata.normalize("NFKC", p.extract_text()) for p in PdfReader(io.BytesIO(pdf)).pages
    ]


@pytest.mark.parametrize(
    ("language", "words"), [("de", "Seite {} von {}"), ("fr", "page {} de {}")]
)
def test_every_printed_page_names_the_report_and_its_number(
    browser: Browser,
    long_report: CaseReport,
    language: str,
    words: str,
) -> None:
    pages = _pages(browser, render_case_report(long_report, language))
    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        flat = " ".join(text.split())
        assert words.format(number, len(pages)) in flat, f"page {number}: {flat[:300]}"
        assert str(long_report.report_id) in flat, f"page {number} lacks the report id"


def test_a_long_table_repeats_its_header_on_every_page(
    browser: Browser,
    long_report: CaseReport,
) -> None:
    pages = _pages(browser, render_case_report(long_report, "de"))
    timeline = [
        n
        for n, text in enumerate(pages)
        if re.search(r"\b\d+ \d\d\.\d\d\.\d{4} ", " ".join(text.split()))
    ]
    assert len(timeline) > 1, "the timeline fits one page: make the case longer"
    for n in timeline[1:]:
        flat = " ".join(pages[n].split())
        assert "Erfasst (Schweizer Zeit)" in flat, f"page {n + 1} has timeline rows, no header"
