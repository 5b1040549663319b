"""Presentation: readable tables by default, JSON for machines."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.application.history import HistoryEntry
from domain.case import SWISS_TIME, Case
from domain.commands import is_invisible
from domain.events import BudgetVersion
from domain.personal_data import ErasedPersonalData, PersonalData, SealedPersonalData
from domain.reference import ReferenceData

__all__ = [
    "JsonOption",
    "case_view",
    "emit_json",
    "history_rows",
    "jsonable",
    "print_case",
    "print_history",
    "shown",
]


def jsonable(value: Any) -> Any:
    """Turn domain values into JSON-compatible ones (amounts as strings, never floats)."""
    if isinstance(value, PersonalData | ErasedPersonalData | SealedPersonalData):
        return value.to_plain()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def shown(text: str) -> str:
    """`text` as a table shows it: control and invisible characters (recorded before they
    were refused) written as `\\u202e`, Rich markup escaped — a name cannot recolour the
    terminal, reverse the line or become a link."""
    visible = "".join(
        f"\\u{ord(char):04x}" if is_invisible(char) else char
        for char in text
    )
    return escape(visible)


def emit_json(console: Console, value: Any) -> None:
    """Print one JSON document (plain, for machines: no markup, no highlighting)."""
    console.file.write(json.dumps(jsonable(value), ensure_ascii=False, indent=2) + "\n")


def _version_shown(budget: BudgetVersion | None) -> dict[str, Any] | None:
    """A budget version's fields; `changed` only where the version names the lines it changes
    (a whole-budget version shows as it did before lines had timelines of their own)."""
    if budget is None:
        return None
    shown = {f.name: getattr(budget, f.name) for f in dataclasses.fields(budget)}
    if budget.changed is None:
        del shown["changed"]
    return shown


def case_view(
    case: Case, reference: ReferenceData, as_of: datetime | None = None
) -> dict[str, Any]:
    """What `case show` presents: the state of a case, with its current budget."""
    municipality = reference.municipalities.get(case.municipality_bfs)
    budget = case.budgets[-1] if case.budgets else None
    return {
        "case_id": case.id,
        "as_of": as_of,
        "version": case.version,
        "last_recorded_at": case.modified_on,
        "phase": case.phase,
        "social_region": case.social_region,
        "social_region_name": reference.regions[case.social_region].name,
        "municipality_bfs": case.municipality_bfs,
        "municipality_name": municipality.name if municipality else None,
        "opened_on": case.opened_on,
        "household_size": case.household_size,
        "applicant": case.applicant,
        "other_members": case.other_members,
        "assessment": case.assessment,
        "decision": case.decision,
        "support_periods": case.support_periods,
        "budget": _version_shown(budget),
        "budget_versions": len(case.budgets),
        "goals": list(case.goals.values()),
        "measures": list(case.measures.values()),
        "last_review_on": case.last_review_on,
        "next_review_due": case.next_review_due,
        "handovers": case.handovers,
        "closure": case.closure,
        "reopenings": case.reopenings,
    }


def print_case(console: Console, view: dict[str, Any]) -> None:
    """Print a case as a few readable tables."""
    plain = jsonable(view)
    title = f"Case {plain['case_id']}" + (f" as of {plain['as_of']}" if plain["as_of"] else "")
    summary = Table(title=title, show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    applicant = plain["applicant"]
    rows = [
        ("phase", plain["phase"]),
        ("social region", f"{plain['social_region_name']} ({plain['social_region']})"),
        ("municipality", f"{plain['municipality_name']} (BFS {plain['municipality_bfs']})"),
        ("opened on", plain["opened_on"]),
        ("household", f"{plain['household_size']} person(s)"),
        ("applicant", f"{applicant['given_name']} {applicant['family_name']}"),
        ("person id", applicant["person_id"]),
        ("AHVN13", applicant["ahvn13"]),
        ("birth date", applicant["birth_date"]),
        ("address", f"{applicant['street']}, {applicant['postal_code']} {applicant['town']}"),
        ("other members", _members(plain["other_members"])),
        ("assessment", _assessment(plain["assessment"])),
        ("decision", _decision(plain["decision"])),
        ("next review due", plain["next_review_due"] or "-"),
        ("closure", _closure(plain["closure"])),
        ("version", f"{plain['version']} (last recorded {plain['last_recorded_at']})"),
    ]
    for label, value in rows:
        summary.add_row(label, shown(str(value)))
    console.print(summary)
    if plain["budget"]:
        _print_budget(console, plain["budget"], plain["budget_versions"])
    _print_items(console, "Goals", plain["goals"], ("category", "title", "due_date", "status"))
    _print_items(
        console, "Measures", plain["measures"], ("kind", "start_date", "status", "end_date")
    )


def history_rows(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    """History entries as plain dicts (the established identity as one string, e.g.
    `os:alice@host`, and the source: live, or imported with its origin)."""
    return [
        jsonable({**dataclasses.asdict(entry), "recorded_by": str(entry.recorded_by),
                  "source": entry.source})
        for entry in entries
    ]


def print_history(console: Console, case_id: UUID, entries: list[HistoryEntry]) -> None:
    """Print every event of a case with its recorded time and effective date."""
    table = Table(title=f"History of case {case_id}", title_justify="left")
    for column in (
        "#",
        "recorded (Swiss time)",
        "effective",
        "event",
        "source",
        "actor",
        "recorded by",
        "details",
    ):
        table.add_column(column)
    for entry in entries:
        actor = entry.actor
        table.add_row(
            str(entry.version),
            entry.recorded_at.astimezone(SWISS_TIME).strftime("%Y-%m-%d %H:%M:%S"),
            entry.effective_date.isoformat(),
            entry.event,
            shown(entry.source),
            shown(f"{actor.user_id}/{actor.role}/{actor.organisation}"),
            shown(str(entry.recorded_by)),
            shown(_details(entry.details)),
        )
    console.print(table)


def _print_budget(console: Console, budget: dict[str, Any], versions: int) -> None:
    table = Table(
        title=f"Monthly budget from {budget['effective_date']} ({budget['reason']}; "
        f"{versions} version(s))",
        title_justify="left",
    )
    table.add_column("line")
    table.add_column("CHF", justify="right")
    table.add_column("basis")
    for line in budget["lines"]:
        table.add_row(line["code"], line["amount"], line["basis"])
    table.add_row("[bold]total[/bold]", f"[bold]{budget['total']}[/bold]", "")
    console.print(table)


def _print_items(
    console: Console, title: str, items: list[dict[str, Any]], cols: tuple[str, ...]
) -> None:
    if not items:
        return
    table = Table(title=title, title_justify="left")
    for column in cols:
        table.add_column(column.replace("_", " "))
    for item in items:
        table.add_row(*(shown(str(item.get(column) or "-")) for column in cols))
    console.print(table)


def _members(members: list[dict[str, str]]) -> str:
    if not members:
        return "-"
    return "; ".join(
        f"{m['given_name']} {m['family_name']}, born {m['birth_date']} ({m['person_id']})"
        for m in members
    )


def _assessment(assessment: dict[str, Any] | None) -> str:
    if not assessment:
        return "-"
    needs = ", ".join(assessment["needs"])
    return f"{assessment['completed_on']}: needs {needs}; {assessment['employability']}"


def _decision(decision: dict[str, Any] | None) -> str:
    if not decision:
        return "-"
    reasons = f" ({', '.join(decision['reasons'])})" if decision["reasons"] else ""
    return f"{decision['outcome']} on {decision['decided_on']}{reasons}"


def _closure(closure: dict[str, Any] | None) -> str:
    return "-" if not closure else f"{closure['reason']} on {closure['closed_on']}"


def _details(details: dict[str, Any]) -> str:
    plain = jsonable(details)
    if "lines" in plain:
        plain["lines"] = {line["code"]: line["amount"] for line in plain["lines"]}
    return ", ".join(f"{key}={value}" for key, value in plain.items())


JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON (as the global --json).")
]
"""A command's own `--json` (the same as the global one given before the command)."""
