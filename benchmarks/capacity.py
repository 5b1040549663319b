"""Capacity model: measures its inputs on the demo's synthetic canton, then derives events per
second, storage, partitions, instances and PostgreSQL size for a canton and for Switzerland.

    .venv/bin/python benchmarks/capacity.py [--households N] [--backend sqlite|postgres|both]
                                            [--api-rps-per-instance R] [--json] [--seed S]

Measured in the run (each figure's source is printed beside it):
1. Events per case per year from the demo's history (`nervenbahn demo --no-bus`, built in a
   temporary folder, plus one steady-state monthly payment run the month after): case events,
   payment orders and benefit events, per case active in the last year of the synthetic period.
2. Bytes per event on disk: the SQLite store file / its events; PostgreSQL
   `pg_total_relation_size` of every table of the store's schema (indexes included) / its
   events (the same demo, in a schema of its own, dropped at the end). Read models: their
   SQLite files, and their PostgreSQL schema, per case and per event.
3. Throughput of one process: the append rate (`append.py`'s `bench_execute`, reused), the read
   models' apply rate (a rebuild, as `read_models.py` times it) and the payment run's rate.

The per-instance API throughput is an input (`--api-rps-per-instance`): the figure
`benchmarks/scale_out.py` reports for one instance. See benchmarks/README.md and the
"Capacity model" section of docs/operations.md.
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

# As append.py: keep benchmarks/ from hiding our packages while the container is imported.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    _benchmarks = sys.path.pop(0)
    import nervenbahn.container  # noqa: F401
    sys.path.append(_benchmarks)

import psycopg
from append import bench_execute
from report import Row, add_output_arguments, emit_json
from rich.console import Console
from rich.table import Table
from stores import _pg_conninfo, postgres_store, postgres_unreachable, sqlite_store

from domain.case import SWISS_TIME
from domain.payments import RunPayments
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container
from nervenbahn.demo import run_demo
from nervenbahn.demo_connectors import SYSTEM
from nervenbahn.logging import configure_logging
from nervenbahn.paths import store_folder
from nervenbahn.synthetic import PERIOD_END
from projections import READ_MODELS

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
YEAR_START = PERIOD_END.replace(year=PERIOD_END.year - 1) + timedelta(days=1)
"""The year the per-case figures are taken from: the last of the synthetic period."""
SECONDS_PER_YEAR = 365 * 24 * 3600
BATCH = 10_000

# --- sources of the populations (docs/operations.md, "Capacity model", cites them) ----------
CANTON_CASES = 5276
"""Canton Solothurn: private households supported at least once in 2018 (BFS social-assistance
statistics, reported by Solothurner Zeitung, Dec 2019; 9,713 persons, Grenchner Tagblatt)."""
COUNTRY_PEOPLE = 270_000
"""Switzerland: people in social assistance in a year (issue 18; BFS: 261,983 in 2014)."""
PEOPLE_PER_CASE = 1.61
"""Persons per dossier, Switzerland 2014 (BFS Aktuell, Schweizerische Sozialhilfestatistik 2014:
261,983 persons in 162,935 dossiers)."""


@dataclass
class Figure:
    """One number of the model: its key, a label, value, unit and where it comes from."""

    key: str
    what: str
    value: float
    unit: str
    source: str
    country: float | None = None
    """For the derived model: the value for Switzerland (`value` is the canton's)."""


@dataclass
class History:
    """What the demo's history holds, counted by `count_history`."""

    households: int
    cases: int = 0
    active: int = 0
    """Cases active (open at some moment) in the year from YEAR_START to PERIOD_END."""
    case_events: int = 0
    case_events_in_year: int = 0
    span_years: float = 0.0
    """Mean years from a case's first to its last event."""
    open_share: float = 0.0
    """Cases open at a month's start, averaged over the year, / cases active in the year."""
    orders_in_year: int = 0
    """Payment orders for months of the year (one per supported case and month)."""
    payment_events: int = 0
    benefit_events: int = 0
    benefit_years: float = 0.0
    applications: int = 0
    store_events: int = 0


@dataclass
class Measured:
    """Everything measured on one backend."""

    backend: str
    store_bytes: int = 0
    events: int = 0
    read_model_bytes: int = 0
    read_model_seconds: dict[str, float] = field(default_factory=dict)
    read_model_events: dict[str, int] = field(default_factory=dict)
    run_orders: int = 0
    run_seconds: float = 0.0
    supported: int = 0
    append: Row | None = None


CONNECTIONS_PER_SERVE = 36
"""PostgreSQL connections one `serve` holds at the default NERVENBAHN_POSTGRES_POOL_SIZE of 5:
31 counted in pg_stat_activity by its application_name once it is ready (23 at a pool of 2):
three pools (cases, payments, benefits) and about 16 of relays, consumers, the instance's
announcement and the other parts; and up to 5 more of the read models' pool while it answers
(docs/operations.md, "PostgreSQL: restarts, connections, start-up")."""

def main(argv: list[str] | None = None) -> int:
    """Measure, derive and print."""
    args = _arguments(argv)
    configure_logging("json", "warning")
    started = time.perf_counter()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    notes: list[str] = []
    measured: dict[str, Measured] = {}
    history: History | None = None
    with tempfile.TemporaryDirectory(prefix="nervenbahn-capacity-") as folder:
        if args.backend in ("sqlite", "both"):
            history, measured["sqlite"] = _sqlite(Path(folder), args, key)
        if args.backend in ("postgres", "both"):
            problem = postgres_unreachable(args.postgres_url)
            if problem:
                notes.append(f"{problem} — PostgreSQL skipped, the model uses SQLite's figures")
            else:
                pg_history, measured["postgres"] = _postgres(Path(folder), args, key)
                history = history or pg_history
    assert history is not None
    inputs = input_figures(history, measured, args)
    model = derive(inputs, args)
    runtime = time.perf_counter() - started
    if args.json:
        _emit_json(runtime, args, inputs, model, measured, notes)
    else:
        _print(runtime, args, inputs, model, notes)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=1000,
                        help="synthetic households of the demo (default 1000)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--append-cases", type=int, default=50,
                        help="cases of append.py's execute benchmark per backend (10 commands "
                             "each; default 50)")
    parser.add_argument("--api-rps-per-instance", type=float, default=50.0,
                        help="API requests/s one serve instance sustains with p95 under its "
                             "bound: benchmarks/scale_out.py's one-instance figure (default 50, "
                             "a placeholder until that figure is filled in)")
    parser.add_argument("--write-events-per-s", type=float, default=None,
                        help="events/s one instance records (default: the append rate "
                             "measured here, PostgreSQL if measured)")
    parser.add_argument("--canton-cases", type=int, default=CANTON_CASES,
                        help=f"cases (households) a year in the canton (default {CANTON_CASES})")
    parser.add_argument("--country-people", type=int, default=COUNTRY_PEOPLE)
    parser.add_argument("--people-per-case", type=float, default=PEOPLE_PER_CASE)
    parser.add_argument("--reads-per-open-case-day", type=float, default=20.0,
                        help="API requests per open case and working day (assumption)")
    parser.add_argument("--working-days", type=int, default=250,
                        help="working days a year on which case work is recorded (250)")
    parser.add_argument("--hours-per-day", type=float, default=9.0,
                        help="working hours a day (7-16 h: 9)")
    parser.add_argument("--busy-hour-factor", type=float, default=2.0,
                        help="busiest hour / working-hours average (assumption)")
    parser.add_argument("--headroom", type=float, default=2.0,
                        help="capacity planned / peak load (default 2)")
    parser.add_argument("--min-instances", type=int, default=2,
                        help="serve instances at least (one may fail; default 2)")
    parser.add_argument("--years", type=int, default=10)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.households < 10 or args.append_cases < 2:
        parser.error("--households must be ≥ 10, --append-cases ≥ 2")
    return args


