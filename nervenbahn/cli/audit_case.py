"""`nervenbahn audit state|budget|diff|case`: a case as known at a recorded time.

- `audit state ID --as-of T`: the state of the case as recorded up to T (no personal data);
- `audit budget ID --month 2026-03 --as-known-at T`: what was owed for the month as known at
  T, with the budget versions and events it rests on;
- `audit diff ID --month 2026-03 --known-at T1 --compared-to T2`: what changed about the month
  between the two knowledge times, per budget line, and which events caused it;
- `audit case ID --as-of T [--out FILE] [--checkpoints FILE] [--language de|fr]`: the HTML
  audit report in German (default) or French (timeline, state, budget by month, payments
  beside entitlement, and the verification `audit verify` does, against the auditor's copy of
  the checkpoints if given); exits 4 or 5 as `audit verify` when the store does not verify.

A time is an ISO date (the end of that day, Swiss time) or an ISO date-time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.application.bitemporal import BudgetDiff, MonthlyAnswer, StateAsOf
from domain.application.history import HistoryEntry
from domain.application.settlement import Settlements
from domain.basic_needs import RateCheck, check_rate, month_rate_checks, rate_check_dict
from domain.case import SWISS_TIME
from domain.errors import InvalidCommandError
from nervenbahn.accounts import Language
from nervenbahn.audit.checkpoints import CheckpointError, public_key_from_text
from nervenbahn.audit.report import (
    CaseReport,
    Verdict,
    build_case_report,
    sign_case_report,
    write_case_report,
)
from nervenbahn.audit.verify import AuditReport
from nervenbahn.bounds import parse_bounded_month
from nervenbahn.config import ConfigError
from nervenbahn.identity import process_identity

from .audit_chain import verify_everything
from .audit_store import signing_key
from .reads import log_case_read, readable_case
from .render import emit_json
from .session import Session, parse_as_of, session

__all__ = ["register"]

CaseId = Annotated[str, typer.Argument(help="The case id (UUID).")]
TIME_HELP = "an ISO date (the end of that day, Swiss time) or date-time"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `audit` app."""
    app.command("state")(state)
    app.command("budget")(budget)
    app.command("diff")(diff)
    app.command("case")(case_report)


def state(
    ctx: typer.Context,
    case_id: CaseId,
    as_of: Annotated[str, typer.Option("--as-of", help=f"Recorded up to: {TIME_HELP}.")],
) -> None:
    """The state of a case as recorded up to a time (no personal data)."""
    rt = session(ctx)
    moment = _moment("audit state", "as_of", as_of)
    case = readable_case(rt, _uuid("audit state", case_id), moment)
    view = StateAsOf.of(case, moment)
    recorded = [entry for entry in rt.service.history(view.case_id)
                if entry.recorded_at <= moment]
    log_case_read(rt, case, ("case_state",), "audit state")
    rate = check_rate(view.budget, moment.astimezone(SWISS_TIME).date(),
                      rt.service.reference.skos, view.household_size)
    if rt.as_json:
        emit_json(rt.console, {**view.as_dict(),
                               "basic_needs_rate": rate_check_dict(rate) if rate else None,
                               "recorded": [
            {"version": e.version, "event": e.event, "recorded_at": e.recorded_at,
             "actor": e.actor, "recorded_by": str(e.recorded_by), "source": e.source}
            for e in recorded]})
        return
    _print_pairs(rt.console, f"Case {view.case_id} as of {_swiss(moment)}",
                 [*_state_rows(view), ("basic needs rate", _rate_text([rate] if rate else []))])
    _print_recorded(rt.console, recorded)


