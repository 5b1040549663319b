"""Scale benchmark: the same synthetic canton at about 30 thousand, 300 thousand and 1 million
events — import, relay, rebuild, as-of, API, store size and peak memory at each size.

    .venv/bin/python benchmarks/scale.py [--sizes 30000,300000,1000000] [--window N]
                                         [--clients N] [--requests M] [--keep DIR] [--json]

One SQLite store grows through the sizes: the synthetic canton's households are imported in
chunks of about `--chunk` events each (`CaseService.import_records`, full validation, as
`nervenbahn import` does), so the import throughput of the last chunks before a size is the
import rate *at* that size. When the store reaches a size, a fresh process measures on it:

- relay: `Relay.run(until_caught_up=True)` of the newest `--window` events (its position set
  `--window` events before the head; fresh topics on the embedded broker), events/s;
- rebuild: each read model rebuilt from the first event (`projections.rebuild`), events/s;
- as-of: `case_as_of` of 30 cases drawn at random, each the first read of that case in the
  process (no decoded snapshot cached), p50 / p99;
- API: `read_models.py`'s client mix on the rebuilt read models, p99;
- store size on disk (bytes per event) and the peak RSS of the growing and measuring processes.

Throughput is "flat" when every size is within ±20 % of the smallest size's; memory is
"bounded" when the peak RSS of the largest size is under 1.2× the smallest's plus 100 MB
(what a process needs does not grow with the store: batches, chunks and windows are fixed).
The last lines extrapolate to Switzerland (about 270,000 people in social assistance) from the
synthetic canton's events per person and the measured rates. Not part of CI: it runs for
minutes (about 10 on 2 cores for the default sizes).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import add_output_arguments, percentile

SWITZERLAND_PEOPLE = 270_000
"""People in social assistance in Switzerland (BFS, social assistance statistics, rounded)."""
RETENTION_YEARS = 10
"""Years of history the extrapolation assumes in one store (our assumption: social-assistance
files are commonly kept ten years; the event store keeps everything it recorded)."""
FLAT = 0.2
RSS_SLACK_MB = 100.0
AS_OF_CALLS = 30
REBUILD_BATCH = 2000
EVENTS_PER_HOUSEHOLD = 7.5
"""First guess for the chunk sizes; the chunks correct it with what they imported."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="30000,300000,1000000",
        help="store sizes in events, ascending (default 30000,300000,1000000)",
    )
    parser.add_argument("--chunk", type=int, default=30_000, help="events per import (30000)")
    parser.add_argument(
        "--window",
        type=int,
        default=30_000,
        help="events the relay catches up on at each size (30000)",
    )
    parser.add_argument("--clients", type=int, default=16, help="API clients (16)")
    parser.add_argument("--requests", type=int, default=100, help="API requests per client (100)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the store in this (new) folder and keep it"
    )
    add_output_arguments(parser)
    parser.add_argument("--grow-to", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grow_to is not None:
        return _child(lambda: grow(args.folder, args.grow_to, args.chunk, args.seed))
    if args.measure:
        return _child(lambda: measure(args.folder, args.bootstrap, args))
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a comma-separated list of event counts")
    if sizes != sorted(sizes) or sizes[0] < 1000 or args.window < 100 or args.chunk < 1000:
        parser.error("--sizes must ascend from at least 1000; --window ≥ 100; --chunk ≥ 1000")
    return run(args, sizes)


# --- the parent: one store, grown size by size --------------------------------------------


def run(args: argparse.Namespace, sizes: list[int]) -> int:
    from bus.broker import EmbeddedBroker
    from nervenbahn.config import load_kafka_settings

    started = time.perf_counter()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nervenbahn-scale-"))
    (folder / "master.key").write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    results: list[dict[str, Any]] = []
    try:
        kafka = load_kafka_settings()
        broker = EmbeddedBroker(folder / "broker") if kafka.embedded else None
        try:
            bootstrap = (
                broker.__enter__().bootstrap
                if broker is not None
                else ",".join(kafka.bootstrap_servers)
            )
            for size in sizes:
                grown = _spawn(
                    [
                        "--grow-to",
                        str(size),
                        "--folder",
                        str(folder),
                        "--chunk",
                        str(args.chunk),
                        "--seed",
                        str(args.seed),
                    ]
                )
                measured = _spawn(
                    [
                        "--measure",
                        "--folder",
                        str(folder),
                        "--bootstrap",
                        bootstrap,
                        "--window",
                        str(args.window),
                        "--clients",
                        str(args.clients),
                        "--requests",
                        str(args.requests),
                        "--seed",
                        str(args.seed),
                    ]
                )
                results.append(grown | measured | {"store_bytes": _store_bytes(folder)})
                print(f"size {size:,}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
        finally:
            if broker is not None:
                broker.__exit__(None, None, None)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    table = _table(results)
    verdicts = _verdicts(results)
    swiss = _switzerland(results[-1])
    runtime = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "runtime_s": round(runtime, 1),
                    "seed": args.seed,
                    "sizes": sizes,
                    "window": args.window,
                    "chunk": args.chunk,
                    "results": results,
                    "verdicts": verdicts,
                    "switzerland": swiss,
                },
                ensure_ascii=False,
            )
        )
        return 0
    _print(table, verdicts, swiss, results, runtime, args)
    return 0


