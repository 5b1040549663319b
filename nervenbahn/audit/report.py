"""The audit report of one case as of a recorded time: a self-contained HTML page.

It shows the full timeline (recorded time in Swiss time, effective date, declared actor, the
identity the recording edge established, event, live or imported with its origin (importer,
file, SHA-256), and whether it was known at the report's time), the state at that time, the
budget by month as known then (marking months a later record changed), and the result
of verifying the store's hash chains with the checkpoint they were verified against.

Presentation only: the answers come from `domain.application.cases.CaseService` (bitemporal queries)
and the verification from `nervenbahn.audit.verify`. No personal data is shown. Built with
the standard library; every value is escaped; no JavaScript, no external assets.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
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
from domain.case import SWISS_TIME
from nervenbahn.audit.checkpoints import SigningKey, public_key_text
from nervenbahn.audit.hashing import ChainVerification
from nervenbahn.audit.verify import AuditReport

__all__ = [
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

    @classmethod
    def of(cls, audit: AuditReport, against: str) -> Verdict:
        """The verdict of a verification of the store."""
        return cls(audit.exit_code, tuple(audit.problems()), audit.checkpoints, against)

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
) -> CaseReport:
    """Gather the report of `case_id` as of `as_of` from the service (no personal data);
    `generated_by` names who asked for it (declared actor, established identity)."""
    state = StateAsOf.of(service.case_as_of(case_id, as_of), as_of)
    months = service.budget_by_month(case_id, as_of)
    amounts_now = {
        answer.month: service.budget_as_known_at(case_id, answer.month, now).amount
        for answer in months
    }
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
    )


def write_case_report(report: CaseReport, path: Path) -> Path:
    """Write the report's HTML to `path` (folders created); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_case_report(report), encoding="utf-8")
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
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.state th { width: 220px; }
tr.after td { color: #888; }
.ok { color: #1b7a35; font-weight: 600; } .broken { color: #b3261e; font-weight: 600; }
.mark { color: #b3561e; }
.verdict { padding: 10px 14px; margin: 14px 0; border: 2px solid; border-radius: 4px; }
.verdict.ok { border-color: #1b7a35; background: #eef8f0; }
.verdict.broken { border-color: #b3261e; background: #fdeceb; color: #b3261e; font-size: 16px; }
.verdict.none { border-color: #b3561e; background: #fdf3eb; }
code { font-size: 12px; word-break: break-all; }
@media print { body { margin: 0; max-width: none; font-size: 11px; }
               h2 { break-after: avoid; } tr { break-inside: avoid; }
               th { background: none; border-bottom: 2px solid #888; } }
"""


def render_case_report(report: CaseReport) -> str:
    """The report as one self-contained HTML page."""
    title = f"Audit report: case {report.case_id} as of {_swiss(report.as_of)}"
    if _failed(report):
        title = f"NOT VERIFIED – {title}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">What nervenbahn knew about this case at {escape(_swiss(report.as_of))}'
        f" (Swiss time), from its recorded events. Recorded times are when the system learned "
        "a fact, effective dates from when it holds. No personal data is shown.</p>",
        _provenance(report),
        _verdict(report),
        "<h2>Verification</h2>",
        _verification(report),
        f"<h2>State as of {escape(_swiss(report.as_of))}</h2>",
        _state(report),
        "<h2>Budget by month as known then</h2>",
        _months(report),
        "<h2>Timeline</h2>",
        _timeline(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------


def _provenance(report: CaseReport) -> str:
    """Which report this is, when and by whom it was made (the signature names the id)."""
    rows = [("report id", str(report.report_id)),
            ("generated", f"{_swiss(report.generated_at)} (Swiss time)"),
            ("generated by", report.generated_by or "–")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="provenance" class="state"><tbody>{body}</tbody></table>'


def _failed(report: CaseReport) -> bool:
    """A verification ran and does not hold."""
    if report.verdict is not None:
        return not report.verdict.ok
    return any(not v.ok for v in report.verifications)


def _verdict(report: CaseReport) -> str:
    """The outcome first, impossible to miss: a failed verification in red with every
    finding; never "verified" unless everything holds."""
    verdict = report.verdict
    if _failed(report):
        problems = (verdict.problems if verdict is not None else tuple(
            f"{v.chain}: bad position {b.position}: {b.reason}"
            for v in report.verifications for b in v.all_breaks))
        code = f" (exit code {verdict.exit_code}, as `audit verify`)" if verdict else ""
        items = "".join(f"<li>{escape(p)}</li>" for p in problems)
        return (f'<div id="verdict" class="verdict broken"><strong>NOT VERIFIED: the store '
                f"does not match what was recorded and signed{escape(code)}. Nothing in this "
                f"report is vouched for by the hash chains.</strong><ul>{items}</ul></div>")
    if not report.verified:
        return ('<p id="verdict" class="verdict none"><strong>Not verified.</strong> '
                f"{escape(report.verification_note or '')}</p>")
    against = (f" against {verdict.checkpoints} signed checkpoints ({verdict.against})"
               if verdict is not None else "")
    return ('<p id="verdict" class="verdict ok"><strong>Verified:</strong> every hash chain'
            f"{', snapshot' if verdict is not None else ''} and signed checkpoint holds"
            f"{escape(against)}.</p>")


def _verification(report: CaseReport) -> str:
    note = (
        f'<p class="meta">{escape(report.verification_note)}</p>'
        if report.verification_note else ""
    )
    if not report.verifications:
        return f'<p id="verification-none">Not verified.</p>{note}'
    rows = []
    intact = ('<span class="ok">intact</span>' if not _failed(report)
              else "no break in this chain (but the verification failed: see above)")
    for v in report.verifications:
        outcome = intact
        if v.first_break is not None:
            outcome = (f'<span class="broken">broken at position {v.first_break.position}: '
                       f"{escape(v.first_break.reason)}</span>")
        rows.append(_row([
            escape(v.chain), outcome, _num(str(v.records)),
            f"{v.head.position}: <code>{escape(v.head.hash.hex())}</code>",
            escape(_checkpoint(v)),
        ]))
    head = _head(["chain", "result", "records", "head (position: hash)",
                  "verified against checkpoint"], numeric={2})
    return f'<table id="verification">{head}<tbody>{"".join(rows)}</tbody></table>{note}'


def _checkpoint(v: ChainVerification) -> str:
    if v.checkpoint is None:
        return f"none ({v.checkpoints_checked} checked)"
    cp: dict[str, Any] = dict(v.checkpoint)
    known = [f"{key} {cp[key]}" for key in ("sequence", "created_at", "position") if key in cp]
    text = ", ".join(known) if known else ", ".join(f"{k} {val}" for k, val in cp.items())
    return f"{text} ({v.checkpoints_checked} checked)"


def _state(report: CaseReport) -> str:
    s = report.state
    region = report.region_names.get(s.social_region, s.social_region)
    budget = (
        f"CHF {s.budget.total} from {s.budget.effective_date} ({s.budget.reason}; "
        + ", ".join(f"{line.code} {line.amount}" for line in s.budget.lines) + ")"
        if s.budget else "–"
    )
    periods = "; ".join(
        f"{p.start} – {p.until if p.until else 'open'}" for p in s.support_periods
    ) or "–"
    rows = [
        ("version", f"{s.version} (last recorded {_swiss(s.last_recorded_at)})"),
        ("phase", s.phase),
        ("social region", f"{region} ({s.social_region})"),
        ("municipality (BFS)", str(s.municipality_bfs)),
        ("opened on", str(s.opened_on)),
        ("household", f"{s.household_size} person(s), {s.persons} recorded"),
        ("assessment", _mapping(s.assessment)),
        ("decision", _mapping(s.decision)),
        ("support periods", periods),
        ("budget in force", budget),
        ("budget versions", str(s.budget_versions)),
        ("goals", "; ".join(f"{g.category} due {g.due_date}: {g.status}" for g in s.goals) or "–"),
        ("measures", "; ".join(f"{m.kind} from {m.start_date}: {m.status}" for m in s.measures)
         or "–"),
        ("next review due", str(s.next_review_due or "–")),
        ("handovers", "; ".join(f"{h.from_region} → {h.to_region} on {h.effective_date}"
                                for h in s.handovers) or "–"),
        ("closure", _mapping(s.closure)),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="state" class="state"><tbody>{body}</tbody></table>'


def _months(report: CaseReport) -> str:
    if not report.months:
        return '<p id="months-none">No support had been granted by then.</p>'
    rows = []
    for answer in report.months:
        now = report.amounts_now.get(answer.month)
        later = (
            f'<span class="mark">changed later: now CHF {now} ({_signed(now - answer.amount)})'
            "</span>" if now is not None and now != answer.amount else ""
        )
        budgets = ", ".join(
            f"CHF {b.budget.total} from {b.budget.effective_date} (#{b.event.version})"
            for b in answer.budgets
        ) or "–"
        rows.append(_row([
            escape(answer.month.strftime("%Y-%m")),
            _num(f"{answer.supported_days}/{answer.days_in_month}"),
            _num(str(answer.amount)),
            escape(budgets),
            escape(", ".join(f"#{r.version} {r.event}" for r in answer.rests_on) or "–"),
            later,
        ]))
    head = _head(["month", "supported days", "CHF", "budgets in force (event #)", "rests on",
                  "changed by a later record"], numeric={1, 2})
    return (f'<table id="months">{head}<tbody>{"".join(rows)}</tbody></table>'
            '<p class="meta">Pro rata by calendar days, rounded once per month '
            "(domain/entitlement.py).</p>")


def _timeline(report: CaseReport) -> str:
    rows = []
    for entry in report.timeline:
        known = entry.recorded_at <= report.as_of
        actor = entry.actor
        cells = [
            _num(str(entry.version)),
            escape(_swiss(entry.recorded_at)),
            escape(str(entry.effective_date)),
            escape(f"{actor.user_id} / {actor.role} / {actor.organisation}"),
            escape(str(entry.recorded_by)),
            escape(entry.event),
            escape(entry.source),
            "yes" if known else "no (recorded later)",
            escape(_details(entry.details)),
        ]
        rows.append(_row(cells, css="" if known else "after"))
    head = _head(["#", "recorded (Swiss time)", "effective", "actor (user / role / "
                  "organisation)", "recorded by (established)", "event", "source", "known then",
                  "details"], numeric={0})
    return f'<table id="timeline">{head}<tbody>{"".join(rows)}</tbody></table>'


# --- helpers ---------------------------------------------------------------------------------


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
    return moment.astimezone(SWISS_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _signed(amount: Decimal) -> str:
    return f"+{amount}" if amount > 0 else str(amount)


def _mapping(value: Mapping[str, Any] | None) -> str:
    if not value:
        return "–"
    return ", ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in value.items())


def _details(details: Mapping[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if key == "lines":
            value = ", ".join(f"{line.code} {line.amount}" for line in value)
        parts.append(f"{key}={value}")
    return "; ".join(parts)
