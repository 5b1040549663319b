"""The backlog figures of a small hand-computed fixture (issue 14, point 6): recorded through
`BenefitService` commands on a real SQLite store, computed by `projections.backlog`, and the
same numbers in `nervenbahn report backlog`'s CSV and HTML and in the canton's API.

The fixture (target 3 months; report week 2026-W10 = Monday 2 to Sunday 8 March 2026).
Each line: application, office (municipality), what happened on which day.

  A  Grenchen  received 2025-11-03, checked: rent_contract missing (requested); nothing more
  K  Olten     received 2025-11-04, complete, forwarded the same day; undecided
  B  Grenchen  received 2025-11-10, complete, forwarded; granted 2026-03-04
  E  Olten     received 2025-11-17, checked: rent_contract missing; forwarded with override
  F  Olten     received 2025-11-24, complete, forwarded; withdrawn 2026-03-03
  C  Grenchen  received 2025-12-01, checked: rent_contract + tax_assessment missing; both
               received 2026-01-15, forwarded 2026-01-15; refused 2026-03-06
  H  Grenchen  received 2025-12-08, checked: rent_contract missing; received 2026-03-09
  D  Olten     received 2026-01-05, complete, forwarded; granted 2026-03-02
  G  Grenchen  received 2026-03-05; nothing more
  I  Grenchen  received 2026-03-02, but recorded only on 2026-03-10 (late entry)

Deadlines (received + 3 months): A 02-03, K 02-04, B 02-10, E 02-17, F 02-24, C 03-01,
H 03-08, D 04-05, G 06-05, I 06-02 (all 2026).

Week 2026-W10, canton, as known now:
  received   G (03-05), I (03-02)                           = 2
  decided    D 03-02 (2026-01-05 → 03-02 = 26+28+2 = 56), B 03-04
             (2025-11-10 → 2026-03-04 = 20+31+31+28+4 = 114), C 03-06 (2025-12-01 → 2026-03-06
             = 30+31+28+6 = 95)                              = 3
  days sorted [56, 95, 114]: median 95; p90 rank ceil(0.9·3) = 3 → 114
  within target: D only (B after 02-10, C after 03-01)       = 1, share 1/3 = 0.333
  withdrawn  F                                               = 1 (not decided)
  pending on Sunday 03-08: A, K, E, H, G, I                  = 6
    at the office (not forwarded): A, H, G, I = 4; at the fund: K, E = 2
  over target (03-08 after the deadline): A, K, E            = 3 (H: deadline 03-08 itself,
                                                                  not after it)
  of them waiting for documents: A (rent_contract), E (rent_contract) = 2, share 0.667
As known on 2026-03-09 (before I was recorded): received 1, pending 5, at the office 3.
Week 2026-W11 (Sunday 03-15), canton: received 0; pending A, K, E, H, G, I = 6; over target
A, K, E, H = 4 (H's deadline passed); waiting A, E = 2 (H's document came 03-09): 0.500.

Per office, W10: akso-grenchen: received 2, decided 2 (B 114, C 95: median 104.5, p90 rank 2
→ 114, within 0, share 0.000), withdrawn 0, pending 4 (A, H, G, I; all at the office), over
target 1 (A), waiting 1, share 1.000. akso-olten: received 0, decided 1 (D: 56, 56, within 1,
share 1.000), withdrawn 1, pending 2 (K, E; at the fund), over target 2, waiting 1 (E): 0.500.
Regions: so-oberer-leberberg = Grenchen's figures, so-olten = Olten's; others all zero.
"""

from __future__ import annotations

import csv
import uuid
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.case import SWISS_TIME
from domain.commands import Actor
from nervenbahn.api.app import create_app
from nervenbahn.api.context import ApiContext
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.backlog_report import BACKLOG_CSV_COLUMNS, backlog_of
from nervenbahn.config import load_settings
from nervenbahn.container import build_benefit_service, build_service, close_service
from projections.backlog import Backlog, BacklogFigures, IsoWeek, ProcessingTarget
from tests.cli.conftest import Cli
from tests.cli.test_reporting_cli import build_read_model
from tests.domain.case_desk import person_input
from tests.domain.fakes import FakeClock

