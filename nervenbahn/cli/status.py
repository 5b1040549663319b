"""`nervenbahn status`: where the relays and the read models stand, for an operator, without a
running `serve` (the same figures `GET /metrics` exports, `nervenbahn.progress`).

Per relay its position in the store's notification log, the head and the lag; per read
model's consumer group its lag and dead-letter count (asked of the broker NERVENBAHN_KAFKA
when it can be reached, else the reason is shown), the recorded time of the newest event its
read model applied and when it applied one; the `serve` instances announced live on the store
(name, host, process, where their read models lie, their groups); and how many incidents are
open. With
`--incidents`, the incidents `serve` recorded instead (`nervenbahn.cli.incidents`). Reads only;
exit 0 whatever it finds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bus.positions import InstanceRecord
from domain.errors import InvalidCommandError
from nervenbahn.progress import GroupReport, RelayReport, group_reports, relay_reports
from projections import PROJECTIONS

from .incidents import SinceOption, open_incident_count, show_incidents
from .render import JsonOption, emit_json
from .session import session

__all__ = ["status"]


def status(
    ctx: typer.Context,
    incidents: Annotated[bool, typer.Option(
        "--incidents", help="The outages and degraded periods serve recorded, instead.")] = False,
    since: SinceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Relays (position, head, lag), read models (consumer lag, dead letters, freshness) and
    open incidents; with --incidents, the incidents."""
    rt = session(ctx)
    if incidents:
        show_incidents(rt, since, as_json or rt.as_json)
        return
    if since is not None:
        raise InvalidCommandError("status", [("since", "only with --incidents")])
    container = rt.container
    relays = relay_reports(container)
    groups = group_reports(container, [container.projection(name) for name in PROJECTIONS])
    instances = [_instance(i) for i in container.live_instances()]
    if rt.as_json or as_json:
        emit_json(rt.console, {"relays": [_relay(r) for r in relays],
                               "read_models": [_group(g) for g in groups],
                               "instances": instances,
                               "open_incidents": open_incident_count(rt)})
        return
    rt.console.print(_table("Relays", [_relay(r) for r in relays]))
    rt.console.print(_table("Read models", [_group(g) for g in groups]))
    if instances:
        rt.console.print(_table("Instances", instances))
    else:
        rt.console.print("instances: none running (no serve announced on this store)")
    for relay in relays:
        if relay.problem is not None:
            rt.console.print(f"relay {relay.relay}: position unknown: {relay.problem}")
    for problem in sorted({g.broker for g in groups if g.broker != "ok"}):
        rt.console.print(f"consumer lag and dead letters unknown: {problem}")
    rt.console.print(f"open incidents: {open_incident_count(rt)} (`nervenbahn status "
                     "--incidents` lists them)")


def _relay(report: RelayReport) -> dict[str, Any]:
    row: dict[str, Any] = {"relay": report.relay, "dataset": report.dataset,
                           "position": report.position, "head": report.head, "lag": report.lag}
    if report.problem is not None:
        row["problem"] = report.problem
    return row


def _group(report: GroupReport) -> dict[str, Any]:
    return {
        "read_model": report.read_model,
        "group": report.group,
        "built": report.built,
        "lag": report.lag,
        "dead_letters": report.dead_letters,
        "broker": report.broker,
        "as_of": _time(report.as_of),
        "last_applied": _time(report.applied_at),
    }


def _instance(record: InstanceRecord) -> dict[str, Any]:
    return {"instance": record.instance or None, "host": record.host, "pid": record.pid,
            "read_models": record.read_models,
            "groups": f"projection-<read model>{record.group_suffix}"}


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    columns = [name for name in (rows[0] if rows else {}) if name not in ("broker", "problem")]
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*("–" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table
