"""The fund part of `nervenbahn demo`: run the reference fund application
(`examples/fund_application.py`, a simulation of AKSO's software, an outside program) against
the demo's `serve` and broker, so that the forwarded applications not yet decided get their
decisions back over the bus, and say what went out and what came in.

The program runs as a subprocess with a `bus_reader` key of the demo's own key file, finds
topics, brokers and registry in `GET /asyncapi.json`, and is stopped (SIGTERM) once it has
said it read all there is and every forwarded application is decided (or after `WITHIN`
seconds). `serve`'s benefits relay publishes the applications and its fund-decisions
connector records the decisions. Measured on the embedded broker (tests/bus/test_demo_fund.py,
three applications, two forwarded; 2 shared cores): 5.3 s and 5.9 s, most of it the program's
start and its consumer group's join (session timeout 6 s, docs/bus.md).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from nervenbahn.demo_session import DemoSession

__all__ = ["EXAMPLE", "FUND_USER", "WITHIN", "decide_through_the_fund"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fund_application.py"
"""The reference fund application (present in a checkout of the repository)."""
WITHIN = 90.0
"""Seconds the demo waits for the decisions before it stops the program."""
FUND_USER = "demo-fund"
"""The consumer name of the demo's bus_reader key for the fund application."""
CAPACITY = 40
"""Decisions the simulated fund makes in the demo's run, those received first: a fund with a
backlog decides a day's work, not everything waiting (the backlog figures keep showing it)."""


def decide_through_the_fund(rt: DemoSession, url: str, key: str, user: str = FUND_USER,
                           capacity: int = CAPACITY, *, payments_dir: Path | None = None,
                           settled: Callable[[], bool] = lambda: True) -> str:
    """Run the fund application against `serve` at `url` (with `user`'s bus_reader `key`)
    until it has decided up to `capacity` forwarded applications (those received first) and
    `settled()` says what else it had to do is done (with `payments_dir`: the reimbursement
    claims its grants led to are paid, its pain.001 files there); one line saying what went
    out and came back."""
    if not EXAMPLE.exists():
        return f"Fund application: {EXAMPLE} is not here (not a checkout); skipped."
    benefits = rt.container.benefits
    forwarded = [benefits.application(app) for app in benefits.application_ids()]
    forwarded = [app for app in forwarded if app.stage == "forwarded"]
    waiting = [app.id for app in forwarded]
    expected = [app.id for app in sorted(forwarded, key=lambda a: (a.received_on, str(a.id)))
                ][:capacity]
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 (our own example, fixed arguments)
        [sys.executable, str(EXAMPLE), "--asyncapi", f"{url}/asyncapi.json", "--user",
         user, f"--key={key}", "--group", "demo-fund", "--capacity", str(capacity),
         "--session-timeout-ms", "6000",  # docs/bus.md: the embedded broker's setting
         *([] if payments_dir is None else ["--payments-dir", str(payments_dir)])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline and process.poll() is None and not (
            any("caught_up" in line for line in lines)
            and not any(_undecided(rt, app) for app in expected) and settled()):
        time.sleep(0.2)  # polls its output and the store the connector writes to
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    reader.join(timeout=10)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        errors = process.stderr.read() if process.stderr is not None else ""
        return f"[red]Fund application failed ({process.returncode}): {errors[-500:]}[/red]"
    recorded = sum(1 for app in waiting if not _undecided(rt, app))
    return _line(lines, waiting, recorded, seconds, capacity) + _payments(lines)


def _read_lines(process: subprocess.Popen[str], lines: list[dict[str, Any]]) -> None:
    """Collect the program's JSON lines as they come."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            lines.append(json.loads(line))


def _payments(lines: list[dict[str, Any]]) -> str:
    """What the fund paid, from its output lines (one per claim paid; none without
    `--payments-dir`)."""
    paid = [line for line in lines if "claim_paid" in line and not line.get("paid_already")]
    if not paid:
        return ""
    return (f" It paid {len(paid)} reimbursement claim(s): CHF "
            f"{sum(Decimal(p['to_region']) for p in paid):.2f} to the social regions and CHF "
            f"{sum(Decimal(p['to_person']) for p in paid):.2f} to the persons (pain.001).")


def _undecided(rt: DemoSession, application_id: UUID) -> bool:
    return rt.container.benefits.application(application_id).stage == "forwarded"


def _line(lines: list[dict[str, Any]], waiting: list[UUID], recorded: int,
          seconds: float, capacity: int) -> str:
    summary = lines[-1] if lines and "published" in lines[-1] else {}
    published = summary.get("published", {})
    topic = lines[0].get("applications_topic", "?") if lines else "?"
    return (
        f"Fund application (examples/fund_application.py, a SIMULATION of AKSO's software): "
        f"read {summary.get('applications', 0)} applications from {topic}; "
        f"{len(waiting)} forwarded awaited a decision; with a day's capacity of {capacity} "
        f"(those received first) it decided "
        f"{published.get('granted', 0)} granted and {published.get('refused', 0)} refused; "
        f"{recorded} of them recorded back by the fund-decisions connector, "
        f"{len(waiting) - recorded} still wait; {seconds:.1f} s."
    )