GRENCHEN, OLTEN = 2546, 2581
GRENCHEN_OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
OLTEN_OFFICE = Actor("ann.olt", "branch_office", "akso-olten")
FUND = Actor("max.akso", "fund_officer", "akso")
ALL = ["signed_application", "pension_statement", "tax_assessment", "account_statements",
       "rent_contract", "health_insurance_policy"]
W10, W11 = IsoWeek(2026, 10), IsoWeek(2026, 11)
NAMES = ("Anna Applicant", "Muster", "756.")
"""Personal data of the applicants (names, AHV number prefix) that no output may carry."""

# Every figure of a row, in the order of BacklogFigures after unit_kind, unit, week, target:
# received, decided, withdrawn, pending, at office, at fund, over target, late waiting,
# decided within, median, p90, share within, share late waiting
CANTON_W10 = (2, 3, 1, 6, 4, 2, 3, 2, 1, 95.0, 114, 1 / 3, 2 / 3)
GRENCHEN_W10 = (2, 2, 0, 4, 4, 0, 1, 1, 0, 104.5, 114, 0.0, 1.0)
OLTEN_W10 = (0, 1, 1, 2, 0, 2, 2, 1, 1, 56.0, 56, 1.0, 0.5)
CANTON_W11 = (0, 0, 0, 6, 4, 2, 4, 2, 0, None, None, None, 0.5)
EMPTY = (0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None, None)


pytestmark = pytest.mark.usefixtures("report_wired")


class _Recorder:
    """Records the fixture through the benefits service, moving a fake clock day by day."""

    def __init__(self, service: BenefitService, clock: FakeClock) -> None:
        self.service, self.clock, self.serial = service, clock, 0

    def on(self, day: date) -> None:
        moment = datetime(day.year, day.month, day.day, 9, 0, tzinfo=SWISS_TIME)
        self.clock.advance(seconds=(moment - self.clock()).total_seconds())

    def run(self, name: str, actor: Actor = FUND, **fields: Any) -> UUID:
        command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
        return self.service.execute(command).id

    def receive(self, office: Actor, bfs: int, received_on: date | None = None) -> UUID:
        self.serial += 1
        applicant = person_input(self.serial, given_name="Anna Applicant")
        today = self.clock().astimezone(SWISS_TIME).date()
        return self.run("receive_application", office, kind="el_ahv", municipality_bfs=bfs,
                        applicant=applicant, received_on=received_on or today)

    def check(self, office: Actor, app: UUID, missing: tuple[str, ...] = ()) -> None:
        present = [code for code in ALL if code not in missing]
        self.run("check_completeness", office, application_id=app, documents_present=present)

    def forward(self, office: Actor, app: UUID, override: str | None = None) -> None:
        reason = {"override_reason": override} if override else {}
        self.run("forward_application", office, application_id=app, **reason)

    def complete_and_forward(self, office: Actor, bfs: int) -> UUID:
        app = self.receive(office, bfs)
        self.check(office, app)
        self.forward(office, app)
        return app

    def grant(self, app: UUID, month: str) -> None:
        self.run("grant_benefit", application_id=app, from_month=month,
                 amounts=[{"from_month": month, "monthly_chf": "812.40"}])