# --- building and measuring ------------------------------------------------------------------


def _sqlite(folder: Path, args: argparse.Namespace, key: str) -> tuple[History, Measured]:
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'sqlite' / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": key, "NERVENBAHN_KEY_DIR": str(folder / "keys"),
    })
    (folder / "sqlite").mkdir(mode=0o700)
    measured = Measured("sqlite")
    history = _build_and_measure(settings, args, measured)
    path = settings.store.sqlite_path
    assert path is not None
    measured.store_bytes = sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal")
                               if os.path.exists(f"{path}{suffix}"))
    projections = store_folder(settings.store) / "projections"
    measured.read_model_bytes = sum(p.stat().st_size for p in projections.glob("*.db*"))
    measured.append = bench_execute(sqlite_store(str(folder), "append"),
                                    _append_args(args), key)
    return history, measured


def _postgres(folder: Path, args: argparse.Namespace, key: str) -> tuple[History, Measured]:
    schema = f"bench_capacity_{os.getpid()}_{secrets.token_hex(4)}"
    base = args.postgres_url
    secret = lambda: base64.b64encode(secrets.token_bytes(32)).decode()  # noqa: E731
    settings = load_settings({
        "NERVENBAHN_STORE": f"{base}?schema={schema}",
        "NERVENBAHN_PROJECTIONS_STORE": f"{base}?schema={schema}_read",
        "NERVENBAHN_MASTER_KEY": key, "NERVENBAHN_REPORTING_KEY": secret(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": secret(), "NERVENBAHN_KEY_DIR": str(folder / "pg-keys"),
        "NERVENBAHN_API_KEYS": str(folder / "pg-api-keys.json"),
        "NERVENBAHN_ACCESS_LOG": str(folder / "pg-access-log.db"),
        "NERVENBAHN_WEB_USERS": str(folder / "pg-web-users.db"),
    })
    measured = Measured("postgres")
    try:
        history = _build_and_measure(settings, args, measured)
        measured.store_bytes = _schema_bytes(base, schema)
        measured.read_model_bytes = _schema_bytes(base, f"{schema}_read")
    finally:
        _drop_schemas(base, schema, f"{schema}_read")
    store = postgres_store(base)
    try:
        measured.append = bench_execute(store, _append_args(args), key)
    finally:
        store.cleanup()
    return history, measured


def _append_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options `append.bench_execute` reads."""
    return argparse.Namespace(cases=args.append_cases, seed=args.seed)


def _build_and_measure(settings: Settings, args: argparse.Namespace,
                       measured: Measured) -> History:
    """The demo's canton (no bus), a steady-state payment run the month after (timed), the
    history counted, every read model rebuilt (timed)."""
    container = Container(settings)
    try:
        run_demo(container, Console(file=io.StringIO(), width=160),
                 households=args.households, seed=args.seed, reset=False, bus=False)
    finally:
        container.close()
    _monthly_run(settings, measured)
    container = Container(settings)
    try:
        history = count_history(container, args.households)
        measured.events = history.store_events
        for name in READ_MODELS:
            begun = time.perf_counter()
            measured.read_model_events[name] = container.rebuild_read_model(name)
            measured.read_model_seconds[name] = time.perf_counter() - begun
    finally:
        container.close()
    return history


def _monthly_run(settings: Settings, measured: Measured) -> None:
    """Run next month's payments (a clock a month ahead): after the demo's run, which paid
    every month owed so far, this is the steady state, one order per supported case."""
    now = datetime.now(SWISS_TIME)
    month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    ahead = now + (month - now.replace(day=1))
    container = Container(settings, clock=lambda: ahead)
    try:
        begun = time.perf_counter()
        summary = container.payments.run(RunPayments(month=month.date(), actor=SYSTEM,
                                                     correlation_id=uuid.uuid4()))
        measured.run_seconds = time.perf_counter() - begun
        measured.run_orders = len(summary.orders)
        measured.supported = sum(1 for case_id in container.service.case_ids()
                                 if container.service.get_case(case_id).phase == "supported")
    finally:
        container.close()


def count_history(container: Container, households: int) -> History:
    """Count the stores' events: per case, in the year, payments, benefit applications."""
    history = History(households)
    cases: dict[Any, list[tuple[datetime, str]]] = {}
    for event in _events(container.service):
        cases.setdefault(event.originator_id, []).append((event.timestamp,
                                                           type(event).__name__))
    history.cases = len(cases)
    history.case_events = sum(len(events) for events in cases.values())
    _count_year(history, cases)
    for event in _events(container.payments):
        history.payment_events += 1
        if type(event).__name__ == "PaymentOrdered" and not event.held and \
                YEAR_START <= event.for_month <= PERIOD_END:
            history.orders_in_year += 1
    times = []
    for event in _events(container.benefits):
        history.benefit_events += 1
        times.append(event.timestamp)
        history.applications += type(event).__name__ == "ApplicationReceived"
    if times:
        history.benefit_years = (max(times) - min(times)).total_seconds() / SECONDS_PER_YEAR
    history.store_events = history.case_events + history.payment_events + history.benefit_events
    return history


def _events(app: Any) -> Iterator[Any]:
    """Every event of an eventsourcing application's notification log, decoded."""
    position = 0
    while batch := app.recorder.select_notifications(start=position + 1, limit=BATCH):
        for notification in batch:
            yield app.mapper.to_domain_event(notification)
        position = batch[-1].id


def _count_year(history: History, cases: dict[Any, list[tuple[datetime, str]]]) -> None:
    """Cases active in the year, their events in it, the share open at a month's start."""
    months = [date(YEAR_START.year + (YEAR_START.month - 1 + n) // 12,
                   (YEAR_START.month - 1 + n) % 12 + 1, 1) for n in range(12)]
    open_at = [0] * 12
    spans = []
    for events in cases.values():
        events.sort()
        spans.append((events[-1][0] - events[0][0]).total_seconds() / SECONDS_PER_YEAR)
        in_year = [e for e in events if YEAR_START <= e[0].astimezone(SWISS_TIME).date()
                   <= PERIOD_END]
        history.case_events_in_year += len(in_year)
        opened = [_is_open(events, month) for month in months]
        for n, is_open in enumerate(opened):
            open_at[n] += is_open
        history.active += bool(in_year) or any(opened)
    history.span_years = sum(spans) / len(spans) if spans else 0.0
    history.open_share = sum(open_at) / 12 / history.active if history.active else 0.0


def _is_open(events: list[tuple[datetime, str]], day: date) -> bool:
    """Whether the case was open (opened or reopened, not closed) at the start of `day`."""
    state = False
    for moment, name in events:
        if moment.astimezone(SWISS_TIME).date() >= day:
            break
        if name in ("CaseOpened", "CaseReopened"):
            state = True
        elif name == "CaseClosed":
            state = False
    return state


def _schema_bytes(url: str, schema: str) -> int:
    """pg_total_relation_size (table, indexes, TOAST) of every table of `schema`."""
    with psycopg.connect(_pg_conninfo(url)) as db:
        row = db.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm', 'p')", (schema,)).fetchone()
    return int(row[0]) if row else 0


def _drop_schemas(url: str, *schemas: str) -> None:
    with psycopg.connect(_pg_conninfo(url), autocommit=True) as db:
        for schema in schemas:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- the model ---------------------------------------------------------------------------------

RUN = "benchmarks/capacity.py"


def input_figures(history: History, measured: dict[str, Measured],
                  args: argparse.Namespace) -> dict[str, Figure]:
    """The measured inputs (and the passed-in ones), by key."""
    h = history
    demo = f"{RUN} (demo history, {h.households} households, seed {args.seed})"
    year = f"{YEAR_START} to {PERIOD_END}"
    per_year = h.benefit_events / h.households / h.benefit_years if h.benefit_years else 0.0
    figures = [
        Figure("cases", "cases in the demo's history", h.cases, "cases", demo),
        Figure("events_per_case", "case events per case (whole history)",
               h.case_events / h.cases, "events", demo),
        Figure("span_years", "years from a case's first to its last event (mean)",
               h.span_years, "years", demo),
        Figure("active", f"cases active in the year {year}", h.active, "cases", demo),
        Figure("case_events_per_case_year", "case events per active case and year",
               h.case_events_in_year / h.active, "events", demo),
        Figure("orders_per_case_year", "payment orders per active case and year",
               h.orders_in_year / h.active, "events", demo + ", months of the year"),
        Figure("benefit_events_per_case_year", "benefit events per household and year",
               per_year, "events", f"{demo}: {h.benefit_events} events of {h.applications} "
               f"applications over {h.benefit_years:.2f} years"),
        Figure("open_share", "cases open at a time / cases active in the year", h.open_share,
               "ratio", demo + ", mean of the 12 month starts"),
    ]
    for backend, m in measured.items():
        source = f"{RUN}, {backend}"
        apply = {name: m.read_model_events[name] / m.read_model_seconds[name]
                 for name in m.read_model_seconds if m.read_model_events[name]}
        slowest = min(apply, key=lambda name: apply[name])
        assert m.append is not None
        figures += [
            Figure(f"bytes_per_event_{backend}", f"store bytes per event ({backend})",
                   m.store_bytes / m.events, "bytes",
                   f"{source}: {m.store_bytes:,} bytes / {m.events:,} events"
                   + (", pg_total_relation_size of the schema" if backend == "postgres"
                      else ", file size")),
            Figure(f"read_model_bytes_per_case_{backend}", f"read-model bytes per case ({backend})",
                   m.read_model_bytes / h.cases, "bytes",
                   f"{source}: {m.read_model_bytes:,} bytes, {len(m.read_model_seconds)} read "
                   "models"),
            Figure(f"read_model_bytes_per_event_{backend}",
                   f"read-model bytes per case or benefit event ({backend})",
                   m.read_model_bytes / (h.case_events + h.benefit_events), "bytes", source),
            Figure(f"append_{backend}", f"append rate, one process ({backend})",
                   m.append.nervenbahn, "events/s",
                   f"append.py bench_execute, {m.append.detail['commands']} commands, "
                   f"{m.append.detail['commands_per_s']:.0f} commands/s"),
            Figure(f"apply_{backend}", f"read-model apply rate, slowest read model ({backend})",
                   apply[slowest], "events/s",
                   f"{source}: rebuild of {slowest}; "
                   + ", ".join(f"{n} {r:,.0f}" for n, r in sorted(apply.items()))),
            Figure(f"payment_run_{backend}", f"monthly payment run, one process ({backend})",
                   m.run_orders / m.run_seconds if m.run_seconds else 0.0, "orders/s",
                   f"{source}: {m.run_orders} orders for {m.supported} supported cases in "
                   f"{m.run_seconds:.1f} s"),
        ]
    backend = "postgres" if "postgres" in measured else "sqlite"
    write = args.write_events_per_s or measured[backend].append.nervenbahn  # type: ignore[union-attr]
    figures += [
        Figure("api_rps_per_instance", "API requests/s per instance (input)",
               args.api_rps_per_instance, "req/s",
               "--api-rps-per-instance: benchmarks/scale_out.py, one instance"),
        Figure("write_per_instance", "events/s one instance records (input)", write,
               "events/s", "--write-events-per-s" if args.write_events_per_s
               else f"append_{backend} above (one process, one command per transaction)"),
    ]
    return {figure.key: figure for figure in figures}


def derive(inputs: dict[str, Figure], args: argparse.Namespace) -> list[Figure]:
    """The model for the canton (`value`) and Switzerland (`country`)."""
    v = {key: figure.value for key, figure in inputs.items()}
    backend = "postgres" if "bytes_per_event_postgres" in v else "sqlite"
    working_s = args.working_days * args.hours_per_day * 3600
    day_s = args.hours_per_day * 3600
    rows: list[Figure] = []

    def row(key: str, what: str, unit: str, source: str, of: Callable[[float], float]) -> None:
        canton, country = args.canton_cases, args.country_people / args.people_per_case
        rows.append(Figure(key, what, of(canton), unit, source, of(country)))

    case_year = v["case_events_per_case_year"]
    orders_year = v["orders_per_case_year"]
    benefit_year = v["benefit_events_per_case_year"]
    store_b = v[f"bytes_per_event_{backend}"]
    read_b = v[f"read_model_bytes_per_event_{backend}"]
    row("cases", "cases a year", "cases", "canton: --canton-cases; Switzerland: "
        "--country-people / --people-per-case", lambda c: c)
    row("open", "cases open at a time", "cases", "cases × open_share",
        lambda c: c * v["open_share"])
    row("events", "events a year", "events", "cases × (case + payment + benefit events per "
        "case-year)", lambda c: c * (case_year + orders_year + benefit_year))
    row("avg_eps", "events/s, yearly average", "events/s", "events a year / 31,536,000 s",
        lambda c: c * (case_year + orders_year + benefit_year) / SECONDS_PER_YEAR)
    busy = lambda c: c * (case_year + benefit_year) / working_s * args.busy_hour_factor  # noqa: E731
    row("busy_eps", "case + benefit events/s, busiest hour", "events/s",
        f"case and benefit events in {args.working_days} days × {args.hours_per_day:g} h, "
        f"× {args.busy_hour_factor:g} (busy-hour factor)", busy)
    run_rate = v[f"payment_run_{backend}"]
    row("run_orders", "payment orders per monthly run", "orders", "cases × orders per "
        "case-year / 12", lambda c: c * orders_year / 12)
    row("run_minutes", "monthly payment run, one process", "min",
        f"orders / payment_run_{backend} (the run records at that rate: the peak of the "
        "payments topic)", lambda c: c * orders_year / 12 / run_rate / 60 if run_rate else 0.0)
    per_year = lambda c: c * (case_year + orders_year + benefit_year) * store_b  # noqa: E731
    reads_year = lambda c: c * (case_year + benefit_year) * read_b  # noqa: E731
    row("store_gb_year", "event store growth a year", "GB", f"events × bytes_per_event_{backend}",
        lambda c: per_year(c) / 1e9)
    row("read_gb_year", "read-model growth a year", "GB",
        f"case and benefit events × read_model_bytes_per_event_{backend}",
        lambda c: reads_year(c) / 1e9)
    row("pg_gb", f"PostgreSQL after {args.years} years (store + read models)", "GB",
        f"{args.years} × (store + read models) a year, constant caseload, nothing deleted",
        lambda c: args.years * (per_year(c) + reads_year(c)) / 1e9)
    api = lambda c: (c * v["open_share"] * args.reads_per_open_case_day / day_s  # noqa: E731
                     * args.busy_hour_factor)
    row("api_rps", "API requests/s, busiest hour", "req/s",
        f"open cases × {args.reads_per_open_case_day:g} requests per working day "
        f"/ {args.hours_per_day:g} h × {args.busy_hour_factor:g}", api)
    consumers = lambda c: max(1, math.ceil(busy(c) * args.headroom  # noqa: E731
                                           / v[f"apply_{backend}"]))
    row("consumers", "read-model consumers needed per read model", "consumers",
        f"busiest-hour events × {args.headroom:g} / apply_{backend}", consumers)
    instances = lambda c: max(  # noqa: E731
        args.min_instances,
        math.ceil(api(c) * args.headroom / v["api_rps_per_instance"]),
        math.ceil(busy(c) * args.headroom / v["write_per_instance"]))
    row("instances", "serve instances", "instances",
        f"max(--min-instances {args.min_instances}, API req/s × {args.headroom:g} / "
        f"api_rps_per_instance, busiest-hour events × {args.headroom:g} / write_per_instance)",
        instances)
    row("partitions", "partitions per topic", "partitions",
        "next power of two ≥ 2 × max(instances, consumers), at least 4 (the default)",
        lambda c: partitions(max(instances(c), consumers(c))))
    row("connections", "PostgreSQL max_connections", "connections",
        f"instances × {CONNECTIONS_PER_SERVE} per serve (docs/operations.md) + 20 for "
        "connectors and operators",
        lambda c: instances(c) * CONNECTIONS_PER_SERVE + 20)
    return rows


def partitions(consumers: int) -> int:
    """The rule of thumb: a power of two with room for twice the largest consumer group."""
    return max(4, 2 ** math.ceil(math.log2(2 * consumers)))


# --- output -----------------------------------------------------------------------------------


COUNTED = ("cases", "orders", "consumers", "instances", "partitions", "connections")
"""Units of whole numbers."""


def _number(value: float, unit: str) -> str:
    """Whole numbers as such, others with three significant digits (at least)."""
    if unit in COUNTED or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _print(runtime: float, args: argparse.Namespace, inputs: dict[str, Figure],
           model: list[Figure], notes: list[str]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="Capacity model: inputs (measured in this run unless marked input)")
    for name, justify in (("what", "left"), ("value", "right"), ("unit", "left"),
                          ("source", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for figure in inputs.values():
        table.add_row(figure.what, _number(figure.value, figure.unit), figure.unit,
                      figure.source)
    console.print(table)
    table = Table(title="Capacity model: derived")
    for name, justify in (("what", "left"), ("canton SO", "right"), ("Switzerland", "right"),
                          ("unit", "left"), ("how", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for figure in model:
        assert figure.country is not None
        table.add_row(figure.what, _number(figure.value, figure.unit),
                      _number(figure.country, figure.unit), figure.unit, figure.source)
    console.print(table)
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    console.print(f"seed {args.seed}; {args.households} households; runtime {runtime:.1f} s")


def _emit_json(runtime: float, args: argparse.Namespace, inputs: dict[str, Figure],
               model: list[Figure], measured: dict[str, Measured], notes: list[str]) -> None:
    """One JSON object (report.py's `emit_json`): the inputs and the model beside the run's
    parameters; `results` are append.py's rows it reused (nervenbahn beside raw)."""
    params = {
        "households": args.households, "backend": args.backend,
        "inputs": [{"key": f.key, "what": f.what, "value": round(f.value, 3), "unit": f.unit,
                    "source": f.source} for f in inputs.values()],
        "model": [{"key": f.key, "what": f.what, "canton": round(f.value, 3),
                   "switzerland": round(f.country or 0.0, 3), "unit": f.unit,
                   "how": f.source} for f in model],
    }
    rows = [m.append for m in measured.values() if m.append is not None]
    emit_json(runtime, args.seed, params, rows, notes)


if __name__ == "__main__":
    sys.exit(main())