def budget(
    ctx: typer.Context,
    case_id: CaseId,
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")],
    as_known_at: Annotated[
        str, typer.Option("--as-known-at", help=f"Knowledge time: {TIME_HELP}.")
    ],
) -> None:
    """What a case was owed for a month as known at a time, and what that rests on."""
    rt = session(ctx)
    name = "audit budget"
    uid, first = _uuid(name, case_id), _month(name, month)
    moment = _moment(name, "as_known_at", as_known_at)
    case = readable_case(rt, uid, moment)
    answer = rt.service.budget_as_known_at(uid, first, moment)
    log_case_read(rt, case, ("budget_month",), name)
    checks = month_rate_checks(answer.entitlement.segments, rt.service.reference.skos,
                               case.household_size)
    if rt.as_json:
        emit_json(rt.console, {**answer.as_dict(),
                               "basic_needs_outdated": any(c.outdated for c in checks),
                               "basic_needs_rate": [rate_check_dict(c) for c in checks]})
        return
    _print_answer(rt.console, answer, checks)


def diff(
    ctx: typer.Context,
    case_id: CaseId,
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")],
    known_at: Annotated[str, typer.Option("--known-at", help=f"Earlier time: {TIME_HELP}.")],
    compared_to: Annotated[
        str, typer.Option("--compared-to", help=f"Later time: {TIME_HELP}.")
    ],
) -> None:
    """What changed about a month between two knowledge times, and which events changed it."""
    rt = session(ctx)
    name = "audit diff"
    uid, first = _uuid(name, case_id), _month(name, month)
    earlier = _moment(name, "known_at", known_at)
    later = _moment(name, "compared_to", compared_to)
    case = readable_case(rt, uid, max(earlier, later))
    result = rt.service.diff_as_known(uid, first, earlier, later)
    log_case_read(rt, case, ("budget_month_diff",), name)
    if rt.as_json:
        emit_json(rt.console, result.as_dict())
        return
    _print_diff(rt.console, result)


def case_report(
    ctx: typer.Context,
    case_id: CaseId,
    as_of: Annotated[str, typer.Option("--as-of", help=f"Recorded up to: {TIME_HELP}.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The HTML file (default: audit-<case>-<date>.html).",
                     dir_okay=False),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="The auditor's copy of the checkpoints (JSON Lines "
                     "from `audit checkpoints export`): verify against it, not only the "
                     "store's own.", dir_okay=False),
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="Verify checkpoints with this public key, or the "
                     "file holding it (`audit public-key`); default: the installation's own."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Verify the store as `audit verify`.")
    ] = True,
    language: Annotated[
        Language, typer.Option("--language", help="The report's language: de or fr.")
    ] = "de",
) -> None:
    """Write the HTML audit report of a case as of a time. Exits as `audit verify` would (4 or
    5) when the store does not verify: the report is written all the same, saying so first."""
    rt = session(ctx)
    uid = _uuid("audit case", case_id)
    moment = _moment("audit case", "as_of", as_of)
    # not found: fail before verifying the store; the full verification below checks the
    # case's events too, and the report is written saying so first
    case = readable_case(rt, uid, moment, verified=False)
    audit, note = _verify(rt, public_key, checkpoints) if verify else (None, "verification "
                                                                             "skipped")
    verdict = None if audit is None else Verdict.of(
        audit, _against(checkpoints), None if checkpoints is None else str(checkpoints))
    chains = [] if audit is None else [*audit.chains,
                                       *([audit.access_log] if audit.access_log else [])]
    report = build_case_report(
        rt.service, uid, moment, now=datetime.now(UTC), verifications=chains,
        verification_note=note, verdict=verdict,
        generated_by=f"{rt.declared_actor()} (established: {process_identity()})",
        orders=rt.container.payments.orders(uid),
        settled=Settlements(rt.container.payments).answers_for(uid),
    )
    path = out or Path(f"audit-{uid}-{moment.astimezone(SWISS_TIME):%Y-%m-%d}.html")
    log_case_read(rt, case, ("audit_report",), "audit case")
    write_case_report(report, path, language)
    signature = _sign(rt, report, path)
    _print_outcome(rt, report, path, note, signature)
    if verdict is not None and not verdict.ok:
        raise typer.Exit(verdict.exit_code)


