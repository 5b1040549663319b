"""The API part of `nervenbahn demo`: serve the read models, ask a few scoped questions, stop.

Uses keys of its own (`demo-api-keys.json`), so that the demo never touches the keys an
operator has issued. Its reads are logged in the installation's access log (the one `audit
checkpoint` signs and `audit verify` checks), so that every checkpoint and every verification
speak of the same log.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from nervenbahn.api import create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.demo_backlog import print_backlog
from nervenbahn.demo_fund import FUND_USER, decide_through_the_fund
from nervenbahn.demo_reimbursement import show_reimbursement, unsettled
from nervenbahn.demo_session import DemoSession
from nervenbahn.paths import private_folder
from nervenbahn.serve import Server

__all__ = ["serve_and_query"]

OFFICE, OTHER_OFFICE, REGION = "akso-olten", "akso-grenchen", "so-olten"


def serve_and_query(rt: DemoSession, folder: Path) -> None:
    """Start the API with the relays and projections, run sample queries, let the reference
    fund application decide the forwarded applications over the bus, stop."""
    api = ApiSettings(api_keys=folder / "demo-api-keys.json",
                      access_log=rt.settings.api.access_log)
    api.api_keys.unlink(missing_ok=True)
    keys = _issue_keys(ApiKeyRegistry(api.api_keys))
    context = rt.container.api_context(api)
    server = Server(rt.container, create_app(context), port=_free_port())
    try:
        server.start()
        if not server.wait_until_serving():
            rt.console.print("[red]the API did not start[/red]")
            return
        _print(rt, server.url, _ask(server.url, keys))
        rt.console.print(decide_through_the_fund(
            rt, server.url, keys["fund"], payments_dir=private_folder(folder / "outbox" / "fund"),
            settled=lambda: not unsettled(rt)))
        show_reimbursement(rt, server.url, api.api_keys, keys["region"], REGION, folder)
        print_backlog(rt, folder)
    finally:
        server.stop()
        context.close()


def _issue_keys(registry: ApiKeyRegistry) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "office": registry.add("demo-office-olten", Scope("branch_office", OFFICE), now=now),
        "region": registry.add("demo-region-olten", Scope("region", REGION), now=now),
        "canton": registry.add("demo-canton", Scope("canton"), now=now),
        "auditor": registry.add("demo-auditor", Scope("auditor"), now=now),
        "fund": registry.add(FUND_USER, Scope("bus_reader"), now=now),
    }


def _ask(url: str, keys: dict[str, str]) -> list[tuple[str, str, int, str]]:
    """(who, what, status, summary) for each sample query."""
    answers = []
    status, body = _get(url, "/v1/regions/so-olten/caseload", keys["region"])
    answers.append(("region so-olten", "caseload", status, json.dumps(body.get("by_phase"))))
    status, body = _get(url, "/v1/regions/so-olten/worklist?today=2026-09-30", keys["region"])
    overdue = sum(1 for item in body.get("items", []) if item.get("overdue"))
    answers.append(("region so-olten", "work list on 2026-09-30", status,
                    f"{len(body.get('items', []))} items, {overdue} overdue"))
    status, body = _get(url, f"/v1/branch-offices/{OFFICE}/cases?limit=3", keys["office"])
    cases = body.get("cases", [])
    answers.append((f"office {OFFICE}", "its cases (no personal data)", status,
                    ", ".join(f"{c['municipality']} {c['phase']}" for c in cases)))
    if cases:
        status, body = _get(url, f"/v1/branch-offices/{OFFICE}/cases/{cases[0]['case_id']}",
                            keys["office"])
        applicant = body.get("applicant", {})
        answers.append((f"office {OFFICE}", "one case with the applicant (logged)", status,
                        f"{applicant.get('given_name')} {applicant.get('family_name')}"))
    status, body = _get(url, f"/v1/branch-offices/{OTHER_OFFICE}/cases", keys["office"])
    answers.append((f"office {OFFICE}", f"cases of {OTHER_OFFICE}", status,
                    str(body.get("title"))))
    status, body = _get(url, "/v1/canton/quarters/2026Q2", keys["canton"])
    canton = body.get("canton", {})
    answers.append(("canton", "2026Q2 figures", status,
                    f"new {canton.get('new_cases')}, closed {canton.get('closed_cases')}"))
    status, body = _get(url, "/v1/access-log?limit=5", keys["auditor"])
    entries = body.get("entries", [])
    answers.append(("auditor", "access log", status,
                    f"{len(entries)} read(s) of personal data"
                    + (f", last by {entries[-1].get('consumer')}" if entries else "")))
    return answers


def _get(url: str, path: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + path, headers={"X-API-Key": key})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _print(rt: DemoSession, url: str, answers: list[tuple[str, str, int, str]]) -> None:
    table = Table(title=f"HTTP API at {url} (OpenAPI docs at /docs): sample queries",
                  title_justify="left")
    for column in ("key scope", "asks for", "status", "answer"):
        table.add_column(column)
    for who, what, status, summary in answers:
        table.add_row(who, what, str(status), summary)
    rt.console.print(table)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
