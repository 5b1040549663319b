"""Load test of the API: one `serve` instance beside three on the same store, same scenario.

    .venv/bin/python benchmarks/scale_out.py [--households N] [--users U] [--duration S]
                                             [--write-rate E] [--json] [--seed S]

Builds a canton in PostgreSQL: the demo's synthetic households (`nervenbahn demo --no-bus`:
cases, benefit applications, payments) in a schema of its own, the read models in a second
schema shared by the instances (NERVENBAHN_PROJECTIONS_STORE), one embedded broker, an API key
per branch office, per social region and for the canton. Then, twice, for a fixed duration:
start the instances (`nervenbahn serve` processes, each in a folder of its own), wait until
each is ready, and run the same locust scenario (`scale_locust.py`, headless, a process of its
own) while a writer in this process records case commands at a steady rate into the store
(the API has no write endpoint: writes come from the CLI and connectors). Once with ONE
instance, once with THREE, users assigned to instances in turn as a load balancer would.

Prints, per endpoint, requests/s and p50/p95/p99 and failures of both runs side by side, the
ratio of throughputs, totals, the writer's events/s and the freshness of the read models under
that write load (seconds between now and the newest event a read model applied, sampled). Both
schemas are dropped at the end; the folder is temporary.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
from case_scripts import SWISS, case_script, interleaved
from report import Row, add_output_arguments, emit_json, percentile, print_table
from rich.console import Console
from stores import postgres_unreachable

from bus.broker import EmbeddedBroker, free_port
from domain.commands import parse_command
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.config import load_settings
from nervenbahn.container import Container
from nervenbahn.demo import run_demo
from nervenbahn.logging import configure_logging
from nervenbahn.synthetic import PERIOD_END, PERIOD_START
from projections import READ_MODELS

HERE = Path(__file__).resolve().parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
P95_BOUND_MS = 250.0
"""Our choice (no requirement names one): a screen that answers within a quarter of a second
in 95 of 100 requests feels immediate; the capacity figure is the throughput at that p95."""
POOL_SIZE = 2
"""Connections per pool of each instance (NERVENBAHN_POSTGRES_POOL_SIZE). At the default of 5
one `serve` holds ~31 PostgreSQL connections (several pools: store, benefits, positions, read
models); three of them and the writer would exhaust a server's default max_connections (100)."""
READY_WITHIN_S = 600.0
IDS_PER_OFFICE = 200
INSTANCES = (1, 3)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    parser.add_argument("--duration", type=int, default=40,
                        help="seconds of load per run, after all users started (default 40)")
    parser.add_argument("--write-rate", type=float, default=10.0,
                        help="case commands (one event each) recorded per second (default 10)")
    parser.add_argument("--postgres-url", default=POSTGRES)
    add_output_arguments(parser)
    args = parser.parse_args()
    if args.households < 1 or args.users < 1 or args.duration < 1 or args.write_rate <= 0:
        parser.error("--households, --users, --duration and --write-rate must be > 0")
    if reason := postgres_unreachable(args.postgres_url):
        parser.exit(2, f"scale_out needs PostgreSQL: {reason}\n")
    configure_logging("json", "warning")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nervenbahn-scale-") as folder, \
            EmbeddedBroker(Path(folder)) as broker:
        canton = Canton(Path(folder), broker, args)
        try:
            canton.build()
            runs = {n: canton.run(n) for n in INSTANCES}
        finally:
            canton.drop()
    runtime = time.perf_counter() - started
    rows = _rows(runs)
    notes = _notes(args, canton, runs)
    if args.json:
        emit_json(runtime, args.seed, {
            "households": args.households, "events": canton.events, "users": args.users,
            "duration_s": args.duration, "write_rate": args.write_rate, "instances": INSTANCES,
        }, rows, notes, ratio=RATIO)
        return
    print_table("nervenbahn serve: three instances vs one, same scenario and store", rows,
                notes, fmt=_fmt, describe=_describe, seed=args.seed, runtime=runtime,
                columns=("three instances", "one instance"), ratio=RATIO)