def _sign(rt: Session, report: CaseReport, path: Path) -> Path | str:
    """Sign the written report with the installation's key (`<file>.sig`); without the key,
    why it is not signed."""
    try:
        key = signing_key(rt)
    except ConfigError as exc:
        return f"not signed: {exc}"
    return sign_case_report(path, report.report_id, key)


def _print_outcome(rt: Session, report: CaseReport, path: Path, note: str | None,
                   signature: Path | str) -> None:
    """One line (or the JSON summary): the file, its signature, whether the store verified."""
    verdict = report.verdict
    signed = str(signature) if isinstance(signature, Path) else None
    if rt.as_json:
        emit_json(rt.console, {
            "case_id": report.case_id, "report_id": report.report_id,
            "generated_by": report.generated_by, "signature": signed,
            "not_signed": None if signed else signature, "as_of": report.as_of,
            "report": str(path),
            "events": len(report.timeline), "months": len(report.months),
            "verified": report.verified,
            "exit_code": verdict.exit_code if verdict else None,
            "problems": list(verdict.problems) if verdict else [],
            "checkpoints_from": verdict.against if verdict else None,
            "chains": [v.to_json() for v in report.verifications], "verification_note": note,
        })
        return
    if verdict is not None and not verdict.ok:
        outcome = f"NOT VERIFIED (exit {verdict.exit_code}): " + "; ".join(verdict.problems)
    elif report.verified:
        outcome = "verified: every chain, snapshot and checkpoint holds"
    else:
        outcome = note or "not verified"
    rt.console.print(f"audit report {report.report_id} of case {report.case_id} as of "
                     f"{_swiss(report.as_of)}: {path} ({outcome}); "
                     f"{f'signed: {signed}' if signed else signature}",
                     markup=False, highlight=False)


# --- input -----------------------------------------------------------------------------------


