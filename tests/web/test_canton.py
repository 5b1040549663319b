"""The canton's pages (in-process): the quarterly and backlog figures with the reports' charts,
each chart an SVG image named by its title whose numbers are in a table, in the user's
language; aggregates only (nothing in the access log); no other role reaches them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from nervenbahn.backlog_report import BacklogReport, backlog_charts, backlog_of, unit_names
from nervenbahn.quarterly_report import (
    BACKLOG_COLUMNS,
    FIGURE_COLUMNS,
    REASON_LABELS,
    ReportInput,
    quarterly_charts,
)
from nervenbahn.web.areas.canton import REPORT_TEXTS
from projections.backlog import IsoWeek, ProcessingTarget
from projections.reporting import Quarter, canton_figures, quarterly_figures
from projections.storage import open_read_model
from tests.api.conftest import NOW, ReadModels
from tests.web.benefit_store import (
    BenefitWeb,
    benefit_web,  # noqa: F401 (a fixture)
    without_path,
)
from tests.web.client import USERS, WebUser, csrf_of, sign_in

CANTON = next(user for user in USERS if user.role == "canton")
OTHERS = [user for user in USERS if user.role != "canton"]
_SVG = re.compile(r'<svg [^>]*role="img" aria-label="([^"]+)"><title>([^<]+)</title>')


def _row(page: str, table: str, name: str) -> list[str]:
    """The cells of the row named `name` in the table of id `table`."""
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL):
        if f'<th scope="row">{name}</th>' in row:
            return re.findall(r'<td class="num">([^<]*)</td>', row)
    raise AssertionError(f"no row {name} in {table}")


def test_the_quarterly_page_shows_the_figures_and_the_reports_charts(
    web: TestClient, seeded: ReadModels
) -> None:
    sign_in(web, CANTON)
    page = web.get("/web/canton/quarterly?quarter=2026Q2")

    assert page.status_code == 200 and page.text.count("<h1>") == 1
    assert "Quartalszahlen 2026Q2" in page.text
    with open_read_model(seeded.reporting_db, "reporting_facts") as db:
        canton = canton_figures(db, Quarter(2026, 2))
    cells = _row(page.text, "figures", "Kanton")
    assert cells[0] == str(canton.new_cases) and cells[1] == str(canton.closed_cases)
    assert canton.new_cases > 0
    charts = _SVG.findall(page.text)
    assert [label for label, _title in charts] == [
        "Neue und abgeschlossene Fälle", "Abgeschlossene Fälle nach Grund",
        "Median der Dauer abgeschlossener Fälle (Tage)",
        "Median Tage von der Aufnahme bis zum Entscheid",
        "Unterstützte Fälle mit Zielvereinbarung (%)",
        "Begonnene und abgeschlossene Integrationsmassnahmen"]
    assert all(label == title for label, title in charts)
    assert '<th scope="col" class="num">Neue Fälle</th>' in page.text
    assert web.app.state.context.access_log.select() == []  # type: ignore[attr-defined]


def test_the_quarter_is_todays_unless_chosen_and_a_wrong_one_is_named_at_its_field(
    web: TestClient,
) -> None:
    sign_in(web, CANTON)
    today = web.get("/web/canton/quarterly")
    wrong = web.get("/web/canton/quarterly?quarter=2026Q5")

    assert "Quartalszahlen 2026Q4" in today.text and 'value="2026Q4"' in today.text
    assert wrong.status_code == 422
    assert 'id="e-quarter-1"' in wrong.text and "wie 2026Q1" in wrong.text
    assert 'value="2026Q5"' in wrong.text and "<svg" not in wrong.text


def test_the_pages_follow_the_users_language(web: TestClient) -> None:
    token = csrf_of(sign_in(web, CANTON))
    page = web.post("/web/language", data={
        "csrf_token": token, "language": "fr", "back": "/web/canton/quarterly?quarter=2026Q2"})
    assert 'lang="fr"' in page.text
    assert 'aria-label="Dossiers nouveaux et clos"' in page.text
    assert "nouveaux</text>" in page.text  # the chart's legend too


@pytest.mark.parametrize("user", OTHERS, ids=lambda user: user.username)
def test_no_other_role_reaches_the_cantons_pages(web: TestClient, user: WebUser) -> None:
    sign_in(web, user)
    missing = web.get("/web/canton/nothing-here")
    for url in ("/web/canton/quarterly", "/web/canton/backlog?week=2025-W46"):
        page = web.get(url)
        assert page.status_code == 404, url
        assert without_path(page.text) == without_path(missing.text)


def test_the_backlog_page_shows_the_weeks_figures_and_the_cantons_trend(
    benefit_web: BenefitWeb,  # noqa: F811
) -> None:
    shop = benefit_web
    sign_in(shop.client, CANTON)
    page = shop.client.get("/web/canton/backlog?week=2025-W46")

    assert page.status_code == 200 and page.text.count("<h1>") == 1
    assert "Woche 2025-W46" in page.text and "Zielwert: 3 Monate" in page.text
    (expected,) = backlog_of(shop.benefits, IsoWeek(2025, 46), ProcessingTarget(3), NOW,
                             weeks=1)
    columns = [column for _heading, column, _value in BACKLOG_COLUMNS]
    canton = _row(page.text, "regions", "Kanton")
    assert canton[columns.index("received")] == str(expected.canton.received) == "3"
    assert canton[columns.index("decided")] == str(expected.canton.decided) == "2"
    grenchen = _row(page.text, "offices", "AHV-Zweigstelle Grenchen (Soziale Dienste Oberer "
                                          "Leberberg)")
    assert grenchen[columns.index("pending_at_fund")] == "1"  # C
    trend = page.text.split('id="trend"', 1)[1].split("</table>", 1)[0]
    assert trend.count('<th scope="row">') == 26
    assert [label for label, _title in _SVG.findall(page.text)] == [
        "Eingegangen und entschieden pro Woche", "Pendent am Wochenende, nach Stand",
        "Länger pendent als der Zielwert (3 Monate), davon wartend auf Unterlagen",
        "Tage vom Eingang bis zum Entscheid (in der Woche entschieden)"]
    assert "Muster" not in page.text and "eva.frei" not in page.text
    assert shop.context.access_log.select() == []


def test_a_wrong_week_is_named_at_its_field_and_no_store_says_so(web: TestClient) -> None:
    sign_in(web, CANTON)
    wrong = web.get("/web/canton/backlog?week=2025-W60")
    without_store = web.get("/web/canton/backlog?week=2025-W46")

    assert wrong.status_code == 422 and 'id="e-week-1"' in wrong.text
    assert without_store.status_code == 503 and "nicht verbunden" in without_store.text


def test_the_catalogues_hold_every_text_of_the_reports_these_pages_show(
    benefit_web: BenefitWeb, seeded: ReadModels  # noqa: F811
) -> None:
    used: set[str] = set()

    def record(text: str) -> str:
        used.add(text)
        return text

    with open_read_model(seeded.reporting_db, "reporting_facts") as db:
        period = Quarter(2026, 2)
        report = ReportInput(period, quarterly_figures(db, period), canton_figures(db, period),
                             {}, None, datetime.now(UTC))
    quarterly_charts(report, record)
    trend = backlog_of(benefit_web.benefits, IsoWeek(2025, 46), ProcessingTarget(3), NOW)
    backlog_charts(BacklogReport(trend, unit_names(benefit_web.benefits), NOW, NOW), record)
    used |= {heading for heading, _column, _value in (*FIGURE_COLUMNS, *BACKLOG_COLUMNS)}
    used |= set(REASON_LABELS.values())
    assert used - set(REPORT_TEXTS) == set()
