"""The person's statement of a reimbursement (issue 15, point 3): a self-contained HTML page in
plain German and a CSV with the same per-month figures.

When the fund grants EL for months the social service advanced, the person receives a
statement: per month what the social service paid, the EL, the premium reduction offset, the
social service's claim and the surplus paid to the person, with the legal basis (ELG Art. 12,
ELV Art. 22 Abs. 4 und 5, SKOS-Richtlinie F.2). A correction (an amended decision, a late
payment correction) shows, besides the figures as they are now, what changed against the
earlier statement.

The statement rests on the claims the case **recorded** (`ReimbursementRecorded`,
`domain.events.claims_of`), never on a computation of its own: the person must read the very
figures the social service claimed from the fund, and a statement written again later (a lost
letter, a question at the desk) shows the same figures, whatever was recorded since. The
recorded claims of one advance are numbered in the order recorded (1: the claim, 2 and on:
corrections); `statement_for_claim` makes the statement of one of them, by default the
latest. A correction shows the figures as known when it was recorded and what changed against
the claims recorded before it (the sum of their corrections,
`domain.reimbursement.claimed_so_far`).

Personal data: the HTML names the person the advance was made for (the EL applicant) — name,
address and AHV number, opened from the case's sealed household through the vault — and no one
else. The AHV number is there so the person and the fund can match the statement, and so that
`person erase` finds a statement written under the store folder and names it as not reached
(it searches for the AHVN13). The CSV holds figures only, no name. Every value is escaped; no
JavaScript, no external assets (the quarterly report's style sheet, inline).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Literal
from uuid import UUID

from domain.case import Case
from domain.errors import RuleViolationError
from domain.events import Advance, claims_of
from domain.money import ZERO
from domain.personal_data import PersonalData, SealedPersonalData
from domain.reimbursement import MonthClaim, Reimbursement, claimed_so_far
from nervenbahn.audit.access_log import AccessEntry, case_read_entries
from nervenbahn.quarterly_report import REPORT_STYLE, table_cell, write_html_and_csv

__all__ = [
    "HTML_COLUMNS",
    "STATEMENT_CSV_COLUMNS",
    "STATEMENT_FIELDS",
    "Statement",
    "advance_for",
    "format_chf",
    "person_for",
    "render_statement_csv",
    "render_statement_html",
    "statement_for_claim",
    "write_statement",
]

STATEMENT_FIELDS = ("given_name", "family_name", "ahvn13", "street", "postal_code", "town",
                    "reimbursement")
"""What a statement shows of the person and the case (the access log's `fields`)."""

FIGURES_FIELDS = ("reimbursement",)
"""What a statement shows of everyone else of the household, and what its CSV shows of anyone:
the case's figures, no name (the access log's `fields`)."""


def statement_read_entries(
    case: Case, statement: Statement, *, names_shown: bool, at: datetime, consumer: str,
    scope: str, endpoint: str,
) -> list[AccessEntry]:
    """The access-log entries of one read of a statement: under its person the fields it
    shows of them (`STATEMENT_FIELDS` with the page, `FIGURES_FIELDS` with the CSV, which
    holds no name), under each other member of the household `FIGURES_FIELDS` — the case's
    figures concern them too, their names are not on it. A subject-access report built from
    the log then says what was shown, not more."""
    person = str(statement.person.person_id)
    return [
        replace(entry, fields=STATEMENT_FIELDS if names_shown and entry.person_id == person
                else FIGURES_FIELDS)
        for entry in case_read_entries(case, at=at, consumer=consumer, scope=scope,
                                       fields=FIGURES_FIELDS, endpoint=endpoint)
    ]

HTML_COLUMNS = ("Monat", "Von der Sozialhilfe bezahlt", "EL",
                "Verrechnete Prämienverbilligung", "Rückforderung der Sozialhilfe",
                "Überschuss an Sie")
"""The columns of the statement's table of months, in order."""

STATEMENT_CSV_COLUMNS = ("month", "paid_by_social_assistance", "el", "ipv_offset", "claim",
                         "surplus", "claim_change", "ipv_offset_change", "surplus_change")
"""One row per month (then `total`): the figures as known now and what this statement changes
(for the first statement, all of it); amounts in CHF with two decimals, no thousands mark."""

_MONTHS_DE = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember")

_LEGAL_BASIS = (
    ("ELG Art. 12", "EL wird ab dem Monat ausgerichtet, in dem die Anmeldung eingereicht "
     "wurde. Für einen Monat vor der Anmeldung wird nichts zurückgefordert."),
    ("ELV Art. 22 Abs. 4", "Hat die Sozialhilfe für die gleiche Zeit Vorschuss geleistet, wird "
     "ihr die Nachzahlung der EL bis zur Höhe ihres Vorschusses direkt ausbezahlt."),
    ("ELV Art. 22 Abs. 5", "Prämienverbilligungen, die der Kanton für dieselben Monate bereits "
     "bezahlt hat, werden mit der EL dieser Monate verrechnet."),
    ("SKOS-Richtlinie F.2", "Zurückgefordert wird nur für die gleichen Monate (zeitliche "
     "Kongruenz) und nur für den Lebensunterhalt, den die Sozialhilfe bezahlt hat (sachliche "
     "Kongruenz). Grundlage ist Ihre schriftliche Abtretung oder Zahlungsanweisung."),
)


@dataclass(frozen=True)
class Statement:
    """Everything one statement shows: the person, the ids, and one recorded claim.

    `reimbursement`: the claim's figures (every month as known when it was recorded, and its
    corrections); `recorded_on`: the day it was recorded; `sequence`: its number among the
    claims recorded for the advance (1: the claim, later: a correction); `before`: what the
    claims recorded before it claimed per month (`domain.reimbursement.claimed_so_far`), empty
    for the first.
    """

    case_id: UUID
    application_id: UUID
    person: PersonalData
    reimbursement: Reimbursement
    recorded_on: date
    before: Mapping[date, MonthClaim] = field(default_factory=dict)
    sequence: int = 1

    @property
    def kind(self) -> Literal["claim", "correction"]:
        """`claim` (the first recorded claim of the advance) or `correction`."""
        return "claim" if self.sequence == 1 else "correction"

    @property
    def stem(self) -> str:
        """The files' name without suffix (ids, number and day only, no name): the same
        claim's statement written again has the same name."""
        return (f"statement-{self.application_id}-{self.sequence}-{self.kind}-"
                f"{self.recorded_on:%Y%m%d}")


def write_statement(statement: Statement, folder: Path) -> tuple[Path, Path]:
    """Write `<stem>.html` and `<stem>.csv` into `folder` (created if needed); their paths."""
    return write_html_and_csv(folder, statement.stem, render_statement_html(statement),
                              render_statement_csv(statement))


def format_chf(amount: Decimal, *, signed: bool = False) -> str:
    """An amount as a Swiss statement writes it: `2'400.00`, `-400.00`, with `signed` a
    leading `+` on a positive amount."""
    text = f"{amount:,.2f}".replace(",", "'")
    return f"+{text}" if signed and amount > ZERO else text


# --- from the recorded claims -------------------------------------------------------------


def advance_for(case: Case, application_id: UUID) -> Advance:
    """The case's latest advance in view of `application_id`; RuleViolationError
    (`advance-for-application`) naming the application if the case has none."""
    found = [a for a in case.advances if a.application_id == application_id]
    if not found:
        raise RuleViolationError(
            "advance-for-application",
            f"application_id: case {case.id} made no advance in view of {application_id}")
    return found[-1]


def person_for(case: Case, advance: Advance) -> PersonalData:
    """The household member the advance was made for, opened through the vault;
    RuleViolationError (`statement-names-the-person`) if their data was erased."""
    member = next(p for p in (case.applicant, *case.other_members)
                  if p.person_id == advance.person_id)
    opened = member.open() if isinstance(member, SealedPersonalData) else member
    if not isinstance(opened, PersonalData):
        raise RuleViolationError(
            "statement-names-the-person",
            f"person_id: the data of {advance.person_id} was erased; a statement names the "
            "person and is not produced without them")
    return opened


def statement_for_claim(case: Case, application_id: UUID,
                        sequence: int | None = None) -> Statement:
    """The statement of claim number `sequence` (1: the first; default the latest) that
    `case` recorded for its advance in view of `application_id`, from the recorded figures.
    RuleViolationError: `advance-for-application` if the case made no such advance,
    `statement-of-recorded-claim` (naming `application_id` or `sequence`) if no claim was
    recorded or none has that number, `statement-names-the-person` if the person's data was
    erased."""
    person = person_for(case, advance_for(case, application_id))
    recorded = [c for c in claims_of(case) if c.application_id == application_id]
    if not recorded:
        raise RuleViolationError(
            "statement-of-recorded-claim",
            f"application_id: case {case.id} recorded no claim for {application_id} yet "
            "(the claims process records it once the EL is granted)")
    number = len(recorded) if sequence is None else sequence
    if not 1 <= number <= len(recorded):
        raise RuleViolationError(
            "statement-of-recorded-claim",
            f"sequence: {sequence} is not a recorded claim of {application_id}; "
            f"there are {len(recorded)} (1 to {len(recorded)})")
    claim = recorded[number - 1]
    before = claimed_so_far(Reimbursement((), tuple(c.corrections))
                            for c in recorded[:number - 1])
    figures = Reimbursement(tuple(claim.months), tuple(claim.corrections))
    return Statement(case.id, application_id, person, figures, claim.recorded_on, before,
                     number)


# --- CSV ----------------------------------------------------------------------------------


def render_statement_csv(statement: Statement) -> str:
    """The per-month figures as CSV (`STATEMENT_CSV_COLUMNS`), then a `total` row; no name."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STATEMENT_CSV_COLUMNS)
    for row in _rows(statement):
        writer.writerow([row.label_iso, *(str(amount) for amount in row.amounts)])
    return buffer.getvalue()


@dataclass(frozen=True)
class _Row:
    label_iso: str
    label_de: str
    now: MonthClaim
    change: MonthClaim

    @property
    def amounts(self) -> tuple[Decimal, ...]:
        return (self.now.paid, self.now.el, self.now.ipv_offset, self.now.claim,
                self.now.surplus, self.change.claim, self.change.ipv_offset,
                self.change.surplus)


def _rows(statement: Statement) -> list[_Row]:
    """A row per month (every month as known now, and a month corrected to nothing), then
    the total."""
    result = statement.reimbursement
    now = {m.month: m for m in result.months}
    changes = {c.month: c for c in result.corrections}
    rows = []
    for month in sorted({*now, *changes}):
        figures = now.get(month, _nothing(month))
        rows.append(_Row(f"{month:%Y-%m}", f"{_MONTHS_DE[month.month - 1]} {month.year}",
                         figures, changes.get(month, _nothing(month))))
    total = _Row("total", "Total", _sum([r.now for r in rows]), _sum([r.change for r in rows]))
    return [*rows, total]


def _nothing(month: date) -> MonthClaim:
    return MonthClaim(month, ZERO, ZERO, ZERO, ZERO, ZERO)


def _sum(figures: Sequence[MonthClaim]) -> MonthClaim:
    def total(name: str) -> Decimal:
        return sum((getattr(f, name) for f in figures), ZERO)

    return MonthClaim(date.min, total("paid"), total("el"), total("ipv_offset"),
                      total("claim"), total("surplus"))


# --- HTML ---------------------------------------------------------------------------------


def render_statement_html(statement: Statement) -> str:
    """The statement as one self-contained HTML page in German."""
    person, rows = statement.person, _rows(statement)
    title = ("Korrektur der Abrechnung: Rückerstattung aus Ergänzungsleistungen"
             if statement.kind == "correction"
             else "Abrechnung: Rückerstattung aus Ergänzungsleistungen")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="de"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{REPORT_STYLE}</style></head><body>",
        '<p class="address">'
        + "<br>".join(escape(line) for line in (
            f"{person.given_name} {person.family_name}", person.street,
            f"{person.postal_code} {person.town}"))
        + "</p>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">AHV-Nummer {escape(person.ahvn13)} · Fall {statement.case_id} · '
        f"EL-Anmeldung {statement.application_id} · Abrechnung Nr. {statement.sequence} vom "
        f"{statement.recorded_on:%d.%m.%Y}</p>",
        *_summary(statement, rows[-1]),
        "<h2>Ihre Abrechnung nach Monaten</h2>",
        _months_table(rows),
        *(_changes(rows) if statement.kind == "correction" else []),
        _explanation(),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(statement: Statement, total: _Row) -> list[str]:
    claim, surplus = total.change.claim, total.change.surplus
    if statement.kind == "claim":
        text = (f"Die Ausgleichskasse hat Ihnen Ergänzungsleistungen (EL) rückwirkend "
                f"zugesprochen. Für die Monate, in denen die Sozialhilfe Ihren Lebensunterhalt "
                f"bevorschusst hat, erhält sie davon CHF {format_chf(claim)} zurück. "
                f"An Sie ausbezahlt werden CHF {format_chf(surplus)}.")
    else:
        text = ("Seit der früheren Abrechnung haben sich Angaben geändert (ein geänderter "
                "EL-Entscheid oder eine Korrektur der Sozialhilfe-Zahlungen). Verrechnet wird "
                "nur der Unterschied: " + _change_sentence(claim, surplus))
    return [f'<p class="summary">{escape(text)}</p>']


def _change_sentence(claim: Decimal, surplus: Decimal) -> str:
    social = (f"Die Sozialhilfe erhält CHF {format_chf(claim)} mehr zurück."
              if claim > ZERO else
              f"Die Sozialhilfe gibt CHF {format_chf(-claim)} ihrer Rückforderung zurück."
              if claim < ZERO else "Die Rückforderung der Sozialhilfe bleibt gleich.")
    person = (f"Sie erhalten CHF {format_chf(surplus)} mehr." if surplus > ZERO else
              f"Ihr Überschuss wird um CHF {format_chf(-surplus)} kleiner." if surplus < ZERO
              else "Ihr Überschuss bleibt gleich.")
    return f"{social} {person}"


def _months_table(rows: list[_Row]) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in HTML_COLUMNS)
    body = []
    for row in rows:
        n = row.now
        cells = [row.label_de, *(format_chf(a) for a in (n.paid, n.el, n.ipv_offset, n.claim,
                                                          n.surplus))]
        css = ' class="total"' if row.label_iso == "total" else ""
        body.append(f'<tr{css} data-month="{row.label_iso}">'
                    + "".join(table_cell(c) for c in cells) + "</tr>")
    return (f'<table id="months"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _changes(rows: list[_Row]) -> list[str]:
    head = "".join(f"<th>{escape(c)}</th>" for c in (
        "Monat", "Rückforderung bisher", "Rückforderung neu", "Änderung Rückforderung",
        "Überschuss bisher", "Überschuss neu", "Änderung Überschuss"))
    body = []
    for row in rows:
        if row.change.is_zero:
            continue
        n, c = row.now, row.change
        cells = [row.label_de, format_chf(n.claim - c.claim), format_chf(n.claim),
                 format_chf(c.claim, signed=True), format_chf(n.surplus - c.surplus),
                 format_chf(n.surplus), format_chf(c.surplus, signed=True)]
        css = ' class="total"' if row.label_iso == "total" else ""
        body.append(f'<tr{css} data-month="{row.label_iso}">'
                    + "".join(table_cell(cell) for cell in cells) + "</tr>")
    return ["<h2>Was sich gegenüber der früheren Abrechnung ändert</h2>",
            f'<table id="changes"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"]


def _explanation() -> str:
    terms = [
        ("Von der Sozialhilfe bezahlt", "was die Sozialhilfe für den Lebensunterhalt dieses "
         "Monats ausbezahlt hat, Nachzahlungen und Rückforderungen eingerechnet."),
        ("EL", "die Ergänzungsleistung, die Ihnen für diesen Monat zusteht."),
        ("Verrechnete Prämienverbilligung", "die Prämienverbilligung, die der Kanton für diesen "
         "Monat schon an Ihre Krankenkasse bezahlt hat; sie wird zuerst abgezogen."),
        ("Rückforderung der Sozialhilfe", "der kleinere Betrag von «von der Sozialhilfe "
         "bezahlt» und der EL nach Abzug der Prämienverbilligung. Nur Monate, in denen die "
         "Sozialhilfe bevorschusst hat, werden zurückgefordert."),
        ("Überschuss an Sie", "der Rest der EL dieses Monats: EL − Prämienverbilligung − "
         "Rückforderung. Er wird Ihnen ausbezahlt."),
    ]
    entries = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in terms)
    basis = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in _LEGAL_BASIS)
    return (f"<h2>So wird gerechnet</h2><dl>{entries}</dl>"
            f"<h2>Rechtsgrundlagen</h2><dl>{basis}</dl>"
            '<p class="meta">Beträge in Schweizer Franken (CHF). Fragen zu dieser Abrechnung '
            "beantwortet Ihr Sozialdienst.</p>")