RATIO = "three-instance requests/s / one-instance requests/s"


# --- the canton and its instances -----------------------------------------------------------


@dataclass
class Run:
    """One run's figures: per endpoint (locust's), the writer's, the instances'."""

    endpoints: dict[str, dict[str, float]]
    total: dict[str, float]
    written: int
    write_seconds: float
    lags_s: list[float]
    ready_s: list[float]
    connections: dict[str, int]
    failed: list[str]
    """Locust's failures: endpoint, error, occurrences (why a request failed)."""


@dataclass
class Canton:
    """The store, the shared read models, the API keys and the instances' environment."""

    folder: Path
    broker: EmbeddedBroker
    args: argparse.Namespace
    schema: str = field(default_factory=lambda: f"bench_scale_{os.getpid()}_{secrets.token_hex(3)}")
    env: dict[str, str] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    build_s: float = 0.0

    def build(self) -> None:
        """The demo's canton in the store schema, every read model built in the shared one."""
        begun = time.perf_counter()
        _say(f"building the canton: {self.args.households} households in {self.schema}")
        url = self.args.postgres_url
        keys = {name: base64.b64encode(secrets.token_bytes(32)).decode()
                for name in ("MASTER", "REPORTING", "AUDIT_SIGNING")}
        self.env = {
            "NERVENBAHN_STORE": f"{url}?schema={self.schema}",
            "NERVENBAHN_PROJECTIONS_STORE": f"{url}?schema={self.schema}_rm",
            **{f"NERVENBAHN_{name}_KEY": key for name, key in keys.items()},
            "NERVENBAHN_POSTGRES_POOL_SIZE": str(POOL_SIZE),
            "NERVENBAHN_API_KEYS": str(self.folder / "api-keys.json"),
            "NERVENBAHN_WEB_USERS": str(self.folder / "web-users.db"),
            "NERVENBAHN_KAFKA": self.broker.bootstrap,
            "NERVENBAHN_KAFKA_PROFILE": "embedded",
            "NERVENBAHN_KAFKA_PARTITIONS": "4",  # Tansu's own count (bus/broker.py)
            "NERVENBAHN_TOPIC_PREFIX": f"scale{secrets.token_hex(4)}",
            "NERVENBAHN_LOG_FORMAT": "json",
            "NERVENBAHN_LOG_LEVEL": "warning",
        }
        with self.container("builder") as container:
            run_demo(container, Console(file=io.StringIO()), households=self.args.households,
                     seed=self.args.seed, reset=False, bus=False)
            for name in READ_MODELS:  # as `serve` builds them; once here, not thrice at start
                container.ensure_read_model(container.projection(name))
            self.events = container.service.recorder.max_notification_id() or 0
        self.build_s = time.perf_counter() - begun
        _say(f"built: {self.events} events in {self.build_s:.0f} s")

    @contextmanager
    def container(self, name: str) -> Any:
        """A container on the canton's store in this process (its files under `name`/)."""
        own = self.folder / name
        own.mkdir(exist_ok=True)
        cwd = Path.cwd()
        os.chdir(own)  # a PostgreSQL store's side files go to ./.nervenbahn
        container = Container(load_settings(_named(self.env, name)))
        try:
            yield container
        finally:
            container.close()
            os.chdir(cwd)

    def run(self, instances: int) -> Run:
        """Start `instances` serve processes, load them for the duration, stop them."""
        processes, ports, ready = [], [], []
        try:
            for i in range(1, instances + 1):
                ports.append(free_port())
                processes.append(self._serve(i, ports[-1]))
            begun = time.monotonic()
            for port, process in zip(ports, processes, strict=True):
                _wait_ready(port, process, begun + READY_WITHIN_S)
                ready.append(time.monotonic() - begun)
            _say(f"{instances} instance(s) ready after {ready[-1]:.0f} s")
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            if not self.plan:
                self.plan = _plan(urls[0], self.folder, self.args.seed)
                _say(f"plan: {len(self.plan['offices'])} offices, "
                     f"{len(self.plan['regions'])} regions")
            plan_file = self.folder / f"plan-{instances}.json"
            plan_file.write_text(json.dumps({**self.plan, "instances": urls}))
            with self._writing() as writer, _sampling_lag(urls, self.plan) as lags:
                endpoints, total, failed = self._locust(plan_file, instances)
            connections = _connections(self.args.postgres_url, f"scale-{self.schema[-6:]}-")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                _stop(process)
            _say(f"{instances} instance(s) stopped")
        return Run(endpoints, total, writer.written, writer.seconds, lags, ready, connections,
                   failed)

    def _serve(self, i: int, port: int) -> subprocess.Popen[bytes]:
        own = self.folder / f"instance-{i}"
        own.mkdir(exist_ok=True)
        env = {**os.environ, **_named(self.env, f"scale-{self.schema[-6:]}-{i}"),
               "NERVENBAHN_ACCESS_LOG": str(own / "access-log.db")}
        with (own / "serve.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "nervenbahn", "serve", "--port", str(port)],
                cwd=own, env=env, stdout=log, stderr=log)

    def _locust(self, plan: Path, instances: int) -> tuple[dict[str, dict[str, float]],
                                                            dict[str, float], list[str]]:
        prefix = self.folder / f"locust-{instances}"
        users = self.args.users
        with (self.folder / f"locust-{instances}.log").open("wb") as log:
            subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(HERE / "scale_locust.py"),
                 "--headless", "--plan", str(plan), "-u", str(users), "-r", str(users),
                 "-t", f"{self.args.duration + 1}s", "--reset-stats", "--only-summary",
                 "--csv", str(prefix), "--loglevel", "WARNING", "--stop-timeout", "5",
                 "--exit-code-on-error", "0"],
                cwd=self.folder, stdout=log, stderr=log, check=True,
                timeout=self.args.duration + 120)
        with open(f"{prefix}_stats.csv", encoding="utf-8") as file:
            stats = {row["Name"]: _figures(row) for row in csv.DictReader(file)}
        total = stats.pop("Aggregated")
        with open(f"{prefix}_failures.csv", encoding="utf-8") as file:
            failed = [f"{row['Name']}: {row['Error']} ({row['Occurrences']}x)"
                      for row in csv.DictReader(file)]
        return stats, total, failed

    @contextmanager
    def _writing(self) -> Any:
        """A writer thread recording case commands at `--write-rate` until the block ends."""
        writer = _Writer(self.args.write_rate, self.args.seed)
        with self.container("writer") as container:
            thread = threading.Thread(target=writer.run, args=(container,), name="writer")
            thread.start()
            try:
                yield writer
            finally:
                writer.stop.set()
                thread.join()
        if writer.error:
            raise RuntimeError(f"the writer failed: {writer.error}")

    def drop(self) -> None:
        """Drop both schemas."""
        with psycopg.connect(self.args.postgres_url, autocommit=True) as admin:
            for schema in (self.schema, f"{self.schema}_rm"):
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _named(env: dict[str, str], name: str) -> dict[str, str]:
    """`env` with every PostgreSQL connection named `name` (pg_stat_activity's
    application_name), to count each instance's connections."""
    return {k: f"{v}&application_name={name}" if k.endswith("STORE") else v
            for k, v in env.items()}