def _uuid(command: str, text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError(command, [("case_id", f"{text!r} is not a UUID")]) from None


def _month(command: str, text: str) -> date:
    try:
        return parse_bounded_month(text)
    except ValueError as exc:
        raise InvalidCommandError(command, [("month", str(exc))]) from None


def _moment(command: str, field: str, text: str) -> datetime:
    return parse_as_of(text, command, field)


def _verify(rt: Session, public_key: str | None, checkpoints: Path | None,
            ) -> tuple[AuditReport | None, str | None]:
    """Verify the store as `audit verify` does (against the auditor's copy if given); no
    verification (with why) if there is neither a public key nor the signing key."""
    try:
        key = (
            public_key_from_text(_key_text(public_key), "--public-key") if public_key
            else signing_key(rt).public
        )
    except CheckpointError as exc:
        raise InvalidCommandError("audit case", [("public_key", str(exc))]) from None
    except ConfigError as exc:
        return None, f"not verified: {exc}"
    audit = verify_everything(rt, key, checkpoints)
    note = "; ".join(audit.notes) or None
    if audit.checkpoints == 0:
        note = "no signed checkpoint yet: the chains were recomputed but not compared with one"
    return audit, note


def _key_text(value: str) -> str:
    """The public key given, or the content of the file it names."""
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else value
    except OSError as exc:
        raise InvalidCommandError("audit case", [("public_key", f"{path}: {exc}")]) from None


def _against(checkpoints: Path | None) -> str:
    if checkpoints is None:
        return "the system's own checkpoints"
    return f"the auditor's copy {checkpoints} and the system's own checkpoints"


# --- output ----------------------------------------------------------------------------------


def _swiss(moment: datetime) -> str:
    return moment.astimezone(SWISS_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _print_pairs(console: Console, title: str, rows: list[tuple[str, str]]) -> None:
    console.print(f"[bold]{escape(title)}[/bold]")
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


def _state_rows(view: StateAsOf) -> list[tuple[str, str]]:
    budget = (
        f"CHF {view.budget.total} from {view.budget.effective_date} ({view.budget.reason})"
        if view.budget else "-"
    )
    periods = "; ".join(f"{p.start} – {p.until or 'open'}" for p in view.support_periods)
    return [
        ("version", f"{view.version} (last recorded {_swiss(view.last_recorded_at)})"),
        ("phase", view.phase),
        ("social region", view.social_region),
        ("municipality (BFS)", str(view.municipality_bfs)),
        ("opened on", str(view.opened_on)),
        ("household", f"{view.household_size} person(s)"),
        ("support periods", periods or "-"),
        ("budget in force", budget),
        ("budget versions", str(view.budget_versions)),
        ("goals", str(len(view.goals))),
        ("measures", str(len(view.measures))),
        ("closure", str(view.closure or "-")),
    ]


def _rate_text(checks: list[RateCheck]) -> str:
    """The basic-needs rate check: OUTDATED with the amounts where a check fails."""
    outdated = [c for c in checks if c.outdated]
    if not checks:
        return "-"
    if not outdated:
        rate = checks[-1].rate
        return f"at the rate in force ({rate.source} from {rate.valid_from})"
    return "; ".join(
        f"[bold red]OUTDATED[/bold red] from {c.day}: CHF {c.amount} for {c.household_size} "
        f"person(s), the rate of {c.day.year} ({c.rate.source} from {c.rate.valid_from}) "
        f"gives CHF {c.expected} ({c.difference:+})"
        for c in outdated)


def _print_answer(console: Console, answer: MonthlyAnswer, checks: list[RateCheck]) -> None:
    _print_pairs(console, (
        f"Case {answer.case_id}, {answer.month:%Y-%m} as known at {_swiss(answer.known_at)}"
    ), [
        ("amount owed", f"CHF {answer.amount}"),
        ("supported days", f"{answer.supported_days} of {answer.days_in_month}"),
        ("case version", str(answer.case_version)),
        ("basic needs rate", _rate_text(checks)),
    ])
    segments = Table(title="Segments", title_justify="left")
    for column in ("from", "to", "days", "monthly budget", "CHF"):
        segments.add_column(column, justify="right" if column in ("days", "CHF") else "left")
    for s in answer.entitlement.segments:
        segments.add_row(str(s.first_day), str(s.last_day), str(s.days), str(s.budget.total),
                         f"{s.amount:.2f}")
    console.print(segments)
    _print_refs(console, "Rests on", answer.rests_on)


def _print_diff(console: Console, result: BudgetDiff) -> None:
    title = (f"Case {result.after.case_id}, {result.after.month:%Y-%m}: known at "
             f"{_swiss(result.before.known_at)} vs {_swiss(result.after.known_at)}")
    table = Table(title=title, title_justify="left")
    for column in ("line", "before", "after", "difference"):
        table.add_column(column, justify="left" if column == "line" else "right")
    for line in result.lines:
        table.add_row(line.code, str(line.before), str(line.after), str(line.difference))
    table.add_row("[bold]total[/bold]", str(result.before.amount), str(result.after.amount),
                  f"[bold]{result.difference}[/bold]")
    console.print(table)
    _print_refs(console, "Caused by", result.caused_by)


def _print_recorded(console: Console, entries: list[HistoryEntry]) -> None:
    """Who recorded the events the state rests on: declared and established identity."""
    table = Table(title="Recorded by", title_justify="left")
    for column in ("#", "recorded (Swiss time)", "event", "actor", "recorded by", "source"):
        table.add_column(column)
    for entry in entries:
        actor = entry.actor
        table.add_row(str(entry.version), _swiss(entry.recorded_at), entry.event,
                      escape(f"{actor.user_id}/{actor.role}/{actor.organisation}"),
                      escape(str(entry.recorded_by)), escape(entry.source))
    console.print(table)


def _print_refs(console: Console, title: str, refs: Any) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("#", "recorded (Swiss time)", "effective", "event", "actor", "recorded by",
                   "source"):
        table.add_column(column)
    for ref in refs:
        actor = ref.actor
        table.add_row(str(ref.version), _swiss(ref.recorded_at), str(ref.effective_date),
                      ref.event, escape(f"{actor.user_id}/{actor.role}/{actor.organisation}"),
                      escape(str(ref.recorded_by)), "imported" if ref.imported else "live")
    console.print(table)
