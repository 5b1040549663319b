"""The audit report of one case as of a recorded time: a self-contained HTML page.

In German or French (`language`): every label and every code (events, phases, budget lines,
reasons, kinds) in words, through the web application's gettext catalogues
(`nervenbahn/web/locale/*/report.po` and the code labels of `nervenbahn.web.labels`); dates
31.12.2026 and amounts CHF 1'234.50 whatever the language. Printable: every printed page names
the report id and its page number, tables repeat their header.

It shows the full timeline (recorded time in Swiss time, effective date, declared actor, the
identity the recording edge established, event, live or imported with its origin (importer,
file, SHA-256), and whether it was known at the report's time), the state at that time, the
budget by month as known then (marking months a later record changed), the payments ordered
beside the entitlement per month (`nervenbahn.audit.report_payments`), and the result
of verifying the store's hash chains with the checkpoint they were verified against.

Presentation only: the answers come from `domain.application.cases.CaseService` (bitemporal queries)
and the verification from `nervenbahn.audit.verify`. No personal data is shown. Built with
the standard library; every value is escaped; no JavaScript, no external assets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from domain.application.bitemporal import MonthlyAnswer, StateAsOf
from domain.application.cases import CaseService
from domain.application.history import HistoryEntry
from domain.basic_needs import RateCheck, month_rate_checks
from domain.case import SWISS_TIME
from domain.payments import PaymentOrdered
from nervenbahn.accounts import LANGUAGES
from nervenbahn.audit.checkpoints import SigningKey, public_key_text
from nervenbahn.audit.hashing import ChainVerification
from nervenbahn.audit.report_payments import (
    BankOutcome,
    OrderedPayment,
    PaymentMonth,
    payments_beside_entitlement,
)
from nervenbahn.audit.verify import AuditReport
from nervenbahn.web.i18n import DEFAULT_LANGUAGE, N_, chf, day, translations
from nervenbahn.web.labels import FIELDS, FREE_TEXT, label, shown

__all__ = [
    "PAYMENT_COLUMNS",
    "SIGNATURE_FORMAT",
    "CaseReport",
    "Verdict",
    "build_case_report",
    "render_case_report",
    "sign_case_report",
    "write_case_report",
]

SIGNATURE_FORMAT = "nervenbahn report signature v1"


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying the store for the report, as `audit verify` would exit: the
    report shows it first, and never calls anything intact when it is not 0."""

    exit_code: int
    problems: tuple[str, ...]
    """Every finding, one line each (empty when the store verifies)."""
    checkpoints: int
    """How many signed checkpoints were relied on."""
    against: str
    """Which checkpoints: the system's own, or the auditor's copy (named)."""
    auditor_copy: str | None = None
    """The file of the auditor's copy of the checkpoints, if verified against one."""

    @classmethod
    def of(cls, audit: AuditReport, against: str, auditor_copy: str | None = None) -> Verdict:
        """The verdict of a verification of the store."""
        return cls(audit.exit_code, tuple(audit.problems()), audit.checkpoints, against,
                   auditor_copy)

    @property
    def ok(self) -> bool:
        """True if the store verifies."""
        return self.exit_code == 0