def _wait_ready(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Until GET /health/ready answers 200; an instance that exits or is late fails the run."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"serve on port {port} exited with {process.returncode}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve on port {port} not ready within {READY_WITHIN_S:.0f} s")
        time.sleep(0.5)


def _say(message: str) -> None:
    """Progress, to stderr (stdout carries the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _connections(url: str, prefix: str) -> dict[str, int]:
    """PostgreSQL connections per application name starting with `prefix`."""
    with psycopg.connect(url, autocommit=True) as admin:
        found = admin.execute("SELECT application_name, count(*) FROM pg_stat_activity "
                              "WHERE application_name LIKE %s GROUP BY 1", (f"{prefix}%",))
        return {name.removeprefix(prefix): count for name, count in found.fetchall()}


# --- the plan: keys and ids the users ask for -----------------------------------------------


def _plan(url: str, folder: Path, seed: int) -> dict[str, Any]:
    """An API key per branch office, per social region and for the canton; case and
    application ids per office and case ids per region, read from the API (untimed)."""
    reference = load_reference_data()
    registry = ApiKeyRegistry(folder / "api-keys.json")  # every instance reads this file
    now = datetime.now(UTC)
    keys = {office: registry.add(f"office-{office}", Scope("branch_office", office), now=now)
            for office in sorted(load_branch_offices())}

    def office(client: httpx.Client, office_id: str) -> dict[str, Any]:
        path, key = f"/v1/branch-offices/{office_id}", keys[office_id]
        cases = _get(client, f"{path}/cases", key, limit=IDS_PER_OFFICE)["cases"]
        applications = _get(client, f"{path}/benefit-applications", key,
                            limit=IDS_PER_OFFICE)["applications"]
        return {"id": office_id, "key": key, "cases": [c["case_id"] for c in cases],
                "bfs": [c["municipality_bfs"] for c in cases],
                "applications": [a["application_id"] for a in applications]}

    with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(4) as pool:
        offices = list(pool.map(partial(office, client), keys))
    regions: dict[str, list[str]] = {}
    for found in offices:
        for case_id, bfs in zip(found["cases"], found.pop("bfs"), strict=True):
            regions.setdefault(reference.municipality(bfs).region_id, []).append(case_id)
    days = (PERIOD_END - PERIOD_START).days
    today = datetime.now(SWISS).date()
    return {
        "seed": seed,
        "offices": [o for o in offices if o["cases"] or o["applications"]],
        "regions": [{"id": region, "cases": ids,
                     "key": registry.add(f"region-{region}", Scope("region", region), now=now)}
                    for region, ids in sorted(regions.items())],
        "canton_key": registry.add("canton", Scope("canton"), now=now),
        "days": [(PERIOD_START + timedelta(days=n)).isoformat() for n in range(0, days + 1, 7)],
        "quarters": sorted({f"{d.year}Q{(d.month - 1) // 3 + 1}" for d in
                            (PERIOD_START + timedelta(days=n) for n in range(0, days + 1, 30))}),
        "weeks": sorted({_iso_week(today - timedelta(weeks=w)) for w in range(26)}),
    }


def _get(client: httpx.Client, path: str, key: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers={"X-API-Key": key})
    answer.raise_for_status()
    return answer.json()


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


# --- the write load and the read models' freshness ------------------------------------------


@dataclass
class _Writer:
    """Records case commands (synthetic case scripts, cases worked on at once) at `rate`/s."""

    rate: float
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    written: int = 0
    seconds: float = 0.0
    error: str = ""

    def run(self, container: Container) -> None:
        """Until `stop`: the next command at its time, then wait for the one after."""
        rng = random.Random(f"{self.seed}-writer-{time.time_ns()}")
        reference, today = load_reference_data(), datetime.now(SWISS).date()
        begun = time.monotonic()
        due = begun
        try:
            while not self.stop.is_set():
                scripts = [case_script(rng, reference, [today] * 10) for _ in range(20)]
                for _case, _step, (name, data) in interleaved(scripts):
                    if self.stop.wait(max(0.0, due - time.monotonic())):
                        break
                    container.service.execute(parse_command(name, data))
                    self.written += 1
                    due += 1 / self.rate
        except Exception as exc:  # a failing writer must fail the run, not vanish
            self.error = repr(exc)
        self.seconds = time.monotonic() - begun


@contextmanager
def _sampling_lag(urls: list[str], plan: dict[str, Any]) -> Any:
    """Every 0.5 s, one instance in turn: now minus the newest event the regions' read model
    applied (header X-Read-Model-As-Of of a caseload), once the writer's events reach it."""
    lags: list[float] = []
    stop = threading.Event()
    region = plan["regions"][0]
    since = datetime.now(UTC)

    def sample() -> None:
        turn = 0
        with httpx.Client(timeout=30, headers={"X-API-Key": region["key"]}) as client:
            while not stop.wait(0.5):
                url, turn = urls[turn % len(urls)], turn + 1
                with suppress(httpx.HTTPError):
                    as_of = client.get(f"{url}/v1/regions/{region['id']}/caseload"
                                       ).headers.get("X-Read-Model-As-Of")
                    if as_of and (at := datetime.fromisoformat(as_of)) >= since:
                        lags.append((datetime.now(UTC) - at).total_seconds())

    thread = threading.Thread(target=sample, name="lag-sampler")
    thread.start()
    try:
        yield lags
    finally:
        stop.set()
        thread.join()


# --- figures --------------------------------------------------------------------------------


def _figures(row: dict[str, str]) -> dict[str, float]:
    return {"requests": float(row["Request Count"]), "failures": float(row["Failure Count"]),
            "per_s": float(row["Requests/s"]), "p50_ms": _ms(row["50%"]),
            "p95_ms": _ms(row["95%"]), "p99_ms": _ms(row["99%"]), "max_ms": _ms(row["100%"])}


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0


def _rows(runs: dict[int, Run]) -> list[Row]:
    one, three = runs[1], runs[3]
    names = sorted(set(one.endpoints) | set(three.endpoints))
    rows = [_row(name, name, one.endpoints.get(name, {}), three.endpoints.get(name, {}))
            for name in names]
    rows.append(_row("total", "all endpoints", one.total, three.total))
    rows[-1].detail |= {"one_failed": one.failed, "three_failed": three.failed}
    return rows


def _row(key: str, what: str, one: dict[str, float], three: dict[str, float]) -> Row:
    detail: dict[str, Any] = {f"{side}_{name}": figures.get(name, 0.0)
                              for side, figures in (("one", one), ("three", three))
                              for name in ("requests", "failures", "per_s", "p50_ms", "p95_ms",
                                           "p99_ms", "max_ms")}
    one_rate, three_rate = detail["one_per_s"], detail["three_per_s"]
    return Row(
        key=key, what=what, backend="postgres", unit="req/s",
        nervenbahn=three_rate, raw=one_rate, ratio=three_rate / one_rate if one_rate else 0.0,
        target=f"p95 < {P95_BOUND_MS:.0f} ms",
        met=0 < detail["three_p95_ms"] < P95_BOUND_MS and not detail["three_failures"],
        detail=detail,
    )


def _fmt(row: Row, side: str) -> str:
    d, name = row.detail, "three" if side == "nervenbahn" else "one"
    return (f"{d[f'{name}_per_s']:,.1f} req/s, {d[f'{name}_failures']:.0f} failed\n"
            f"{d[f'{name}_p50_ms']:,.0f} / {d[f'{name}_p95_ms']:,.0f} / "
            f"{d[f'{name}_p99_ms']:,.0f} ms")


def _describe(row: Row) -> list[str]:
    return [f"{side} instance(s), failed: {reason}" for side in ("one", "three")
            for reason in row.detail.get(f"{side}_failed", [])]


def _notes(args: argparse.Namespace, canton: Canton, runs: dict[int, Run]) -> list[str]:
    notes = [f"{args.households} households ({canton.events:,} events) built in "
             f"{canton.build_s:.0f} s; {args.users} users (office staff 60 %, regional "
             f"caseworkers 30 %, canton 10 %, 0.2-1 s between requests) for {args.duration} s; "
             "load generator, instances, PostgreSQL and broker share this machine's cores"]
    for n, run in runs.items():
        lags = run.lags_s
        lag = (f"read-model freshness p50 {percentile(lags, 50):.2f} s, "
               f"p95 {percentile(lags, 95):.2f} s, max {max(lags):.2f} s ({len(lags)} samples)"
               if lags else "read-model freshness: no sample reached the writer's events")
        notes.append(
            f"{n} instance(s): writer {run.written / run.write_seconds:.1f} events/s "
            f"({run.written} events); {lag}; ready after "
            f"{', '.join(f'{s:.0f}' for s in run.ready_s)} s; PostgreSQL connections "
            f"per instance {dict(sorted(run.connections.items()))} (pool size {POOL_SIZE})")
    return notes


if __name__ == "__main__":
    main()