def _spawn(arguments: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"scale.py {' '.join(arguments[:2])} failed (exit "
            f"{done.returncode}):\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _store_bytes(folder: Path) -> int:
    """The event store's files (database, WAL), not the read models or keys."""
    return sum(path.stat().st_size for path in folder.glob("store.db*"))


def _child(work: Any) -> int:
    from nervenbahn.logging import configure_logging

    with open(os.devnull, "w") as devnull:
        configure_logging("json", "warning", stream=devnull)
        result = work()
    result_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    key = "grow_rss_mb" if "import_events_per_s" in result else "measure_rss_mb"
    print(json.dumps(result | {key: round(result_rss, 1)}))
    return 0


def _settings(folder: Path, **extra: str) -> Any:
    from nervenbahn.config import load_settings

    return load_settings(
        {
            "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
            "NERVENBAHN_MASTER_KEY": (folder / "master.key").read_text(),
            "NERVENBAHN_KEY_DIR": str(folder / "keys"),
            **extra,
        }
    )


# --- growing: chunks of households imported ------------------------------------------------


def grow(folder: Path, size: int, chunk: int, seed: int) -> dict[str, Any]:
    """Import chunks of synthetic households until the store holds at least `size` events."""
    from domain.reference import load_reference_data
    from nervenbahn.container import Container
    from nervenbahn.keyfiles import create_keys
    from nervenbahn.synthetic import synthetic_history

    settings = _settings(folder)
    create_keys(settings)  # as `nervenbahn init`; keeps existing keys
    container = Container(settings)
    service = container.service
    reference = load_reference_data()
    tally_path = folder / "tally.json"
    tally = (
        json.loads(tally_path.read_text())
        if tally_path.exists()
        else {"chunks": 0, "households": 0, "people": 0, "events": 0}
    )
    now = datetime.now(UTC).isoformat()
    timed: list[tuple[int, float]] = []  # (events, seconds) per chunk
    try:
        events = service.recorder.max_notification_id() or 0
        while events < size:
            per_household = (
                tally["events"] / tally["households"]
                if tally["households"]
                else EVENTS_PER_HOUSEHOLD
            )
            households = max(1, math.ceil(min(chunk, size - events) / per_household))
            records = [
                r
                for r in synthetic_history(reference, households, seed * 100_003 + tally["chunks"])
                if r["recorded_at"] <= now
            ]
            lines = [json.dumps(record) for record in records]
            begun = time.perf_counter()
            report = service.import_records(lines)
            seconds = time.perf_counter() - begun
            timed.append((report.events, seconds))
            tally["chunks"] += 1
            tally["households"] += households
            tally["people"] += sum(
                r["data"]["household_size"] for r in records if r.get("command") == "open_case"
            )
            tally["events"] += report.events
            events = service.recorder.max_notification_id() or 0
        tally_path.write_text(json.dumps(tally))
    finally:
        container.close()
    # The last three chunks' events over their time: a short last chunk (the remainder up to
    # the size) weighs only as much as its events.
    last = timed[-3:]
    rate = sum(e for e, _ in last) / sum(t for _, t in last) if last else 0.0
    return {
        "events": events,
        "households": tally["households"],
        "people": tally["people"],
        "chunks": tally["chunks"],
        "import_events_per_s": rate,
        "import_chunks_timed": len(last),
    }


# --- measuring at one size -----------------------------------------------------------------


def measure(folder: Path, bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    from nervenbahn.container import Container

    settings = _settings(folder)
    container = Container(settings)
    try:
        service = container.service
        events = service.recorder.max_notification_id() or 0
        result: dict[str, Any] = {}
        result |= _relay(settings, service, bootstrap, events, args.window)
        result |= _rebuild(settings, service, events)
        result |= _as_of(service, events, args.seed)
        result |= _api(settings, folder, args)
        return result
    finally:
        container.close()


def _relay(settings: Any, service: Any, bootstrap: str, events: int, window: int) -> dict[str, Any]:
    """Catch up on the newest `window` events, on topics of this measurement's own."""
    from bus.kafka_settings import KafkaSettings
    from bus.positions import RelayPosition
    from bus.positions_sqlite import SQLitePositionStore
    from bus.topics import catalogue, ensure_topics
    from nervenbahn.config import load_kafka_settings
    from nervenbahn.container import Container
    from nervenbahn.datasets import dataset

    base = load_kafka_settings().with_bootstrap(bootstrap)
    kafka = KafkaSettings.model_validate(
        {
            **base.model_dump(),
            "topic_prefix": f"scale-{uuid.uuid4().hex[:8]}",
            "client_id_prefix": "nervenbahn-scale",
        }
    )
    window = min(window, events)
    name = dataset("case-events").relay
    assert name is not None
    positions = SQLitePositionStore(settings.store.sqlite_path)
    try:
        # Fresh topics hold nothing: `published` 0 and a new epoch, else the relay would take
        # the empty topics for a broker that lost its messages and republish from the start.
        positions.save(
            name, RelayPosition(position=events - window, published=0, epoch=uuid.uuid4().hex)
        )
    finally:
        positions.close()
    bus = Container(settings, kafka=kafka, service=service)
    try:
        ensure_topics(kafka, catalogue(kafka))
        with bus.relay("case-events") as relay:
            begun = time.perf_counter()
            status = relay.run(threading.Event(), until_caught_up=True)
            seconds = time.perf_counter() - begun
    finally:
        bus.close()
    if status.lag or status.published != window:
        raise RuntimeError(
            f"the relay published {status.published} events, not the newest "
            f"{window} ({status.lag} left)"
        )
    return {"relay_events": window, "relay_events_per_s": window / seconds}


def _rebuild(settings: Any, service: Any, events: int) -> dict[str, Any]:
    from nervenbahn.paths import projection_path
    from projections import PROJECTIONS, rebuild

    result: dict[str, Any] = {}
    for name, projection in PROJECTIONS.items():
        path = projection_path(settings.store, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        source = service if projection.source != "benefits" else None
        if source is None:
            continue  # the synthetic history holds case events only
        begun = time.perf_counter()
        applied = rebuild(
            projection.from_settings(settings), source, path, batch_size=REBUILD_BATCH
        )
        seconds = time.perf_counter() - begun
        result[f"rebuild_{name}_events_per_s"] = max(applied, events) / seconds
    return result


def _as_of(service: Any, events: int, seed: int) -> dict[str, Any]:
    """`case_as_of(now)` of cases drawn at random, each read once (nothing cached for it)."""
    rng = random.Random(seed)
    case_ids: list[uuid.UUID] = []
    while len(case_ids) < AS_OF_CALLS:
        note = service.recorder.select_notifications(start=rng.randint(1, events), limit=1)[0]
        if note.originator_id not in case_ids:
            case_ids.append(note.originator_id)
    now = datetime.now(UTC)
    timings = []
    for case_id in case_ids:
        begun = time.perf_counter()
        service.case_as_of(case_id, now)
        timings.append(1000 * (time.perf_counter() - begun))
    return {"as_of_p50_ms": percentile(timings, 50), "as_of_p99_ms": percentile(timings, 99)}


def _api(settings: Any, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """read_models.py's API rows: its server in a process of its own, on these read models."""
    from read_models import _api_rows

    api_folder = folder / f"api-{uuid.uuid4().hex[:6]}"
    api_folder.mkdir()
    latency, throughput = _api_rows(settings, api_folder, args.clients, args.requests, args.seed)
    return {
        "api_p99_ms": latency.nervenbahn,
        "api_slowest_endpoint": latency.detail["slowest_endpoint"],
        "api_p99_ms_by_endpoint": {
            kind.removesuffix("_p99_ms"): ms
            for kind, ms in latency.detail.items()
            if kind.endswith("_p99_ms") and not kind.startswith(("nervenbahn", "raw"))
        },
        "api_p50_ms": latency.detail["nervenbahn_p50_ms"],
        "api_requests_per_s": throughput.nervenbahn,
        "api_trivial_requests_per_s": throughput.raw,
    }


# --- the table -----------------------------------------------------------------------------

THROUGHPUT = (
    "import_events_per_s",
    "relay_events_per_s",
    "rebuild_region_events_per_s",
    "rebuild_branch_office_events_per_s",
    "rebuild_reporting_events_per_s",
)
LABELS = {
    "events": ("events in the store", "{:,.0f}"),
    "people": ("people (synthetic)", "{:,.0f}"),
    "import_events_per_s": ("import, events/s", "{:,.0f}"),
    "relay_events_per_s": ("relay catch-up, events/s", "{:,.0f}"),
    "rebuild_region_events_per_s": ("rebuild region, events/s", "{:,.0f}"),
    "rebuild_branch_office_events_per_s": ("rebuild branch_office, events/s", "{:,.0f}"),
    "rebuild_reporting_events_per_s": ("rebuild reporting, events/s", "{:,.0f}"),
    "as_of_p50_ms": ("case as-of, cold, p50 ms", "{:.1f}"),
    "as_of_p99_ms": ("case as-of, cold, p99 ms", "{:.1f}"),
    "api_p99_ms": ("API p99 ms, slowest endpoint", "{:.1f}"),
    "api_requests_per_s": ("API requests/s", "{:,.0f}"),
    "bytes_per_event": ("store, bytes/event", "{:,.0f}"),
    "store_mb": ("store, MB", "{:,.1f}"),
    "grow_rss_mb": ("peak RSS import process, MB", "{:,.0f}"),
    "measure_rss_mb": ("peak RSS measuring process, MB", "{:,.0f}"),
}


def _table(results: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    for result in results:
        result["bytes_per_event"] = result["store_bytes"] / result["events"]
        result["store_mb"] = result["store_bytes"] / 1e6
    return [
        (label, [fmt.format(r.get(key, float("nan"))) for r in results])
        for key, (label, fmt) in LABELS.items()
    ]


def _verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per throughput: the largest deviation from the smallest size; memory bound held?"""
    first = results[0]
    verdicts: dict[str, Any] = {}
    for key in THROUGHPUT:
        if key not in first:
            continue
        deviation = max(abs(r[key] / first[key] - 1) for r in results)
        verdicts[key] = {"max_deviation": round(deviation, 3), "flat": deviation <= FLAT}
    for key in ("grow_rss_mb", "measure_rss_mb"):
        bound = 1.2 * first[key] + RSS_SLACK_MB
        verdicts[key] = {
            "bound_mb": round(bound, 1),
            "largest_mb": results[-1][key],
            "bounded": all(r[key] <= bound for r in results),
        }
    return verdicts


def _switzerland(largest: dict[str, Any]) -> dict[str, Any]:
    """Switzerland's social assistance for `RETENTION_YEARS`, at the synthetic canton's events
    per person and year (its households over its period) and the largest size's rates."""
    from nervenbahn.synthetic import PERIOD_END, PERIOD_START

    years = ((PERIOD_END - PERIOD_START).days + 1) / 365.25
    per_person_year = largest["events"] / largest["people"] / years
    events = SWITZERLAND_PEOPLE * per_person_year * RETENTION_YEARS
    hours = {key: events / largest[key] / 3600 for key in THROUGHPUT if key in largest}
    return {
        "people": SWITZERLAND_PEOPLE,
        "events_per_person_year": per_person_year,
        "years": RETENTION_YEARS,
        "events": events,
        "store_gb": events * largest["bytes_per_event"] / 1e9,
        "hours": hours,
    }


def _print(
    table: list[tuple[str, list[str]]],
    verdicts: dict[str, Any],
    swiss: dict[str, Any],
    results: list[dict[str, Any]],
    runtime: float,
    args: argparse.Namespace,
) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title="nervenbahn at three store sizes (one SQLite store, grown)")
    out.add_column("figure")
    for result in results:
        out.add_column(f"{result['events']:,} events", justify="right")
    for label, cells in table:
        out.add_row(label, *cells)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(out)
    for key, verdict in verdicts.items():
        label = LABELS[key][0]
        if "flat" in verdict:
            console.print(
                f"{label}: largest deviation from the smallest size "
                f"{100 * verdict['max_deviation']:.0f} % — "
                f"{'flat' if verdict['flat'] else 'NOT flat'} (±{100 * FLAT:.0f} %)"
            )
        else:
            console.print(
                f"{label}: bound {verdict['bound_mb']:,.0f} MB (1.2× the smallest "
                f"size's + {RSS_SLACK_MB:.0f} MB), largest {verdict['largest_mb']:,.0f}"
                f" MB — {'bounded' if verdict['bounded'] else 'NOT bounded'}"
            )
    console.print(
        f"Switzerland: {swiss['people']:,} people a year × {swiss['events_per_person_year']:.2f} "
        f"events per person and year (the synthetic canton's) × {swiss['years']} years ≈ "
        f"{swiss['events']:,.0f} events, {swiss['store_gb']:.1f} GB of store"
    )
    for key, hours in swiss["hours"].items():
        console.print(
            f"  {LABELS[key][0].split(',')[0]} of all of it at the largest size's rate: "
            f"{hours:.1f} h"
        )
    for result in results:
        by_endpoint = ", ".join(
            f"{kind} {ms:.0f}" for kind, ms in result.get("api_p99_ms_by_endpoint", {}).items()
        )
        console.print(f"API p99 ms by endpoint at {result['events']:,} events: {by_endpoint}")
    console.print(
        f"relay: the newest {args.window:,} events at each size; API: {args.clients} "
        f"clients × {args.requests} requests; seed {args.seed}; runtime {runtime:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