def record_fixture(service: BenefitService, clock: FakeClock) -> None:
    """The fixture of the module docstring, in recording order."""
    r = _Recorder(service, clock)
    r.on(date(2025, 11, 3))
    a = r.receive(GRENCHEN_OFFICE, GRENCHEN)
    r.check(GRENCHEN_OFFICE, a, ("rent_contract",))
    r.run("request_documents", GRENCHEN_OFFICE, application_id=a, documents=["rent_contract"],
          due_on=date(2025, 12, 3))
    r.on(date(2025, 11, 4))
    r.complete_and_forward(OLTEN_OFFICE, OLTEN)  # K
    r.on(date(2025, 11, 10))
    b = r.complete_and_forward(GRENCHEN_OFFICE, GRENCHEN)
    r.on(date(2025, 11, 17))
    e = r.receive(OLTEN_OFFICE, OLTEN)
    r.check(OLTEN_OFFICE, e, ("rent_contract",))
    r.forward(OLTEN_OFFICE, e, "the rent contract follows")
    r.on(date(2025, 11, 24))
    f = r.complete_and_forward(OLTEN_OFFICE, OLTEN)
    r.on(date(2025, 12, 1))
    c = r.receive(GRENCHEN_OFFICE, GRENCHEN)
    r.check(GRENCHEN_OFFICE, c, ("rent_contract", "tax_assessment"))
    r.on(date(2025, 12, 8))
    h = r.receive(GRENCHEN_OFFICE, GRENCHEN)
    r.check(GRENCHEN_OFFICE, h, ("rent_contract",))
    r.on(date(2026, 1, 5))
    d = r.complete_and_forward(OLTEN_OFFICE, OLTEN)
    r.on(date(2026, 1, 15))
    r.run("record_documents_received", GRENCHEN_OFFICE, application_id=c,
          documents=["rent_contract", "tax_assessment"], received_on=date(2026, 1, 15))
    r.forward(GRENCHEN_OFFICE, c)
    r.on(date(2026, 3, 2))
    r.grant(d, "2026-01")
    r.on(date(2026, 3, 3))
    r.run("withdraw_application", application_id=f, reason="applicant_request")
    r.on(date(2026, 3, 4))
    r.grant(b, "2025-11")
    r.on(date(2026, 3, 5))
    r.receive(GRENCHEN_OFFICE, GRENCHEN)  # G
    r.on(date(2026, 3, 6))
    r.run("refuse_benefit", application_id=c, reason="income_sufficient")
    r.on(date(2026, 3, 9))
    r.run("record_documents_received", GRENCHEN_OFFICE, application_id=h,
          documents=["rent_contract"], received_on=date(2026, 3, 9))
    r.on(date(2026, 3, 10))
    r.receive(GRENCHEN_OFFICE, GRENCHEN, received_on=date(2026, 3, 2))  # I, entered late


@pytest.fixture
def benefits(cli: Cli, tmp_path: Path) -> Any:
    """The CLI's SQLite store with the fixture recorded in its benefits table."""
    assert cli("init").code == 0
    settings = load_settings()
    cases = build_service(settings)
    clock = FakeClock(datetime(2025, 11, 3, 8, 0, tzinfo=SWISS_TIME))
    service = build_benefit_service(settings, cases, clock)
    record_fixture(service, clock)
    yield service
    service.close()
    close_service(cases)


def figures(row: BacklogFigures) -> tuple[Any, ...]:
    """A row's figures in the order of the expected tuples."""
    return (row.received, row.decided, row.withdrawn, row.pending, row.pending_at_office,
            row.pending_at_fund, row.pending_over_target, row.late_waiting_for_documents,
            row.decided_within_target, row.median_days_to_decision, row.p90_days_to_decision,
            row.share_decided_within_target, row.share_late_waiting_for_documents)


def by_unit(backlog: Backlog) -> dict[str, BacklogFigures]:
    """The rows of a week by unit id."""
    return {row.unit: row for row in backlog.rows}


NOW = datetime(2026, 12, 6, 12, 0, tzinfo=SWISS_TIME)
TARGET = ProcessingTarget(3)


def test_figures_match_the_hand_computation(benefits: BenefitService) -> None:
    w10, w11 = backlog_of(benefits, W11, TARGET, NOW, weeks=2)
    rows = by_unit(w10)
    assert figures(w10.canton) == pytest.approx(CANTON_W10)
    assert figures(rows["akso-grenchen"]) == pytest.approx(GRENCHEN_W10)
    assert figures(rows["akso-olten"]) == pytest.approx(OLTEN_W10)
    assert figures(rows["so-oberer-leberberg"]) == pytest.approx(GRENCHEN_W10)
    assert figures(rows["so-olten"]) == pytest.approx(OLTEN_W10)
    assert figures(rows["akso-lommiswil"]) == EMPTY and figures(rows["so-thal-gaeu"]) == EMPTY
    assert len(w10.offices) == 53 and len(w10.regions) == 13
    assert figures(w11.canton) == pytest.approx(CANTON_W11)


def test_figures_as_known_before_a_late_entry_leave_it_out(benefits: BenefitService) -> None:
    # I was received on 2026-03-02 but recorded on 2026-03-10: as known on the 9th it is not
    # there yet; the week's figures change when it is.
    known = datetime(2026, 3, 9, 23, 59, tzinfo=SWISS_TIME)
    (w10,) = backlog_of(benefits, W10, TARGET, known, weeks=1)
    assert (w10.canton.received, w10.canton.pending, w10.canton.pending_at_office) == (1, 5, 3)


