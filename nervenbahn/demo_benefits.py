"""The benefits part of `nervenbahn demo`: the canton's EL and IPV applications.

The synthetic applications (`nervenbahn.synthetic_benefits`) are recorded through the benefits
service, each command at its own time on a replay clock (the service dates events by its
clock), so the backlog figures have a history of 26 weeks and more up to the demo's today.
A short table summarises them by kind and stage.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from rich.table import Table

from domain.application.benefits import BenefitService
from domain.benefit_commands import BENEFIT_COMMANDS
from domain.benefits import BenefitApplication
from domain.case import SWISS_TIME
from domain.reference import load_branch_offices
from nervenbahn.container import build_benefit_service
from nervenbahn.demo_advances import start_advances
from nervenbahn.demo_session import DemoSession
from nervenbahn.synthetic_benefits import SyntheticBenefits, synthetic_benefits

__all__ = [
    "PENDING_STAGES",
    "BenefitFigures",
    "ReplayClock",
    "benefit_figures",
    "months_before",
    "record_benefits",
    "seed_benefits",
]

PENDING_STAGES = ("received", "forwarded")
"""Stages of an application not yet decided nor withdrawn."""
KINDS = {"el_ahv": "EL to AHV", "el_iv": "EL to IV", "ipv": "premium reduction"}
STAGES = ("received", "forwarded", "granted", "refused", "withdrawn")
"""The stages the table shows (the demo ends no benefit)."""


@dataclass
class ReplayClock:
    """A clock that stands at the recorded time of the record being played."""

    now: datetime

    def __call__(self) -> datetime:
        """The time the current record is recorded at."""
        return self.now


def record_benefits(service: BenefitService, clock: ReplayClock,
                    records: Iterable[dict[str, Any]]) -> int:
    """Execute each record's command at its recorded time (`clock` must be `service`'s);
    a refused or malformed one raises (DomainError). The number of commands recorded."""
    count = 0
    for record in records:
        clock.now = datetime.fromisoformat(record["recorded_at"])
        service.execute(BENEFIT_COMMANDS[record["command"]](**record["data"]))
        count += 1
    return count


@dataclass
class BenefitFigures:
    """Applications by kind and stage, and the pending ones late or waiting for documents."""

    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    pending_over_3_months: Counter[str] = field(default_factory=Counter)
    pending_over_6_months: Counter[str] = field(default_factory=Counter)
    late_waiting_for_documents: Counter[str] = field(default_factory=Counter)
    waiting_for_documents: Counter[str] = field(default_factory=Counter)


def benefit_figures(applications: Iterable[BenefitApplication], today: date) -> BenefitFigures:
    """Count `applications` as they stand: pending (received or forwarded, not decided nor
    withdrawn) for more than three or six months (received before the same day of the month
    three or six months before `today`), and waiting for documents (checked, some missing)."""
    figures = BenefitFigures()
    three, six = months_before(today, 3), months_before(today, 6)
    for app in applications:
        figures.by_kind.setdefault(app.kind, Counter())[app.stage] += 1
        if app.stage not in PENDING_STAGES:
            continue
        if app.waiting_for_documents:
            figures.waiting_for_documents[app.kind] += 1
        if app.received_on < three:
            figures.pending_over_3_months[app.kind] += 1
            if app.waiting_for_documents:
                figures.late_waiting_for_documents[app.kind] += 1
        if app.received_on < six:
            figures.pending_over_6_months[app.kind] += 1
    return figures


def seed_benefits(rt: DemoSession, history: list[dict[str, Any]], seed: int) -> None:
    """Record the synthetic applications of the canton whose case history is `history`, and
    print a summary table."""
    started = time.perf_counter()
    today = datetime.now(SWISS_TIME).date()
    offices = load_branch_offices()
    made: SyntheticBenefits = synthetic_benefits(rt.service.reference, offices, history, today,
                                                 seed)
    clock = ReplayClock(datetime.now(SWISS_TIME))
    service = build_benefit_service(rt.settings, rt.service, clock)
    try:
        with _commands_unlogged():
            commands = record_benefits(service, clock, made.records)
        ids = [UUID(r["data"]["application_id"]) for r in made.records
               if r["command"] == "receive_application"]
        figures = benefit_figures((service.application(i) for i in ids), today)
    finally:
        service.close()
    _print(rt, figures, today)
    delegations = sum(r["command"] == "grant_delegation" for r in made.records)
    rt.console.print(
        f"Benefits: {commands} commands recorded ({len(ids)} applications, {delegations} "
        f"delegations) in {time.perf_counter() - started:.1f} s; {len(made.advances)} "
        "applications are by social-assistance households advancing living costs in view "
        "of EL (same person as the case's applicant). Amounts are invented (synthetic)."
    )
    with _commands_unlogged():
        started = start_advances(rt, made.advances)
    rt.console.print(
        f"Advances: {started} of these households' cases advance living costs in view of "
        "their pending EL application (SKOS F.2, with the person's written commitment); the "
        "others' applications were decided in the synthetic history already."
    )


@contextmanager
def _commands_unlogged() -> Iterator[None]:
    """Warnings only while the history is recorded: one info line per command would be
    thousands (a refused command still raises)."""
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**config)


def _print(rt: DemoSession, figures: BenefitFigures, today: date) -> None:
    table = Table(title=f"Benefit applications (synthetic) as of {today}: by kind and stage",
                  title_justify="left")
    columns = (*STAGES, "total", "pending >3 mo", "of them docs missing", "pending >6 mo")
    table.add_column("kind")
    for column in columns:
        table.add_column(column, justify="right")
    rows = [(KINDS[k], figures.by_kind.get(k, Counter()), k) for k in KINDS]
    for name, stages, kind in rows:
        table.add_row(name, *(str(stages[s]) for s in STAGES), str(sum(stages.values())),
                      str(figures.pending_over_3_months[kind]),
                      str(figures.late_waiting_for_documents[kind]),
                      str(figures.pending_over_6_months[kind]))
    total: Counter[str] = sum(figures.by_kind.values(), Counter())
    table.add_row("[bold]all[/bold]", *(str(total[s]) for s in STAGES), str(total.total()),
                  str(figures.pending_over_3_months.total()),
                  str(figures.late_waiting_for_documents.total()),
                  str(figures.pending_over_6_months.total()))
    rt.console.print(table)


def months_before(day: date, months: int) -> date:
    """The same day `months` months earlier (the month's last day if it has fewer days)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    following = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return min(day.replace(year=year, month=month + 1, day=1) + timedelta(days=day.day - 1),
               following - timedelta(days=1))
