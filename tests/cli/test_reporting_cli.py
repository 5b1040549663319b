"""`nervenbahn report quarterly` writes the hand-worked figures as HTML and CSV;
`nervenbahn relay run --relay reporting | --all` fills the reporting topic."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from nervenbahn.config import load_settings
from nervenbahn.container import build_service, close_service
from nervenbahn.paths import projection_path
from nervenbahn.quarterly_report import ADVANCE_CSV_COLUMNS, CSV_COLUMNS
from projections.framework import rebuild
from projections.region import RegionProjection
from projections.reporting import ReportingProjection
from tests.cli.conftest import Cli
from tests.projections import reporting_fixture as fixture

pytestmark = pytest.mark.usefixtures("report_wired")
CASE_FIGURES_END = CSV_COLUMNS.index(ADVANCE_CSV_COLUMNS[0])


@pytest.fixture
def imported(cli: Cli, tmp_path: Path) -> None:
    """The hand-worked canton, imported through the CLI."""
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(fixture.lines()) + "\n")
    assert cli("--actor", "admin-so:administrator:so-canton", "import", str(history)).code == 0


def build_read_model(*, region: bool = False) -> Path:
    """`projections rebuild reporting` (and `region`), as the command does it with the
    settings' key."""
    settings = load_settings()
    service = build_service(settings)
    path = projection_path(settings.store, "reporting")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        rebuild(ReportingProjection.from_settings(settings), service, path)
        if region:
            rebuild(RegionProjection(), service, projection_path(settings.store, "region"))
    finally:
        close_service(service)
    return path