@dataclass(frozen=True)
class CaseReport:
    """Everything the audit report of one case shows."""

    case_id: UUID
    as_of: datetime
    generated_at: datetime
    timeline: Sequence[HistoryEntry]
    state: StateAsOf
    months: Sequence[MonthlyAnswer]
    """The budget by month as known at `as_of`."""
    amounts_now: Mapping[date, Decimal]
    """Each of those months' amount as known when the report was made."""
    verifications: Sequence[ChainVerification] = ()
    verification_note: str | None = None
    """Why there is no verification (or anything else the reader must know about it)."""
    region_names: Mapping[str, str] = field(default_factory=dict)
    verdict: Verdict | None = None
    """The whole verification's outcome (chains, access log, snapshots, checkpoints); without
    it, the chains shown alone decide."""
    report_id: UUID = field(default_factory=uuid4)
    """This report's own id: in the page and in its signature."""
    generated_by: str | None = None
    """Who made it: the declared actor and the established identity."""
    payments: Sequence[PaymentMonth] | None = None
    """Payments beside entitlement per month; None if the payments store was not read."""
    outdated_rates: Mapping[date, RateCheck] = field(default_factory=dict)
    """Months whose basic needs are not at the rate in force (`domain.basic_needs`): the
    first such check of the month, as the audit tools flag it (`audit budget`)."""

    @property
    def verified(self) -> bool:
        """True only if there was a verification and it holds."""
        if self.verdict is not None:
            return self.verdict.ok
        return bool(self.verifications) and all(v.ok for v in self.verifications)


def build_case_report(
    service: CaseService,
    case_id: UUID,
    as_of: datetime,
    *,
    now: datetime,
    verifications: Sequence[ChainVerification] = (),
    verification_note: str | None = None,
    verdict: Verdict | None = None,
    generated_by: str | None = None,
    orders: Iterable[PaymentOrdered] | None = None,
    settled: Iterable[BankOutcome] = (),
) -> CaseReport:
    """Gather the report of `case_id` as of `as_of` from the service (no personal data);
    `generated_by` names who asked for it (declared actor, established identity); `orders`,
    the case's payment orders (any recorded time: those after `as_of` are left out), puts
    the payments beside the entitlement, with what the bank did with them (`settled`: the
    case's settlement events, those after `as_of` left out)."""
    state = StateAsOf.of(service.case_as_of(case_id, as_of), as_of)
    months = service.budget_by_month(case_id, as_of)
    amounts_now = {
        answer.month: service.budget_as_known_at(case_id, answer.month, now).amount
        for answer in months
    }
    outdated = {}
    for answer in months:
        checks = month_rate_checks(answer.entitlement.segments, service.reference.skos,
                                   state.household_size)
        first = next((check for check in checks if check.outdated), None)
        if first is not None:
            outdated[answer.month] = first
    return CaseReport(
        case_id=case_id,
        as_of=as_of,
        generated_at=now,
        timeline=service.history(case_id),
        state=state,
        months=months,
        amounts_now=amounts_now,
        verifications=verifications,
        verification_note=verification_note,
        region_names={rid: region.name for rid, region in service.reference.regions.items()},
        verdict=verdict,
        generated_by=generated_by,
        outdated_rates=outdated,
        payments=None if orders is None else payments_beside_entitlement(
            {answer.month: answer.amount for answer in months}, orders, as_of, settled),
    )


def write_case_report(report: CaseReport, path: Path, language: str = DEFAULT_LANGUAGE) -> Path:
    """Write the report's HTML in `language` to `path` (folders created); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_case_report(report, language), encoding="utf-8")
    return path


def sign_case_report(path: Path, report_id: UUID, key: SigningKey) -> Path:
    """Sign the report file at `path` as written: a detached Ed25519 signature over its
    SHA-256 (the 32 bytes), written beside it as `<name>.sig` (JSON: format, report id,
    sha256, key id, public key, signature); the signature's path. An auditor checks it with
    the public key they keep (docs/audit.md, *Checking a signed report*)."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    signature = {
        "format": SIGNATURE_FORMAT,
        "report_id": str(report_id),
        "sha256": digest.hex(),
        "key_id": key.key_id,
        "public_key": public_key_text(key.public),
        "signature": base64.b64encode(key.private.sign(digest)).decode(),
    }
    target = path.with_name(path.name + ".sig")
    target.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return target