def test_a_longer_target_is_reported_by_name_and_changes_the_late_ones(
    benefits: BenefitService,
) -> None:
    (w10,) = backlog_of(benefits, W10, ProcessingTarget(4), NOW, weeks=1)
    # deadlines + 4 months: A 03-03 and K 03-04 passed on 03-08, E 03-17 not
    assert (w10.canton.pending_over_target, w10.canton.target_months) == (2, 4)
    assert ProcessingTarget(4).label == "4 months"


def test_report_csv_and_html_carry_the_same_figures_and_no_personal_data(
    cli: Cli, benefits: BenefitService, tmp_path: Path,
) -> None:
    out = tmp_path / "out"

    result = cli("report", "backlog", "2026-W10", "--out", str(out))

    assert result.code == 0, result.err
    assert "target 3 months" in result.out
    csv_path, html_path = out / "backlog-2026-W10.csv", out / "backlog-2026-W10.html"
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(BACKLOG_CSV_COLUMNS)
    assert len(rows) == 26 * (53 + 13 + 1)
    assert rows[0]["week"] == "2025-W37" and rows[-1]["week"] == "2026-W10"
    csv_rows = {(row["unit"], row["week"]): row for row in rows}
    assert _csv_figures(csv_rows["canton", "2026-W10"]) == _text(CANTON_W10)
    assert _csv_figures(csv_rows["akso-grenchen", "2026-W10"]) == _text(GRENCHEN_W10)
    assert _csv_figures(csv_rows["so-olten", "2026-W10"]) == _text(OLTEN_W10)
    assert csv_rows["so-olten", "2026-W10"]["unit_name"] == "Olten"
    assert csv_rows["canton", "2026-W10"]["target_months"] == "3"

    page = html_path.read_text()
    cells = _html_cells(page)
    assert cells["canton:canton"] == _html_text(CANTON_W10)
    assert cells["branch_office:akso-grenchen"] == _html_text(GRENCHEN_W10)
    assert cells["region:so-olten"] == _html_text(OLTEN_W10)
    assert 'data-target-months="3"' in page and page.count("<svg") == 4
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for output in (csv_path.read_bytes(), html_path.read_bytes()):
        for personal in NAMES:
            assert personal.encode() not in output


def test_the_quarterly_report_shows_the_backlog_of_the_quarters_last_week(
    cli: Cli, benefits: BenefitService, tmp_path: Path,
) -> None:
    build_read_model()  # the quarterly report's case figures (no cases here)
    now = datetime.now(SWISS_TIME)
    (w13,) = backlog_of(benefits, IsoWeek.parse("2026-W13"), TARGET, now, weeks=1)

    result = cli("report", "quarterly", "2026Q1", "--out", str(tmp_path), "--min-count", "0")

    assert result.code == 0, result.err
    page = (tmp_path / "report-2026Q1.html").read_text()
    section = page.split("<h2>Benefit applications: backlog in week 2026-W13</h2>", 1)[1]
    cells = _html_cells(section.split("</table>", 1)[0])
    assert cells["canton:canton"] == _html_text(figures(w13.canton))
    assert cells["region:so-olten"] == _html_text(figures(by_unit(w13)["so-olten"]))
    # by hand, on Sunday 2026-03-29: pending A, K, E, H, G, I; past their deadline (receipt +
    # 3 months) A, K, E, H; of those waiting for documents A (requested) and E (forwarded
    # without them), H's came on 03-09
    assert (w13.canton.pending, w13.canton.pending_over_target,
            w13.canton.late_waiting_for_documents) == (6, 4, 2)
    for personal in NAMES:
        assert personal not in page


def test_a_bad_week_is_refused_naming_it(cli: Cli, tmp_path: Path) -> None:
    for bad in ("2026-49", "2026-W54", "W49"):
        result = cli("report", "backlog", bad, "--out", str(tmp_path))
        assert result.code != 0
        assert "week" in result.err and bad in result.err