def test_quarterly_report_writes_the_hand_worked_figures_as_csv(
    cli: Cli, imported: None, tmp_path: Path
) -> None:
    build_read_model()
    out = tmp_path / "out"

    result = cli("report", "quarterly", "2026Q1", "--out", str(out), "--min-count", "0")

    assert result.code == 0, result.err
    assert "report-2026Q1.html" in result.out
    with (out / "report-2026Q1.csv").open(newline="") as handle:
        rows = {row["region"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 14 and list(rows)[-1] == "canton"
    assert list(rows["so-olten"]) == list(CSV_COLUMNS)
    assert (rows["so-olten"]["region_name"], rows["so-olten"]["quarter"]) == ("Olten", "2026Q1")
    # new, closed, closed by reason (employment, other insurance, moved away, death, other),
    # median duration, decisions, median days to decision, supported, with goal, share,
    # measures started and completed
    assert _figures(rows["so-olten"]) == [
        "2", "2", "1", "0", "0", "0", "1", "74.5", "2", "14.5", "2", "1", "0.500", "2", "1"]
    assert _figures(rows["so-solothurn"]) == [
        "2", "1", "0", "1", "0", "0", "0", "232", "2", "29.5", "3", "2", "0.667", "1", "0"]
    assert _figures(rows["canton"]) == [
        "4", "3", "1", "1", "0", "0", "1", "126", "4", "20.5", "5", "3", "0.600", "3", "1"]
    assert _figures(rows["so-dorneck"]) == [
        "0", "0", "0", "0", "0", "0", "0", "", "0", "", "0", "0", "", "0", "0"]


def test_quarterly_report_html_is_self_contained_with_tables_and_charts(
    cli: Cli, imported: None, tmp_path: Path
) -> None:
    build_read_model()

    exact = cli("report", "quarterly", "2026Q1", "--out", str(tmp_path), "--min-count", "0")
    assert exact.code == 0

    page = (tmp_path / "report-2026Q1.html").read_text()
    olten = re.search(r"<tr><td>Olten</td>(.*?)</tr>", page)
    assert olten is not None
    assert re.findall(r"<td>([^<]*)</td>", olten.group(1)) == [
        "2", "2", "74.5", "2", "14.5", "2", "1", "50 %", "2", "1"]
    canton = re.search(r'<tr class="total"><td>Canton</td>(.*?)</tr>', page)
    assert canton is not None and "<td>126</td>" in canton.group(1)
    # figures, closures, availability, and the benefit applications' backlog (none here)
    assert page.count("<svg") == 6 and page.count("<table") == 4
    assert "<h2>Benefit applications: backlog in week 2026-W13</h2>" in page
    availability = page.split("<h2>Availability</h2>", 1)[1].split("</table>", 1)[0]
    months = re.findall(r"<tr><td>(\w+ 2026)</td><td>(\d+)</td>.*?<td>([\d.]+ %)</td>",
                        availability)
    assert months == [("January 2026", "44640", "100.00 %"),
                      ("February 2026", "40320", "100.00 %"), ("March 2026", "44580", "100.00 %")]
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "@import" not in page and "url(" not in page
    assert fixture.APPLICANT_NAME[1] not in page
    assert not any(str(case_id) in page for case_id in fixture.CASES.values())


def test_quarterly_report_withholds_small_counts_by_default(
    cli: Cli, imported: None, tmp_path: Path
) -> None:
    build_read_model()

    assert cli("report", "quarterly", "2026Q1", "--out", str(tmp_path)).code == 0

    x, zero = "x", "0"
    # The hand-worked figures above, every count from 1 to 4 withheld, and every median and
    # share over fewer than 5 cases; zeros stay. The canton's 5 supported cases are shown,
    # its 3 with a goal (2 without) and so its share are not.
    assert _csv_figures(tmp_path / "report-2026Q1.csv", "so-olten", "so-solothurn", "canton") == [
        [x, x, x, zero, zero, zero, x, x, x, x, x, x, x, x, x],
        [x, x, zero, x, zero, zero, zero, x, x, x, x, x, x, x, zero],
        [x, x, x, x, zero, zero, x, x, x, x, "5", x, x, x, x],
    ]
    page = (tmp_path / "report-2026Q1.html").read_text()
    olten = re.search(r"<tr><td>Olten</td>(.*?)</tr>", page)
    assert olten is not None
    assert re.findall(r"<td>([^<]*)</td>", olten.group(1)) == ["x"] * 10
    assert "fewer than 5 cases" in page
    words = re.sub(r"<[^>]+>", " ", page).split()  # what the page says, charts included
    assert "74.5" not in words and "14.5" not in words  # Olten's medians


def test_quarterly_report_shows_the_advances_from_the_region_read_model(
    cli: Cli, imported: None, tmp_path: Path
) -> None:
    build_read_model()
    without = cli("report", "quarterly", "2026Q1", "--out", str(tmp_path / "without"))
    build_read_model(region=True)

    result = cli("report", "quarterly", "2026Q1", "--out", str(tmp_path), "--min-count", "0")

    assert without.code == 0 and "region read model is not built" in without.out
    assert _advances(_csv_rows(tmp_path / "without" / "report-2026Q1.csv")["canton"]) == [
        ""] * 8
    assert result.code == 0, result.err
    # The hand-worked canton advanced nothing: every figure zero, the median none.
    assert _advances(_csv_rows(tmp_path / "report-2026Q1.csv")["canton"]) == [
        "0", "0", "", "0", "0.00", "0.00", "0", "0.00"]
    page = (tmp_path / "report-2026Q1.html").read_text()
    assert "<h2>Advances in view of EL and their reimbursement</h2>" in page
    assert page.count('<tr class="total" data-region="canton">') == 1


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["region"]: row for row in csv.DictReader(handle)}


def test_quarterly_report_as_json_names_the_files_and_the_canton_figures(
    cli: Cli, imported: None, tmp_path: Path
) -> None:
    build_read_model()

    answer = cli("--json", "report", "quarterly", "2026q1", "--out", str(tmp_path)).json()

    assert isinstance(answer, dict)
    assert answer["html"] == str(tmp_path / "report-2026Q1.html")
    assert answer["canton"]["median_days_to_decision"] == 20.5


def test_quarterly_report_without_the_read_model_names_the_fix(cli: Cli, tmp_path: Path) -> None:
    result = cli("report", "quarterly", "2026Q1", "--out", str(tmp_path))

    assert result.code == 1
    assert "nervenbahn projections rebuild reporting" in result.err
    assert not list(tmp_path.glob("report-*"))


@pytest.mark.parametrize("quarter", ["2026Q5", "Q1"])
def test_quarterly_report_refuses_what_is_not_a_quarter(cli: Cli, quarter: str) -> None:
    result = cli("report", "quarterly", quarter)

    assert result.code == 1
    assert "write it like 2026Q1" in result.err


def test_relay_run_all_fills_both_topics_with_positions_of_their_own(
    cli: Cli, imported: None, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_KAFKA", ",".join(kafka_settings.bootstrap_servers))
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("NERVENBAHN_KAFKA_PROFILE", "embedded")
    prefix = kafka_settings.topic_prefix
    topics = [f"{prefix}.casework.case-events.v1", f"{prefix}.reporting.case-facts.v1"]

    reporting = cli("--json", "relay", "run", "--relay", "reporting", "--until-caught-up")
    before = topic_message_counts(kafka_settings, topics)
    both = cli("--json", "relay", "run", "--all", "--until-caught-up")
    status = cli("--json", "relay", "status", "--relay", "reporting")
    every = cli("--json", "relay", "status", "--all")
    unknown = cli("relay", "run", "--relay", "statistics")

    assert reporting.code == 0, reporting.err
    assert reporting.json() == {"position": fixture.EVENTS, "head": fixture.EVENTS, "lag": 0,
                                "published": fixture.EVENTS}
    assert before == {topics[0]: 0, topics[1]: fixture.EVENTS}
    assert both.code == 0, both.err
    answer = both.json()
    assert isinstance(answer, dict)
    assert {name: figures["published"] for name, figures in answer.items()} == {
        "case-events": fixture.EVENTS, "reporting": fixture.EVENTS, "benefits": 0,
        "claims": 0}  # the claims relay read every case event, none was a claim
    assert topic_message_counts(kafka_settings, topics) == dict.fromkeys(topics, fixture.EVENTS)
    assert status.json() == reporting.json()
    assert every.code == 0, every.err
    assert every.json() == {  # every relay serve runs; no payment run or application recorded
        "case-events": reporting.json(), "reporting": reporting.json(),
        "benefits": {"position": 0, "head": 0, "lag": 0, "published": 0},
        "claims": {"position": fixture.EVENTS, "head": fixture.EVENTS, "lag": 0,
                   "published": 0},
        "payments": {"position": 0, "head": 0, "lag": 0, "published": 0}}
    assert unknown.code == 2 and "use case-events, reporting, benefits or claims" in unknown.err


def test_relay_status_without_a_broker_names_serves_broker_and_the_embedded_profile(
    cli: Cli, imported: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NERVENBAHN_KAFKA", raising=False)

    result = cli("relay", "status", "--all")

    assert result.code == 3
    text = " ".join(result.err.split())
    assert "NERVENBAHN_KAFKA=<that address> with NERVENBAHN_KAFKA_PROFILE=embedded" in text
    assert "`nervenbahn serve`" in text and "`nervenbahn broker`" in text


def _csv_figures(path: Path, *regions: str) -> list[list[str]]:
    """The figures of `regions` in a report's CSV file, in that order."""
    with path.open(newline="") as handle:
        rows = {row["region"]: row for row in csv.DictReader(handle)}
    return [_figures(rows[region]) for region in regions]


def _figures(row: dict[str, str]) -> list[str]:
    """A CSV row's case figures after region, name and quarter (not the advances')."""
    return list(row.values())[3:CASE_FIGURES_END]


def _advances(row: dict[str, str]) -> list[str]:
    """A CSV row's figures of advances in view of EL."""
    return [row[column] for column in ADVANCE_CSV_COLUMNS]
