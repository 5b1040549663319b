"""`nervenbahn relay …`: publish recorded events to the bus, and show how far behind it is.

Four relays read a store's notification log, each with a position of its own: `case-events`
(every event, sealed), `reporting` (a pseudonymised fact per event, docs/reporting.md) and
`claims` (each recorded reimbursement claim, for the fund, onto the claims topic) read the case
store's; `benefits` reads the benefits store's (every benefit-application event, the applicant
sealed, onto the applications topic). `relay status --all` also shows the payments
relay (`nervenbahn payments relay` runs it), so that every relay `serve` runs can be watched
from one command.
"""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from typing import Annotated, Literal

import typer
from rich.table import Table

from bus.relay import Relay, RelayStatus
from bus.topics import ensure_topics
from nervenbahn.datasets import (
    BENEFIT_APPLICATIONS,
    CASE_EVENTS,
    CASE_FACTS,
    PAYMENT_ORDERS,
    REIMBURSEMENT_CLAIMS,
)

from .render import emit_json
from .session import Session, session

app = typer.Typer(help="The relay: every recorded event onto the bus.", no_args_is_help=True)

RelayName = Literal["case-events", "reporting", "benefits", "claims"]
RELAYS: tuple[RelayName, ...] = ("case-events", "reporting", "benefits", "claims")
_DATASETS: dict[RelayName, str] = {
    "case-events": CASE_EVENTS, "reporting": CASE_FACTS, "benefits": BENEFIT_APPLICATIONS,
    "claims": REIMBURSEMENT_CLAIMS,
}
"""The dataset each relay fills (the reporting relay: the pseudonymised case facts; the
benefits relay: the applications topic; the claims relay: the reimbursement claims)."""
_STATUS_DATASETS: dict[str, str] = {
    **{str(name): dataset for name, dataset in _DATASETS.items()}, "payments": PAYMENT_ORDERS}
"""Every relay `serve` runs, for `relay status --all` (payments: `nervenbahn payments relay`)."""

RelayOption = Annotated[
    str,
    typer.Option(
        "--relay",
        help="Which relay: case-events (every event), reporting (case facts), benefits "
        "(benefit applications) or claims (reimbursement claims).",
    ),
]


@app.command("run")
def run(
    ctx: typer.Context,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Stop once nothing is left to publish.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(help="Events per producer flush.", min=1, max=100_000)
    ] = 500,
    relay: RelayOption = "case-events",
    run_all: Annotated[
        bool, typer.Option("--all", help="Run every relay, each in a thread of its own.")
    ] = False,
) -> None:
    """Publish recorded events until stopped (Ctrl-C / SIGTERM) or caught up."""
    rt = session(ctx)
    names = RELAYS if run_all else (_relay_name(relay),)
    ensure_topics(rt.container.kafka, list(rt.container.topics.values()))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as stack:
        relays = {name: stack.enter_context(_open(rt, name, batch_size)) for name in names}
        statuses = _run(relays, stop, until_caught_up)
    _print_statuses(ctx, statuses)


@app.command("status")
def status(
    ctx: typer.Context,
    relay: RelayOption = "case-events",
    every: Annotated[
        bool, typer.Option("--all", help="Every relay: case-events, reporting, benefits, "
                           "claims and payments.")
    ] = False,
) -> None:
    """Position, head of the store and lag of a relay (with --all: of every relay)."""
    rt = session(ctx)
    datasets = _STATUS_DATASETS if every else {relay: _DATASETS[_relay_name(relay)]}
    statuses: dict[str, RelayStatus] = {}
    for name, dataset in datasets.items():
        with rt.container.relay(dataset) as opened:
            statuses[name] = opened.status()
    _print_statuses(ctx, statuses)


def _run(
    relays: dict[RelayName, Relay], stop: threading.Event, until_caught_up: bool
) -> dict[str, RelayStatus]:
    """Run one relay here, or several in threads of their own; their final statuses."""
    statuses: dict[str, RelayStatus] = {}

    def work(name: str, relay: Relay) -> None:
        statuses[name] = relay.run(stop, until_caught_up=until_caught_up)

    if len(relays) == 1:
        (name, relay), = relays.items()
        work(name, relay)
        return statuses
    threads = [
        threading.Thread(target=work, args=(name, relay), name=f"relay-{name}")
        for name, relay in relays.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: statuses[name] for name in relays if name in statuses}


def _relay_name(text: str) -> RelayName:
    for name in RELAYS:
        if text == name:
            return name
    raise typer.BadParameter(f"{text!r}: use case-events, reporting, benefits or claims",
                             param_hint="--relay")


def _open(rt: Session, name: RelayName, batch_size: int) -> Relay:
    return rt.container.relay(_DATASETS[name], batch_size=batch_size)


def _print_statuses(ctx: typer.Context, statuses: dict[str, RelayStatus]) -> None:
    rt = session(ctx)
    figures = {
        name: {"position": s.position, "head": s.head, "lag": s.lag, "published": s.published}
        for name, s in statuses.items()
    }
    if rt.as_json:
        # One relay: its figures, as before; several: by relay name.
        emit_json(rt.console, next(iter(figures.values())) if len(figures) == 1 else figures)
        return
    for name, values in figures.items():
        table = Table(title=f"Relay {name}", title_justify="left", show_header=False)
        for key, value in values.items():
            table.add_row(key, str(value))
        rt.console.print(table)
