"""The audit report in German and French (labels instead of codes, Swiss dates and amounts)
and its payments beside entitlement, computed by hand for a case whose rent was cut and
raised again after months had been paid: a claim-back and a back-payment, each shown as such,
and the months where ordered and owed differ marked until the next run."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from uuid import UUID

import pytest

from domain import commands
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.payments import RecordPayoutAccount, RunPayments
from nervenbahn.audit.report import CaseReport, build_case_report, render_case_report
from nervenbahn.web.i18n import translations
from nervenbahn.web.labels import CODES, FIELDS
from tests.audit.test_report import INTACT, NOW, Tables
from tests.domain.bitemporal_case import ACTOR, START, _at, _command, end_of
from tests.domain.case_desk import POPO_ENV, FakeClock, build_desk

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")


@dataclass
class Story:
    """A supported case, its payment runs, and the services that recorded them."""

    cases: CaseService
    payments: PaymentService
    clock: FakeClock
    case_id: UUID

    def run(self, day: date) -> None:
        _at(self.clock, day)
        self.payments.run(
            RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=day.replace(day=1))
        )

    def report(self, day: date, **orders: bool) -> CaseReport:
        return build_case_report(
            self.cases,
            self.case_id,
            end_of(day),
            now=NOW,
            verifications=[INTACT],
            orders=self.payments.orders(self.case_id) if orders.get("with_orders", True) else None,
        )


def open_supported_case(cases: CaseService, clock: FakeClock) -> UUID:
    """A one-person case in Solothurn, opened and assessed on 5 January, granted on 6 January
    from 1 January with rent 1200 and premium 350 (CHF 2611 a month); its id."""
    applicant = {
        "given_name": "Erika",
        "family_name": "Muster",
        "ahvn13": "7561234567897",
        "birth_date": "1980-04-12",
        "street": "Hauptgasse 1",
        "postal_code": "4500",
        "town": "Solothurn",
    }
    _at(clock, date(2026, 1, 5))
    case_id = cases.execute(
        _command("open_case", municipality_bfs=2601, household_size=1, applicant=applicant)
    ).case_id
    cid = str(case_id)
    cases.execute(
        _command(
            "complete_assessment", case_id=cid, needs=["financial"], employability="employable"
        )
    )
    _at(clock, date(2026, 1, 6))
    cases.execute(
        _command(
            "grant_support",
            case_id=cid,
            support_from="2026-01-01",
            housing="1200",
            health_insurance="350",
            income="0",
        )
    )
    return case_id


@pytest.fixture
def story() -> Iterator[Story]:
    """Rent 1200 from January (CHF 2611 a month), paid in January and February; on 3 March
    the rent is cut to 1000 from 1 February (recorded, then March's run claims 200 back for
    February); on 2 April it is raised to 1100 from 1 March (April's run back-pays 100)."""
    desk = build_desk(ACTOR, START)
    clock, cases = desk.clock, desk.service
    payments = PaymentService(POPO_ENV, cases=cases, clock=clock)
    case_id = open_supported_case(cases, clock)
    cid = str(case_id)
    payments.record_account(
        RecordPayoutAccount(
            actor=ADMIN,
            correlation_id=uuid.uuid4(),
            case_id=case_id,
            iban="CH9300762011623852957",
            holder="E. Muster",
        )
    )
    told = Story(cases, payments, clock, case_id)
    told.run(date(2026, 1, 26))
    told.run(date(2026, 2, 25))
    _at(clock, date(2026, 3, 3))
    cases.execute(
        _command(
            "change_budget",
            case_id=cid,
            effective_date="2026-02-01",
            reason="rent_change",
            housing="1000",
            health_insurance="350",
            income="0",
        )
    )
    told.run(date(2026, 3, 25))
    _at(clock, date(2026, 4, 2))
    cases.execute(
        _command(
            "change_budget",
            case_id=cid,
            effective_date="2026-03-01",
            reason="rent_change",
            housing="1100",
            health_insurance="350",
            income="0",
        )
    )
    told.run(date(2026, 4, 24))
    yield told
    payments.close()
    cases.close()


def _payments(report: CaseReport, language: str = "de") -> list[list[str]]:
    return Tables(render_case_report(report, language)).tables["payments"]


def test_before_the_next_run_the_raised_rent_shows_as_a_difference(story: Story) -> None:
    rows = _payments(story.report(date(2026, 4, 10)))
    assert rows[0] == [
        "Monat",
        "Anspruch nach damaligem Wissen",
        "Bis dahin angewiesen",
        "Von der Bank ausgeführt",
        "Zahlungsaufträge (Art, Betrag, erfasst)",
        "Differenz",
    ]
    # by hand: basic needs 1061 + rent + premium 350; rent 1200 in January, 1000 in
    # February (cut on 3 March), 1100 from March (raised on 2 April, not yet run)
    assert [(r[0], r[1], r[2], r[5]) for r in rows[1:]] == [
        ("01.2026", "CHF 2'611.00", "CHF 2'611.00", "CHF 0.00"),
        ("02.2026", "CHF 2'411.00", "CHF 2'411.00", "CHF 0.00"),
        ("03.2026", "CHF 2'511.00", "CHF 2'411.00", "CHF +100.00"),
        ("04.2026", "CHF 2'511.00", "CHF 0.00", "CHF +2'511.00"),
    ]
    assert rows[2][4] == (
        "Ordentliche Zahlung CHF 2'611.00, 25.02.2026 09:00:00; "
        "Rückforderung CHF 200.00, 25.03.2026 09:00:00"
    )
    assert rows[4][4] == "–"
    marked = [m.month for m in story.report(date(2026, 4, 10)).payments or () if m.differs]
    assert marked == [date(2026, 3, 1), date(2026, 4, 1)]
    html = render_case_report(story.report(date(2026, 4, 10)))
    assert len(re.findall(r'<tr class="differs">', html)) == 2
    assert "Monate, in denen Angewiesenes und Geschuldetes abweichen: 2 (markiert)" in html


def test_after_the_run_the_back_payment_closes_the_difference(story: Story) -> None:
    report = story.report(date(2026, 4, 30))
    rows = _payments(report, "fr")
    assert rows[0][0] == "Mois" and rows[0][5] == "Différence"
    assert [(r[0], r[2], r[5]) for r in rows[1:]] == [
        ("01.2026", "CHF 2'611.00", "CHF 0.00"),
        ("02.2026", "CHF 2'411.00", "CHF 0.00"),
        ("03.2026", "CHF 2'511.00", "CHF 0.00"),
        ("04.2026", "CHF 2'511.00", "CHF 0.00"),
    ]
    assert rows[3][4] == (
        "Paiement ordinaire CHF 2'411.00, 25.03.2026 09:00:00; "
        "Paiement rétroactif CHF 100.00, 24.04.2026 09:00:00"
    )
    assert not any(m.differs for m in report.payments or ())
    assert [o.kind for m in report.payments or () for o in m.orders] == [
        "regular",
        "regular",
        "claim_back",
        "regular",
        "back_payment",
        "regular",
    ]


def test_orders_recorded_after_the_report_time_are_left_out(story: Story) -> None:
    rows = _payments(story.report(date(2026, 3, 24)))
    # as known on 24 March: February cut (2411), nothing claimed back yet, March not run
    assert [(r[0], r[1], r[2], r[5]) for r in rows[1:]] == [
        ("01.2026", "CHF 2'611.00", "CHF 2'611.00", "CHF 0.00"),
        ("02.2026", "CHF 2'411.00", "CHF 2'611.00", "CHF -200.00"),
        ("03.2026", "CHF 2'411.00", "CHF 0.00", "CHF +2'411.00"),
    ]


def test_without_the_payments_store_the_report_says_so(story: Story) -> None:
    html = render_case_report(story.report(date(2026, 4, 30), with_orders=False), "fr")
    assert "Les données de paiement n&#x27;ont pas été lues." in html
    assert 'id="payments"' not in html


class VisibleText(HTMLParser):
    """The text a reader sees (not the style sheet)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(self.parts)


CODE_WORDS = {code for code in (*CODES, *FIELDS) if re.fullmatch(r"[a-z_]+|[A-Z][A-Za-z]+", code)}
"""Every code the labels know, and every field name: none may be seen raw."""

KEY_LABELS = {
    "de": [
        "Prüfbericht",
        "Berichts-ID",
        "Erstellt von",
        "Zahlungen neben dem Anspruch",
        "Budget geändert",
        "Miete geändert",
        "Grundbedarf",
        "Wohnkosten",
        "Rückforderung",
        "Nachzahlung",
        "Ordentliche Zahlung",
        "Unterstützt",
        "Damals bekannt",
        "CHF 2'611.00",
        "06.01.2026",
    ],
    "fr": [
        "Rapport d'audit",
        "ID du rapport",
        "Établi par",
        "Paiements en regard du droit",
        "budget modifié",
        "Loyer modifié",
        "Forfait pour l'entretien",
        "Logement",
        "Demande de remboursement",
        "Paiement rétroactif",
        "Paiement ordinaire",
        "Connu alors",
        "CHF 2'611.00",
        "06.01.2026",
    ],
}


def _words_of_labels(language: str) -> set[str]:
    """Words the labels themselves use in `language` (French "social", say, is a word there
    as well as a code)."""
    gettext = translations(language).gettext
    return {
        word
        for text in (*CODES.values(), *FIELDS.values())
        for word in re.findall(r"[A-Za-z_]+", gettext(text))
    }


@pytest.mark.parametrize("language", ["de", "fr"])
def test_no_raw_code_remains_and_the_key_labels_are_there(story: Story, language: str) -> None:
    cid = str(story.case_id)
    _at(story.clock, date(2026, 4, 27))
    story.cases.execute(
        _command(
            "agree_goal",
            case_id=cid,
            category="employment",
            title="Bewerbungen schreiben",
            due_date="2026-09-30",
        )
    )
    story.cases.execute(
        _command("start_measure", case_id=cid, kind="job_coaching", start_date="2026-05-01")
    )
    report = story.report(date(2026, 4, 30))
    text = VisibleText(render_case_report(report, language)).text
    words = set(re.findall(r"[A-Za-z_]+", text))
    assert words & CODE_WORDS - _words_of_labels(language) == set(), f"raw codes ({language})"
    assert "BudgetChanged" not in text and "basic_needs" not in text
    missing = [label for label in KEY_LABELS[language] if label not in text]
    assert not missing
    assert not re.search(r"\b2026-\d\d-\d\d\b", text), "an ISO date is shown"


def test_an_unknown_language_is_refused(story: Story) -> None:
    with pytest.raises(ValueError, match="language: 'en'"):
        render_case_report(story.report(date(2026, 4, 30)), "en")