def test_the_canton_api_answers_the_same_figures_with_freshness(
    benefits: BenefitService, tmp_path: Path,
) -> None:
    keys = ApiKeyRegistry(tmp_path / "keys.json")
    canton_key = keys.add("canton", Scope("canton"), now=NOW)
    office_key = keys.add("olten", Scope("branch_office", "akso-olten"), now=NOW)
    context = ApiContext(
        region_db=tmp_path / "none.db", branch_office_db=tmp_path / "none.db",
        reporting_db=tmp_path / "none.db", vault=benefits.vault, keys=keys,
        access_log=SQLiteAccessLog(tmp_path / "access-log.db"),
        branch_offices=benefits.offices, reference=benefits.reference, clock=lambda: NOW,
        benefits=lambda: benefits,
    )
    with TestClient(create_app(context), raise_server_exceptions=False) as client:
        answer = client.get("/v1/canton/benefits/backlog", params={"week": "2026-W10"},
                            headers={"X-API-Key": canton_key})
        bad = client.get("/v1/canton/benefits/backlog", params={"week": "2026-W60"},
                         headers={"X-API-Key": canton_key})
        office = client.get("/v1/canton/benefits/backlog", params={"week": "2026-W10"},
                            headers={"X-API-Key": office_key})
    context.close()

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["week_start"], body["week_end"], body["target"]) == (
        "2026-03-02", "2026-03-08", "3 months")
    assert _api_figures(body["canton"]) == pytest.approx(CANTON_W10)
    offices = {row["unit"]: row for row in body["branch_offices"]}
    regions = {row["unit"]: row for row in body["regions"]}
    assert _api_figures(offices["akso-grenchen"]) == pytest.approx(GRENCHEN_W10)
    assert _api_figures(regions["so-olten"]) == pytest.approx(OLTEN_W10)
    assert answer.headers["X-Read-Model"] == "benefits"
    # the newest event: I, recorded on 2026-03-10 at 09:00 Swiss time (08:00 UTC)
    assert answer.headers["X-Read-Model-As-Of"] == "2026-03-10T08:00:00Z"
    for personal in NAMES:
        assert personal.encode() not in answer.content
    assert bad.status_code == 422 and "week" in bad.text and "2026-W60" in bad.text
    assert office.status_code == 404  # out of scope: answered as the other canton routes do


# --- reading the outputs -------------------------------------------------------------------


def _text(expected: tuple[Any, ...]) -> list[str]:
    """The CSV's text of expected figures (shares with three decimals)."""
    *counts, median, p90, share_within, share_late = expected
    return [*(str(c) for c in counts), _num(median), _num(p90), _share(share_within),
            _share(share_late)]


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


_ORDER = ("received", "decided", "withdrawn", "pending", "pending_at_office",
          "pending_at_fund", "pending_over_target", "late_waiting_for_documents",
          "decided_within_target", "median_days_to_decision", "p90_days_to_decision",
          "share_decided_within_target", "share_late_waiting_for_documents")


def _csv_figures(row: dict[str, str]) -> list[str]:
    return [row[column] for column in _ORDER]


def _api_figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column] for column in _ORDER)


def _html_text(expected: tuple[Any, ...]) -> dict[str, str]:
    """The tables' text of expected figures (shares as whole percentages, none as `–`)."""
    shown = {}
    for column, value in zip(_ORDER, expected, strict=True):
        if value is None:
            shown[column] = "–"
        elif column.startswith("share_"):
            shown[column] = f"{value * 100:.0f} %"
        else:
            shown[column] = _num(value)
    return shown


class _Cells(HTMLParser):
    """The figure cells of every backlog table row, by `data-unit` and `data-figure`."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._unit: str | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-unit"):
            self._unit = found["data-unit"]
            self.rows[str(self._unit)] = {}
        elif tag == "td" and self._unit and found.get("data-figure"):
            self._figure = found["data-figure"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._unit = None
        if tag == "td":
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._unit and self._figure:
            self.rows[self._unit][self._figure] = data


def _html_cells(page: str) -> dict[str, dict[str, str]]:
    parser = _Cells()
    parser.feed(page)
    return parser.rows


def test_iso_weeks_parse_and_bound() -> None:
    assert (IsoWeek.parse("2026-W49").start, IsoWeek.parse("2026-W49").end) == (
        date(2026, 11, 30), date(2026, 12, 6))
    assert str(IsoWeek.parse("2026-W01").back(1)) == "2025-W52"
    assert str(IsoWeek.parse("2026-W53")) == "2026-W53"  # 2026 has 53 ISO weeks
    with pytest.raises(ValueError, match="2026-W54"):
        IsoWeek.parse("2026-W54")
    assert TARGET.deadline(date(2025, 11, 30)) == date(2026, 2, 28)
    assert TARGET.label == "3 months" and ProcessingTarget(1).label == "1 month"
