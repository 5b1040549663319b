"""`nervenbahn status --incidents [--since DATE]`: the outages and degraded periods `serve`
recorded (`nervenbahn.incidents`): kind, subject, start, end (or "ongoing") and duration."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated

import typer
from rich.table import Table

from domain.case import SWISS_TIME
from domain.errors import InvalidCommandError
from nervenbahn.bounds import parse_bounded_day
from nervenbahn.incidents import Incident

from .render import emit_json
from .session import Session

__all__ = ["SinceOption", "open_incident_count", "show_incidents"]

SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="With --incidents: only those open on or after this day "
                 "(YYYY-MM-DD, Swiss time)."),
]


def open_incident_count(rt: Session) -> int:
    """How many incidents are open now."""
    store = rt.container.incidents()
    try:
        return sum(1 for incident in store.incidents() if incident.ended_at is None)
    finally:
        store.close_connection()


def show_incidents(rt: Session, since: str | None, as_json: bool) -> None:
    """Outages and degraded periods serve recorded: a worker down, relay lag over the bound,
    broker or store unreachable."""
    gte = None
    if since is not None:
        try:
            day = parse_bounded_day(since)
        except ValueError as exc:
            raise InvalidCommandError("incidents", [("since", str(exc))]) from None
        gte = datetime.combine(day, time.min, tzinfo=SWISS_TIME)
    store = rt.container.incidents()
    try:
        found = store.incidents(gte=gte)
    finally:
        store.close_connection()
    now = datetime.now(UTC)
    if as_json or rt.as_json:
        emit_json(rt.console, [_row(incident, now) for incident in found])
        return
    table = Table("kind", "subject", "start", "end", "duration", "note",
                  title=f"Incidents ({len(found)})", title_justify="left")
    for incident in found:
        table.add_row(incident.kind, incident.subject, _local(incident.started_at),
                      _local(incident.ended_at) if incident.ended_at else "ongoing",
                      _duration(round(incident.duration_seconds(now))), incident.note)
    rt.console.print(table)


def _row(incident: Incident, now: datetime) -> dict[str, object]:
    return {
        "kind": incident.kind,
        "subject": incident.subject,
        "start": incident.started_at.isoformat(),
        "end": incident.ended_at.isoformat() if incident.ended_at else None,
        "ongoing": incident.ended_at is None,
        "duration_seconds": round(incident.duration_seconds(now)),
        "note": incident.note,
    }


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(SWISS_TIME):%Y-%m-%d %H:%M:%S}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = f"{rest // 60:02d}m" if hours else f"{rest // 60}m"
    return f"{hours}h {minutes} {rest % 60:02d}s" if hours else f"{minutes} {rest % 60:02d}s"
