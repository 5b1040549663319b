"""`nervenbahn demo`: seed a synthetic canton through the import path and summarise it."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.application.importer import MigrationStep
from domain.case import Case
from domain.commands import Actor, parse_command, swiss_today
from domain.errors import DomainError
from nervenbahn.container import Container
from nervenbahn.demo_benefits import seed_benefits
from nervenbahn.demo_bus import relay_and_subscribe
from nervenbahn.demo_connectors import audit_and_report, pay_and_register
from nervenbahn.demo_session import DemoSession
from nervenbahn.demo_web import create_web_users, reset_web_users
from nervenbahn.identity import process_identity
from nervenbahn.keyfiles import create_keys
from nervenbahn.paths import private_folder, store_folder, write_private
from nervenbahn.synthetic import PERIOD_END, PERIOD_START, synthetic_history

__all__ = ["DemoStoreNotEmptyError", "run_demo"]

PHASES = ("intake", "assessed", "supported", "refused", "closed")


class DemoStoreNotEmptyError(DomainError):
    """The demo only seeds an empty store."""


_DEMO_IMPORTER = Actor("demo-migration", "administrator", "so-canton")
"""The administrator the demo's import (a migration step) declares."""


def run_demo(
    container: Container,
    console: Console,
    *,
    households: int,
    seed: int,
    reset: bool,
    bus: bool = True,
) -> None:
    """Generate, import, add a few live commands, and print a summary (on `console`)."""
    rt = DemoSession(container, console)
    store = rt.settings.store
    if reset:
        _reset(rt)
    create_keys(rt.settings)  # the step `nervenbahn init` takes: the store's missing keys
    service = rt.service
    existing = service.recorder.max_notification_id() or 0
    if existing:
        raise DemoStoreNotEmptyError(
            f"the store {store.describe()} already holds {existing} events; "
            "run `nervenbahn demo --reset` (SQLite) or point NERVENBAHN_STORE at an empty store"
        )
    started = time.perf_counter()
    history_file = _history_file(rt)
    with _progress(rt) as progress:
        task = progress.add_task("Generating synthetic canton", total=households)
        records = list(synthetic_history(service.reference, households, seed))
        progress.update(task, completed=households)
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        write_private(history_file, text)
        step = MigrationStep(  # as `nervenbahn import` by an administrator would
            importer=_DEMO_IMPORTER, recorded_by=process_identity(),
            file_name=history_file.name,
            file_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
        task = progress.add_task("Validating legacy records", total=len(records))
        try:
            with history_file.open(encoding="utf-8", newline="") as lines:
                report = service.import_records(_tracked(lines, progress, task), step)
        finally:
            # names, AHVN13 and addresses in clear: the store holds them sealed now
            history_file.unlink(missing_ok=True)
    live = _live_commands(rt, report.cases_by_id)
    _summary(rt, report, live, history_file, time.perf_counter() - started)
    seed_benefits(rt, records, seed)
    payments = pay_and_register(rt, report.cases_by_id)
    if bus:
        relay_and_subscribe(rt, history_file.parent, payments)
    audited = live[0]["case_id"] if live else next(iter(report.cases_by_id))
    audit_and_report(rt, audited, history_file.parent)
    create_web_users(rt)


def _reset(rt: DemoSession) -> None:
    store = rt.settings.store
    if store.kind != "sqlite" or store.sqlite_path is None:
        raise DemoStoreNotEmptyError("--reset only deletes a SQLite store; use an empty schema")
    rt.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.sqlite_path}{suffix}").unlink(missing_ok=True)
    # Read models, connector positions and outputs belong to the store that is gone.
    for folder in ("projections", "connectors", "inbox", "outbox"):
        shutil.rmtree(store_folder(store) / folder, ignore_errors=True)
    reset_web_users(rt.settings.web.users)


def _history_file(rt: DemoSession) -> Path:
    """The demo's legacy import file (JSON Lines), deleted once imported."""
    return private_folder(store_folder(rt.settings.store)) / "demo-history.jsonl"


def _progress(rt: DemoSession) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=rt.console,
        transient=False,
    )


def _tracked(lines: Any, progress: Progress, task: Any) -> Any:
    for line in lines:
        progress.advance(task)
        yield line


def _live_commands(rt: DemoSession, cases: Mapping[uuid.UUID, Case]) -> list[dict[str, Any]]:
    """A few commands recorded live today, beside the imported history."""
    supported = [case for case in cases.values() if case.phase == "supported"][:3]
    done = []
    first_of_month = swiss_today().replace(day=1)
    for case in supported:
        budget = case.budgets[-1]
        amounts = {line.code: line.amount for line in budget.lines}
        command = parse_command(
            "change_budget",
            {
                "case_id": str(case.id),
                "effective_date": first_of_month.isoformat(),
                "reason": "income_change",
                "housing": str(amounts["housing"]),
                "health_insurance": str(amounts["health_insurance"]),
                "income": str(-amounts["income"] + 100),
                "actor": {
                    "user_id": "demo",
                    "role": "caseworker",
                    "organisation": case.social_region,
                },
                "correlation_id": str(uuid.uuid4()),
            },
        )
        result = rt.service.execute(command)
        done.append({"case_id": result.case_id, "events": result.events})
    return done


def _program() -> str:
    """How the user ran this program: `.venv/bin/nervenbahn` under `make demo`."""
    invoked = Path(sys.argv[0])
    if invoked.name != "nervenbahn":
        return "nervenbahn"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return "nervenbahn"


def _summary(
    rt: DemoSession, report: Any, live: list[dict[str, Any]], history: Path, seconds: float
) -> None:
    cases: Mapping[uuid.UUID, Case] = report.cases_by_id
    by_region: dict[str, Counter[str]] = {}
    for case in cases.values():
        by_region.setdefault(case.social_region, Counter())[case.phase] += 1
    table = Table(
        title=f"Synthetic canton Solothurn, {PERIOD_START} to {PERIOD_END}: cases by phase",
        title_justify="left",
    )
    table.add_column("social region")
    for phase in (*PHASES, "total"):
        table.add_column(phase, justify="right")
    regions = rt.service.reference.regions
    for region_id in sorted(by_region, key=lambda r: regions[r].name):
        counts = by_region[region_id]
        table.add_row(
            regions[region_id].name, *(str(counts[p]) for p in PHASES), str(sum(counts.values()))
        )
    totals: Counter[str] = sum(by_region.values(), Counter())
    table.add_row(
        "[bold]canton[/bold]",
        *(f"[bold]{totals[p]}[/bold]" for p in PHASES),
        f"[bold]{sum(totals.values())}[/bold]",
    )
    rt.console.print(table)
    sample = live[0]["case_id"] if live else next(iter(cases))
    prog = _program()
    rt.console.print(
        f"Imported {report.records} legacy records as {report.events} events "
        f"in {report.cases} cases "
        f"({report.events / report.seconds:,.0f} events/s); {len(live)} live budget changes today; "
        f"{len(regions)} social regions; total {seconds:.1f} s.\n"
        f"Import file {history} deleted after the import (it held personal data in clear). "
        f"Store: {rt.settings.store.describe()}.\n"
        f"Try:  {prog} case show {sample}\n"
        f"      {prog} case history {sample}\n"
        f"      {prog} case show {sample} --as-of {PERIOD_END}\n"
        f"      {prog} case list --region so-olten --phase supported"
    )