_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1180px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 30px; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; }
thead { display: table-header-group; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.state th { width: 220px; }
tr.after td { color: #888; }
tr.differs td { background: #fdf3eb; }
.ok { color: #1b7a35; font-weight: 600; } .broken { color: #b3261e; font-weight: 600; }
.mark { color: #b3561e; }
.verdict { padding: 10px 14px; margin: 14px 0; border: 2px solid; border-radius: 4px; }
.verdict.ok { border-color: #1b7a35; background: #eef8f0; }
.verdict.broken { border-color: #b3261e; background: #fdeceb; color: #b3261e; font-size: 16px; }
.verdict.none { border-color: #b3561e; background: #fdf3eb; }
code { font-size: 12px; word-break: break-all; }
@media print { body { margin: 0; max-width: none; font-size: 10px; }
               h2 { break-after: avoid; } tr, .verdict { break-inside: avoid; }
               th { background: none; border-bottom: 2px solid #888; }
               tr.differs td { background: none; font-weight: 600; } }
"""

_PAGE = """
@page {{ size: A4 landscape; margin: 18mm 12mm 16mm 12mm;
  @top-left {{ content: "{head}"; font: 9px system-ui, sans-serif; color: #555; }}
  @bottom-right {{ content: {pages}; font: 9px system-ui, sans-serif; color: #555; }} }}
"""
"""Every printed page names the report and its page ("Seite 2 von 7"): margin boxes, which
Chromium prints (and Firefox ignores: it prints its own header and footer instead)."""

Gettext = Callable[[str], str]

PAYMENT_COLUMNS: tuple[tuple[str, bool, Callable[[PaymentMonth, Gettext], str]], ...] = (
    (N_("Month"), False, lambda m, _: m.month.strftime("%m.%Y")),
    (N_("Entitlement as known then"), True, lambda m, _: chf(m.entitlement)),
    (N_("Ordered up to then"), True, lambda m, _: chf(m.ordered)),
    (N_("Executed by the bank"), True, lambda m, _: chf(m.executed)),
    (N_("Orders (kind, amount, recorded)"), False, lambda m, _: _orders(m, _)),
    (N_("Difference"), True, lambda m, _: _signed(m.difference)),
)
"""The payments table's columns: (title, numeric, cell text). A figure to add (what the bank
executed, from pain.002 and camt.054) is one more line here."""


def render_case_report(report: CaseReport, language: str = DEFAULT_LANGUAGE) -> str:
    """The report as one self-contained HTML page in `language` (de or fr): labels instead
    of codes, dates 31.12.2026, amounts CHF 1'234.50."""
    if language not in LANGUAGES:
        raise ValueError(f"language: {language!r} is not one of {', '.join(LANGUAGES)}")
    _ = translations(language).gettext
    title = _("Audit report: case %(case)s as of %(time)s") % {
        "case": report.case_id, "time": _swiss(report.as_of)}
    if _failed(report):
        title = _("NOT VERIFIED") + f" – {title}"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{language}"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}{_page_style(report, _)}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        '<p class="meta">' + escape(_(
            "What nervenbahn knew about this case at %(time)s (Swiss time), from its recorded "
            "events. Recorded times are when the system learned a fact, effective dates from "
            "when it holds. No personal data is shown.") % {"time": _swiss(report.as_of)})
        + "</p>",
        _provenance(report, _),
        _verdict(report, _),
        _h2(_("Verification")),
        _verification(report, _),
        _h2(_("State as of %(time)s") % {"time": _swiss(report.as_of)}),
        _state(report, _),
        _h2(_("Budget by month as known then")),
        _months(report, _),
        _h2(_("Payments beside entitlement")),
        _payments(report, _),
        _h2(_("Timeline")),
        _timeline(report, _),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------


def _page_style(report: CaseReport, _: Gettext) -> str:
    """The printed pages' header (report id) and footer ("Seite N von M")."""
    head = _("Audit report %(id)s, case %(case)s") % {"id": report.report_id,
                                                       "case": report.case_id}
    words = _("Page {page} of {pages}")
    pages = " ".join(
        f"counter({part[1:-1]})" if part in ("{page}", "{pages}") else _css_string(part)
        for part in re.split(r"(\{page\}|\{pages\})", words) if part)
    return _PAGE.format(head=_css_text(head), pages=pages)


def _provenance(report: CaseReport, _: Gettext) -> str:
    """Which report this is, when and by whom it was made (the signature names the id)."""
    rows = [(_("Report id"), str(report.report_id)),
            (_("Generated"), _("%(time)s (Swiss time)") % {"time": _swiss(report.generated_at)}),
            (_("Generated by"), report.generated_by or "–")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="provenance" class="state"><tbody>{body}</tbody></table>'


def _failed(report: CaseReport) -> bool:
    """A verification ran and does not hold."""
    if report.verdict is not None:
        return not report.verdict.ok
    return any(not v.ok for v in report.verifications)


def _verdict(report: CaseReport, _: Gettext) -> str:
    """The outcome first, impossible to miss: a failed verification in red with every
    finding; never "verified" unless everything holds."""
    verdict = report.verdict
    if _failed(report):
        problems = (verdict.problems if verdict is not None else tuple(
            f"{v.chain}: " + _("broken at position %(position)s: %(reason)s") % {
                "position": b.position, "reason": b.reason}
            for v in report.verifications for b in v.all_breaks))
        code = (" " + _("(exit code %(code)s, as `audit verify`)") % {"code": verdict.exit_code}
                if verdict else "")
        items = "".join(f"<li>{escape(p)}</li>" for p in problems)
        return ('<div id="verdict" class="verdict broken"><strong>' + escape(
            _("NOT VERIFIED: the store does not match what was recorded and signed") + code
            + ". " + _("Nothing in this report is vouched for by the hash chains."))
            + f"</strong><ul>{items}</ul></div>")
    if not report.verified:
        return ('<p id="verdict" class="verdict none"><strong>' + escape(_("Not verified."))
                + f"</strong> {escape(report.verification_note or '')}</p>")
    if verdict is not None:
        against = (_("the auditor's copy %(file)s and the system's own checkpoints")
                   % {"file": verdict.auditor_copy} if verdict.auditor_copy
                   else _("the system's own checkpoints"))
        text = _("every hash chain, snapshot and signed checkpoint holds against %(count)s "
                 "signed checkpoints (%(against)s).") % {"count": verdict.checkpoints,
                                                        "against": against}
    else:
        text = _("every hash chain and signed checkpoint holds.")
    return ('<p id="verdict" class="verdict ok"><strong>' + escape(_("Verified:"))
            + f"</strong> {escape(text)}</p>")


def _verification(report: CaseReport, _: Gettext) -> str:
    note = (
        f'<p class="meta">{escape(report.verification_note)}</p>'
        if report.verification_note else ""
    )
    if not report.verifications:
        return _para(_("Not verified."), id_="verification-none") + note
    rows = []
    intact = ('<span class="ok">' + escape(_("intact")) + "</span>" if not _failed(report)
              else escape(_("no break in this chain (but the verification failed: see above)")))
    for v in report.verifications:
        outcome = intact
        if v.first_break is not None:
            broken = _("broken at position %(position)s: %(reason)s") % {
                "position": v.first_break.position, "reason": v.first_break.reason}
            outcome = f'<span class="broken">{escape(broken)}</span>'
        rows.append(_row([
            escape(v.chain), outcome, _num(str(v.records)),
            f"{v.head.position}: <code>{escape(v.head.hash.hex())}</code>",
            escape(_checkpoint(v, _)),
        ]))
    head = _head([_("Chain"), _("Result"), _("Records"), _("Head (position: hash)"),
                  _("Verified against checkpoint")], numeric={2})
    return f'<table id="verification">{head}<tbody>{"".join(rows)}</tbody></table>{note}'


def _checkpoint(v: ChainVerification, _: Gettext) -> str:
    checked = _("%(count)s checked") % {"count": v.checkpoints_checked}
    if v.checkpoint is None:
        return _("none") + f" ({checked})"
    cp: dict[str, Any] = dict(v.checkpoint)
    names = {"sequence": _("sequence"), "created_at": _("created"),
             "position": _("position")}
    known = [f"{names[key]} {_checkpoint_value(cp[key])}" for key in names if key in cp]
    text = ", ".join(known) if known else ", ".join(f"{k} {val}" for k, val in cp.items())
    return f"{text} ({checked})"


def _checkpoint_value(value: Any) -> str:
    """A checkpoint's time in Swiss time and format, other values as they are."""
    if isinstance(value, str) and "T" in value:
        try:
            return _swiss(datetime.fromisoformat(value))
        except ValueError:
            return value
    return str(value)


def _state(report: CaseReport, _: Gettext) -> str:
    s = report.state
    region = report.region_names.get(s.social_region, s.social_region)
    rows = [
        (_("Version"), _("%(version)s (last recorded %(time)s)") % {
            "version": s.version, "time": _swiss(s.last_recorded_at)}),
        (_("Phase"), label(s.phase, _)),
        (_("Social region"), f"{region} ({s.social_region})"),
        (_("Municipality (BFS)"), str(s.municipality_bfs)),
        (_("Opened on"), day(s.opened_on)),
        (_("Household"), _("%(size)s person(s), %(persons)s recorded") % {
            "size": s.household_size, "persons": s.persons}),
        (_("Assessment"), _fields(s.assessment, _)),
        (_("Decision"), _fields(s.decision, _)),
        (_("Support periods"), "; ".join(
            f"{day(p.start)} – " + (day(p.until) if p.until else _("open"))
            for p in s.support_periods) or "–"),
        (_("Budget in force"), _budget(s, _)),
        (_("Budget versions"), str(s.budget_versions)),
        (_("Goals"), "; ".join(
            _("%(category)s due %(due)s: %(status)s") % {
                "category": label(g.category, _), "due": day(g.due_date),
                "status": label(g.status, _)} for g in s.goals) or "–"),
        (_("Measures"), "; ".join(
            _("%(kind)s from %(start)s: %(status)s") % {
                "kind": label(m.kind, _), "start": day(m.start_date),
                "status": label(m.status, _)} for m in s.measures) or "–"),
        (_("Next review due"), day(s.next_review_due) or "–"),
        (_("Handovers"), "; ".join(
            f"{h.from_region} → {h.to_region} ({day(h.effective_date)})"
            for h in s.handovers) or "–"),
        (_("Closure"), _fields(s.closure, _)),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="state" class="state"><tbody>{body}</tbody></table>'


def _budget(s: StateAsOf, _: Gettext) -> str:
    if s.budget is None:
        return "–"
    lines = ", ".join(f"{label(line.code, _)} {chf(line.amount)}" for line in s.budget.lines)
    return _("%(total)s from %(date)s (%(reason)s; %(lines)s)") % {
        "total": chf(s.budget.total), "date": day(s.budget.effective_date),
        "reason": label(s.budget.reason, _), "lines": lines}


def _months(report: CaseReport, _: Gettext) -> str:
    if not report.months:
        return _para(_("No support had been granted by then."), id_="months-none")
    rows = []
    for answer in report.months:
        now = report.amounts_now.get(answer.month)
        later = (
            '<span class="mark">' + escape(_("changed later: now %(amount)s (%(difference)s)")
                                           % {"amount": chf(now),
                                              "difference": _signed(now - answer.amount)})
            + "</span>" if now is not None and now != answer.amount else ""
        )
        rate = report.outdated_rates.get(answer.month)
        if rate is not None:
            later += (" " if later else "") + '<span class="mark">' + escape(
                _("basic needs at an outdated rate: %(amount)s, the rate in force from "
                  "%(date)s gives %(expected)s") % {
                    "amount": chf(rate.amount), "date": day(rate.rate.valid_from),
                    "expected": chf(rate.expected)}) + "</span>"
        budgets = ", ".join(
            _("%(total)s from %(date)s (#%(version)s)") % {
                "total": chf(b.budget.total), "date": day(b.budget.effective_date),
                "version": b.event.version} for b in answer.budgets) or "–"
        rows.append(_row([
            escape(answer.month.strftime("%m.%Y")),
            _num(f"{answer.supported_days}/{answer.days_in_month}"),
            _num(chf(answer.amount)),
            escape(budgets),
            escape(", ".join(f"#{r.version} {label(r.event, _)}" for r in answer.rests_on)
                   or "–"),
            later,
        ]))
    head = _head([_("Month"), _("Supported days"), _("Amount"),
                  _("Budgets in force (event #)"), _("Rests on"),
                  _("Changed by a later record")], numeric={1, 2})
    note = _("Pro rata by calendar days, rounded once per month.")
    if report.outdated_rates:
        note += " " + _("Months with basic needs at an outdated rate (the yearly adjustment "
                        "was not recorded): %(count)s.") % {"count": len(report.outdated_rates)}
    return (f'<table id="months">{head}<tbody>{"".join(rows)}</tbody></table>'
            + _para(note, css="meta"))


def _payments(report: CaseReport, _: Gettext) -> str:
    """Per month: owed as known then, ordered up to then, the difference; a month where
    they differ is marked."""
    if report.payments is None:
        return _para(_("The payments store was not read."), id_="payments-none")
    if not report.payments:
        return _para(_("Nothing owed and nothing ordered."), id_="payments-none")
    rows = []
    for month in report.payments:
        cells = [_num(text(month, _)) if numeric else escape(text(month, _))
                 for _title, numeric, text in PAYMENT_COLUMNS]
        rows.append(_row(cells, css="differs" if month.differs else ""))
    head = _head([_(title) for title, _numeric, _text in PAYMENT_COLUMNS],
                 numeric={i for i, (_t, numeric, _x) in enumerate(PAYMENT_COLUMNS) if numeric})
    differing = sum(1 for month in report.payments if month.differs)
    note = _("Months where ordered and owed differ: %(count)s (marked). Claim-backs count "
             "negative, held orders count nothing until a later run orders them.") % {
        "count": differing}
    refused = sum((month.refused for month in report.payments), Decimal(0))
    if refused:
        note += " " + _("The bank rejected or returned CHF %(amount)s: that counts as not "
                        "ordered, and a later run orders it again.") % {"amount": chf(refused)}
    return (f'<table id="payments">{head}<tbody>{"".join(rows)}</tbody></table>'
            + _para(note, css="meta"))


def _orders(month: PaymentMonth, _: Gettext) -> str:
    if not month.orders:
        return "–"
    return "; ".join(
        (_("%(kind)s (held)") if order.held else "%(kind)s") % {"kind": label(order.kind, _)}
        + f" {chf(order.amount)}, {_swiss(order.recorded_at)}" + _bank(order, _)
        for order in month.orders)


def _bank(order: OrderedPayment, _: Gettext) -> str:
    """The bank's answer to an order, if any: ", executed", ", rejected (AC04)" …"""
    if order.outcome is None:
        return ""
    reason = f" ({order.reason_code})" if order.reason_code else ""
    amount = f" {chf(order.refused)}" if order.outcome == "returned" else ""
    return f", {label(order.outcome, _)}{amount}{reason}"


def _timeline(report: CaseReport, _: Gettext) -> str:
    rows = []
    for entry in report.timeline:
        known = entry.recorded_at <= report.as_of
        actor = entry.actor
        cells = [
            _num(str(entry.version)),
            escape(_swiss(entry.recorded_at)),
            escape(_effective(entry.effective_date)),
            escape(f"{actor.user_id} / {label(actor.role, _)} / {actor.organisation}"),
            escape(str(entry.recorded_by) if entry.recorded_by.is_known else _("unknown")),
            escape(label(entry.event, _)),
            escape(_source(entry, _)),
            escape(_("yes") if known else _("no (recorded later)")),
            escape(_details(entry.details, _)),
        ]
        rows.append(_row(cells, css="" if known else "after"))
    head = _head([_("#"), _("Recorded (Swiss time)"), _("Effective"),
                  _("Actor (user / role / organisation)"), _("Recorded by (established)"),
                  _("Event"), _("Source"), _("Known then"), _("Details")], numeric={0})
    return f'<table id="timeline">{head}<tbody>{"".join(rows)}</tbody></table>'


def _source(entry: HistoryEntry, _: Gettext) -> str:
    """live, or imported with who imported which file when."""
    if not entry.imported:
        return _("live")
    origin = entry.import_origin
    if origin is None:
        return _("imported (origin not recorded)")
    importer = origin.importer
    text = _("imported %(time)s by %(importer)s from %(file)s (SHA-256 %(sha256)s)") % {
        "time": _swiss(origin.imported_at),
        "importer": f"{importer.user_id}/{label(importer.role, _)}/{importer.organisation}",
        "file": origin.file_name, "sha256": origin.file_sha256}
    if origin.forced_reason:
        text += "; " + _("forced: %(reason)s") % {"reason": origin.forced_reason}
    return text


# --- helpers ---------------------------------------------------------------------------------


def _para(text: str, *, id_: str = "", css: str = "") -> str:
    """A paragraph of `text` (escaped), with an id or a class."""
    attrs = (f' id="{id_}"' if id_ else "") + (f' class="{css}"' if css else "")
    return f"<p{attrs}>{escape(text)}</p>"


def _h2(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def _head(titles: list[str], numeric: frozenset[int] | set[int] = frozenset()) -> str:
    cells = "".join(
        f'<th class="num">{escape(t)}</th>' if i in numeric else f"<th>{escape(t)}</th>"
        for i, t in enumerate(titles)
    )
    return f"<thead><tr>{cells}</tr></thead>"


def _row(cells: list[str], css: str = "") -> str:
    """A row of cells already escaped (or built from escaped parts)."""
    attr = f' class="{css}"' if css else ""
    tds = "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in cells)
    return f"<tr{attr}>{tds}</tr>"


def _num(text: str) -> str:
    return f'<td class="num">{escape(text)}</td>'


def _swiss(moment: datetime) -> str:
    """31.12.2026 14:05:09, Swiss time (seconds: an audit orders events recorded close)."""
    return moment.astimezone(SWISS_TIME).strftime("%d.%m.%Y %H:%M:%S")


def _effective(value: Any) -> str:
    return day(value) if isinstance(value, date | str) and value else str(value)


def _signed(amount: Decimal) -> str:
    """CHF +200.00, CHF -1'234.50, CHF 0.00."""
    return f"CHF {'+' if amount > 0 else ''}{chf(amount, currency=False)}"


def _fields(value: Mapping[str, Any] | None, _: Gettext) -> str:
    """A record's fields by their labels, their values as a page shows them."""
    if not value:
        return "–"
    return "; ".join(f"{_field(key, _)}: {_value(key, item, _)}" for key, item in value.items())


def _details(details: Mapping[str, Any], _: Gettext) -> str:
    return _fields(details, _) if details else ""


def _field(key: str, _: Gettext) -> str:
    return _(FIELDS[key]) if key in FIELDS else key


def _value(key: str, value: Any, _: Gettext) -> str:
    if value is None or value == [] or value == ():
        return "–"
    if key in FREE_TEXT:
        return str(value)
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return day(value)
    return shown(value, _)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _css_string(text: str) -> str:
    return f'"{_css_text(text)}"'


def _css_text(text: str) -> str:
    """`text` safe inside a CSS string in a <style> element."""
    return "".join(ch if ch.isalnum() or ch in " .,:;()-#/'" else f"\\{ord(ch):x} "
                   for ch in text)
