"""`nervenbahn case …`: one sub-command per domain command, plus show, history and list.

Each command only gathers its options into a dict; validation happens in the domain.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer
from rich.table import Table

from domain.errors import InvalidCommandError

from .audit_store import require_chains_verified
from .inputs import json_object
from .options import (
    AhvNumber,
    BirthDate,
    FamilyName,
    GivenName,
    PostalCode,
    Street,
    Town,
    applicant_input,
)
from .reads import (
    PERSONAL_FIELDS,
    log_case_read,
    readable_case,
    reader,
    require_personal_data,
    require_region,
)
from .render import case_view, emit_json, history_rows, jsonable, print_case, print_history
from .session import parse_as_of, session

app = typer.Typer(help="Record and query social-assistance cases.", no_args_is_help=True)

CaseId = Annotated[str, typer.Argument(help="The case id (UUID).")]
Day = Annotated[str | None, typer.Option(help="Effective date (YYYY-MM-DD); default today.")]
Correlation = Annotated[
    str | None, typer.Option("--correlation-id", help="Correlation id (default: a new one).")
]
Expected = Annotated[
    int | None, typer.Option("--expected-version", help="Refuse if the case moved on since.")
]
Amount = Annotated[str, typer.Option(help="CHF per month, e.g. 1250.00")]


@app.command("open")
def open_case(
    ctx: typer.Context,
    municipality: Annotated[int, typer.Option(help="BFS number of the municipality.")],
    household_size: Annotated[int, typer.Option(help="Persons in the household.")],
    given_name: GivenName,
    family_name: FamilyName,
    ahvn13: AhvNumber,
    birth_date: BirthDate,
    street: Street,
    postal_code: PostalCode,
    town: Town,
    application_date: Day = None,
    case_id: Annotated[str | None, typer.Option(help="Case id (default: a new one).")] = None,
    correlation_id: Correlation = None,
    household_structure: Annotated[
        str | None,
        typer.Option(help="BFS household structure: one_person, single_parent, "
                     "couple_with_children, couple_without_children or other."),
    ] = None,
) -> None:
    """Intake (Anmeldung): open a case for a household in its municipality."""
    applicant = applicant_input(given_name, family_name, ahvn13, birth_date, street,
                                postal_code, town)
    session(ctx).run(
        "open_case",
        {
            "case_id": case_id,
            "municipality_bfs": municipality,
            "household_size": household_size,
            "household_structure": household_structure,
            "applicant": applicant,
            "application_date": application_date,
        },
        correlation_id,
    )


@app.command("assess")
def assess(
    ctx: typer.Context,
    case_id: CaseId,
    need: Annotated[list[str], typer.Option(help="A need (repeatable): financial, housing, …")],
    employability: Annotated[str, typer.Option(help="employable, partially_employable, …")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Record the initial assessment (Erstabklärung)."""
    session(ctx).run(
        "complete_assessment",
        {
            "case_id": case_id,
            "needs": need,
            "employability": employability,
            "assessment_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("grant")
def grant(
    ctx: typer.Context,
    case_id: CaseId,
    support_from: Annotated[str, typer.Option(help="First day of support YYYY-MM-DD.")],
    housing: Amount,
    health_insurance: Amount,
    income: Amount,
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Decide: grant support; the budget is computed from the SKOS guidelines."""
    session(ctx).run(
        "grant_support",
        {
            "case_id": case_id,
            "support_from": support_from,
            "housing": housing,
            "health_insurance": health_insurance,
            "income": income,
            "decision_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("refuse")
def refuse(
    ctx: typer.Context,
    case_id: CaseId,
    reason: Annotated[list[str], typer.Option(help="Reason (repeatable): income_sufficient, …")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Decide: refuse support, with reasons."""
    session(ctx).run(
        "refuse_support",
        {
            "case_id": case_id,
            "reasons": reason,
            "decision_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("goal")
def goal(
    ctx: typer.Context,
    case_id: CaseId,
    category: Annotated[str, typer.Option(help="employment, education, health, …")],
    title: Annotated[str, typer.Option(help="Short title (no personal data).")],
    due: Annotated[str, typer.Option(help="Due date YYYY-MM-DD.")],
    date: Day = None,
    goal_id: Annotated[str | None, typer.Option()] = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Agree a goal (Zielvereinbarung)."""
    session(ctx).run(
        "agree_goal",
        {
            "case_id": case_id,
            "goal_id": goal_id,
            "category": category,
            "title": title,
            "due_date": due,
            "agreed_on": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("goal-outcome")
def goal_outcome(
    ctx: typer.Context,
    case_id: CaseId,
    goal_id: Annotated[str, typer.Argument()],
    outcome: Annotated[str, typer.Argument(help="achieved or missed")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Record that a goal was achieved or missed."""
    session(ctx).run(
        "record_goal_outcome",
        {
            "case_id": case_id,
            "goal_id": goal_id,
            "outcome": outcome,
            "outcome_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("measure-start")
def measure_start(
    ctx: typer.Context,
    case_id: CaseId,
    kind: Annotated[str, typer.Option(help="job_coaching, language_course, rav_registration, …")],
    date: Day = None,
    measure_id: Annotated[str | None, typer.Option()] = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Start an integration measure."""
    session(ctx).run(
        "start_measure",
        {
            "case_id": case_id,
            "measure_id": measure_id,
            "kind": kind,
            "start_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("measure-complete")
def measure_complete(
    ctx: typer.Context,
    case_id: CaseId,
    measure_id: Annotated[str, typer.Argument()],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Record that an integration measure was completed."""
    session(ctx).run(
        "complete_measure",
        {
            "case_id": case_id,
            "measure_id": measure_id,
            "end_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("measure-break-off")
def measure_break_off(
    ctx: typer.Context,
    case_id: CaseId,
    measure_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="no_show, health, found_employment, …")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Record that an integration measure was broken off."""
    session(ctx).run(
        "break_off_measure",
        {
            "case_id": case_id,
            "measure_id": measure_id,
            "reason": reason,
            "end_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("budget")
def budget(
    ctx: typer.Context,
    case_id: CaseId,
    effective: Annotated[str, typer.Option(help="Effective date; may lie in the past.")],
    reason: Annotated[str, typer.Option(help="income_change, rent_change, household_change, …")],
    housing: Amount,
    health_insurance: Amount,
    income: Amount,
    household_size: Annotated[int | None, typer.Option()] = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Change the budget from an effective date (retroactive within a year)."""
    session(ctx).run(
        "change_budget",
        {
            "case_id": case_id,
            "effective_date": effective,
            "reason": reason,
            "housing": housing,
            "health_insurance": health_insurance,
            "income": income,
            "household_size": household_size,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("review")
def review(
    ctx: typer.Context,
    case_id: CaseId,
    outcome: Annotated[str, typer.Option(help="continue, adjust or close_recommended")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Record a periodic review."""
    session(ctx).run(
        "complete_review",
        {
            "case_id": case_id,
            "outcome": outcome,
            "review_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("handover")
def handover(
    ctx: typer.Context,
    case_id: CaseId,
    to_municipality: Annotated[int, typer.Option(help="BFS number of the new municipality.")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Hand the case over to the social region of the new municipality (Fallübergabe)."""
    session(ctx).run(
        "hand_over_case",
        {
            "case_id": case_id,
            "to_municipality_bfs": to_municipality,
            "effective_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("close")
def close(
    ctx: typer.Context,
    case_id: CaseId,
    reason: Annotated[
        str, typer.Option(help="employment, other_insurance, moved_away, death, other")
    ],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Close the case (Ablösung)."""
    session(ctx).run(
        "close_case",
        {
            "case_id": case_id,
            "reason": reason,
            "closing_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("reopen")
def reopen(
    ctx: typer.Context,
    case_id: CaseId,
    reason: Annotated[str, typer.Option(help="reapplication or closed_in_error")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Reopen a closed case."""
    session(ctx).run(
        "reopen_case",
        {
            "case_id": case_id,
            "reason": reason,
            "reopening_date": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("start-advance")
def start_advance(
    ctx: typer.Context,
    case_id: CaseId,
    application_id: Annotated[str, typer.Option(help="The pending EL application (UUID).")],
    advance_from: Annotated[str, typer.Option(help="First day advanced YYYY-MM-DD.")],
    commitment_kind: Annotated[
        str | None, typer.Option(help="commitment or payment_order (SKOS F.2).")
    ] = None,
    commitment_date: Annotated[
        str | None, typer.Option(help="Date of the person's commitment YYYY-MM-DD.")
    ] = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """Advance living costs in view of a pending EL application of a household member."""
    session(ctx).run(
        "start_advance",
        {
            "case_id": case_id,
            "application_id": application_id,
            "advance_from": advance_from,
            "commitment_kind": commitment_kind,
            "commitment_date": commitment_date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("end-advance")
def end_advance(
    ctx: typer.Context,
    case_id: CaseId,
    application_id: Annotated[str, typer.Option(help="The application advanced for (UUID).")],
    reason: Annotated[str, typer.Option(help="decided or withdrawn")],
    date: Day = None,
    expected_version: Expected = None,
    correlation_id: Correlation = None,
) -> None:
    """End the advance for an application that was decided or withdrawn."""
    session(ctx).run(
        "end_advance",
        {
            "case_id": case_id,
            "application_id": application_id,
            "reason": reason,
            "ended_on": date,
            "expected_version": expected_version,
        },
        correlation_id,
    )


@app.command("run")
def run_json(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="Command name, e.g. change_budget.")],
    data: Annotated[str, typer.Argument(help="The command's fields as JSON, or @file.json.")],
    correlation_id: Correlation = None,
) -> None:
    """Execute any command given as JSON (for scripts and other programs)."""
    session(ctx).run(command, json_object(command, data), correlation_id)


@app.command("show")
def show(
    ctx: typer.Context,
    case_id: CaseId,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Replay only what was recorded up to this time "
            "(a date means the end of that day, Swiss time).",
        ),
    ] = None,
) -> None:
    """Show the state of a case, now or as recorded at an earlier time."""
    rt = session(ctx)
    moment = parse_as_of(as_of) if as_of else None
    case = readable_case(rt, _uuid(case_id), moment)
    require_personal_data(rt)
    view = case_view(case, rt.service.reference, moment)
    log_case_read(rt, case, PERSONAL_FIELDS, "case show" + (" --as-of" if moment else ""))
    if rt.as_json:
        emit_json(rt.console, view)
    else:
        print_case(rt.console, view)


@app.command("history")
def history(ctx: typer.Context, case_id: CaseId) -> None:
    """List every event of a case with its recorded time and effective date."""
    rt = session(ctx)
    uid = _uuid(case_id)
    case = readable_case(rt, uid)
    entries = rt.service.history(uid)
    log_case_read(rt, case, ("history",), "case history")
    if rt.as_json:
        emit_json(rt.console, history_rows(entries))
    else:
        print_history(rt.console, uid, entries)


@app.command("list")
def list_cases(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(help="Only this social region id.")] = None,
    phase: Annotated[str | None, typer.Option(help="Only this phase.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many cases.", min=1, max=100_000)] = 20,
) -> None:
    """List cases (no personal data), optionally by region and phase; a caseworker's or
    supervisor's own region only."""
    rt = session(ctx)
    if region:
        require_region(rt, region)
    who = reader(rt)
    require_chains_verified(rt, "the case list", {"cases"})
    rows = []
    for uid in rt.service.case_ids():
        case = rt.service.get_case(uid)
        if (region and case.social_region != region) or (phase and case.phase != phase):
            continue
        if not who.may_read(case.social_region):
            continue
        budget = case.budgets[-1].total if case.budgets and case.phase == "supported" else None
        rows.append(
            {
                "case_id": case.id,
                "social_region": case.social_region,
                "municipality_bfs": case.municipality_bfs,
                "phase": case.phase,
                "opened_on": case.opened_on,
                "monthly_budget": budget,
            }
        )
        if len(rows) >= limit:
            break
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table(title=f"Cases ({len(rows)} shown)", title_justify="left")
    for column in ("case id", "social region", "BFS", "phase", "opened on", "CHF/month"):
        table.add_column(column)
    for row in jsonable(rows):
        table.add_row(*(str(value or "-") for value in row.values()))
    rt.console.print(table)


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError("case", [("case_id", f"{text!r} is not a UUID")]) from None
