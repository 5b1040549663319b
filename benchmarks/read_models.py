"""Read-model benchmark: rebuild throughput beside reading the same notifications raw, then
API query latency beside a trivial endpoint on the same stack.

    .venv/bin/python benchmarks/read_models.py [--households N] [--clients N] [--requests M]
                                               [--json] [--seed S]

Seeds a SQLite store with synthetic history (the import path), then, in the same run: reads
every notification raw from the store (`select_notifications` in batches, nothing decoded),
and rebuilds each projection from scratch (`projections.framework.rebuild`: read, decode,
apply, record event ids). Target: a rebuild at least 0.5x the raw read rate. Beside each
rebuild: reading and decoding alone (the application's mapper, nothing applied), the ceiling
of a rebuild that decodes every event so (measured 2026-12-07: about 0.15x the raw read, the
json of each stored event alone about 4x the time of reading it); and reading and parsing each
stored state without any hook (`json.loads`; orjson's or msgspec's parser too if one is
installed, neither a dependency): what any rebuild from the stored JSON pays before a single
value is decoded or applied.

Then serves the HTTP API on those read models (uvicorn on 127.0.0.1, in a process of its own,
so that server and clients do not share one GIL) and lets N client threads (one keep-alive
`httpx.Client` each) send M requests each, a seeded mix of branch-office case lists and case
details (personal data: decrypted, access-logged), region caseload and work list, canton
quarter figures; the same number of requests go to a one-route FastAPI app served the same way
(its own process too). Targets (issue 17): p99 < 50 ms on every endpoint with 16 clients, and
throughput at least 0.5× the trivial app's.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import multiprocessing
import random
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from report import Row, add_output_arguments, emit_json, percentile, print_table

from domain.application.cases import CaseService
from domain.reference import load_reference_data
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container
from nervenbahn.keyfiles import create_keys
from nervenbahn.logging import configure_logging
from nervenbahn.paths import projection_path
from nervenbahn.startup import settle
from nervenbahn.synthetic import PERIOD_END, PERIOD_START, synthetic_history
from projections import PROJECTIONS, rebuild

TARGET = 0.5
BATCH = 2000
API_P99_TARGET_MS = 50.0
"""Issue 17: every endpoint's p99 under 50 ms with 16 clients (a caseworker's screen or a
report tool waits on these queries)."""
API_THROUGHPUT_TARGET = 0.5
"""Issue 17: requests per second at least half a trivial endpoint's on the same stack."""
OFFICE, REGION = "akso-olten", "so-olten"
MIX: dict[str, float] = {  # kind of request → its share: caseworkers' queries are most of it,
    "office_cases": 0.30, "office_case": 0.25,  # the canton's quarterly figures are rare
    "region_caseload": 0.15, "region_worklist": 0.25, "canton_quarter": 0.05,
}
PHASES = (None, None, "intake", "assessed", "supported", "refused", "closed")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16,
                        help="concurrent API clients (threads; default 16)")
    parser.add_argument("--requests", type=int, default=200,
                        help="API requests per client (default 200)")
    add_output_arguments(parser)
    args = parser.parse_args()
    if args.households < 1 or args.clients < 1 or args.requests < 2:
        parser.error("--households and --clients must be ≥ 1, --requests ≥ 2")
    configure_logging("json", "warning")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        rows, events = measure(Path(folder), args.households, args.seed,
                               clients=args.clients, requests=args.requests)
    runtime = time.perf_counter() - started
    notes = [f"{events} events of {args.households} synthetic households, SQLite, batch {BATCH}",
             f"API: {args.clients} clients × {args.requests} requests; each server (nervenbahn, "
             "trivial) in a process of its own (uvicorn, one worker), the clients threads of "
             "this one; latency ratio = raw p50 / nervenbahn p50"]
    if args.json:
        emit_json(runtime, args.seed, {"households": args.households, "events": events,
                                       "clients": args.clients, "requests": args.requests},
                  rows, notes)
        return
    print_table(
        "nervenbahn read models: rebuild vs raw read, API vs trivial endpoint (same run)",
        rows, notes, fmt=_fmt, describe=_describe, seed=args.seed, runtime=runtime,
    )


def _fmt(row: Row, side: str) -> str:
    if row.key == "api_throughput":
        return f"{(row.nervenbahn if side == 'nervenbahn' else row.raw):,.0f} req/s"
    if row.key == "api_latency":  # nervenbahn: its slowest endpoint; raw: the trivial one
        d = row.detail
        name = d["slowest_endpoint"] if side == "nervenbahn" else "raw"
        return "\n".join(f"p{p} {d[f'{name}_p{p}_ms']:,.1f} ms" for p in (50, 95, 99))
    return f"{(row.nervenbahn if side == 'nervenbahn' else row.raw):,.0f} ev/s"


def _describe(row: Row) -> list[str]:
    d = row.detail
    if row.key == "api_throughput":
        return []
    if row.key != "api_latency":
        floors = [f"{row.what}: {d['seconds']:.2f} s vs raw {d['raw_seconds']:.2f} s (read and "
                  f"decode alone {d['read_and_decode_seconds']:.2f} s: at most "
                  f"{d['raw_seconds'] / d['read_and_decode_seconds']:.2f}x with the mapper; "
                  f"read and json.loads alone {d['read_and_parse_seconds']:.2f} s: at most "
                  f"{d['raw_seconds'] / d['read_and_parse_seconds']:.2f}x from stored JSON"]
        if d.get("read_and_fast_parse"):
            name, seconds = d["read_and_fast_parse"]
            floors[0] += f"; {name}: {seconds:.2f} s, {d['raw_seconds'] / seconds:.2f}x)"
        else:
            floors[0] += ")"
        return floors
    lines = [f"API: {d['requests_total']} requests each side; {d['nervenbahn_per_s']:,.0f} req/s "
             f"vs raw {d['raw_per_s']:,.0f} req/s; max {d['nervenbahn_max_ms']:.1f} ms vs raw "
             f"{d['raw_max_ms']:.1f} ms; all kinds together p99 {d['nervenbahn_p99_ms']:.1f} ms, "
             f"without canton_quarter {d['nervenbahn_p99_ms_without_canton']:.1f} ms"]
    for kind in MIX:
        lines.append(
            f"  {kind:<16} {d[f'{kind}_count']:>4} req  p50 {d[f'{kind}_p50_ms']:6.1f}  "
            f"p95 {d[f'{kind}_p95_ms']:6.1f}  p99 {d[f'{kind}_p99_ms']:6.1f}  "
            f"max {d[f'{kind}_max_ms']:6.1f} ms"
        )
    return lines


def measure(
    folder: Path, households: int, seed: int, *, clients: int = 4, requests: int = 200
) -> tuple[list[Row], int]:
    """Seed the store, time the raw read and each projection's rebuild, then the API."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
                              "NERVENBAHN_MASTER_KEY": key,
                              "NERVENBAHN_KEY_DIR": str(folder / "keys")})
    create_keys(settings)  # the reporting key of the store, as `nervenbahn init`
    container = Container(settings)
    service = container.service
    try:
        records = synthetic_history(load_reference_data(), households, seed)
        service.import_records(json.dumps(record) for record in records)
        events = service.recorder.max_notification_id() or 0
        raw_seconds = _raw_read(service)
        decoded_seconds = _read_and_decode(service)
        parsed_seconds = _read_and_parse(service, json.loads)
        fast_loads = _fast_loads()
        fast_seconds = _read_and_parse(service, fast_loads[1]) if fast_loads else None
        rows = []
        for name, projection in PROJECTIONS.items():
            begun = time.perf_counter()
            path = projection_path(settings.store, name)  # where the API reads it
            path.parent.mkdir(parents=True, exist_ok=True)
            rebuild(projection.from_settings(settings), service, path, batch_size=BATCH)
            seconds = time.perf_counter() - begun
            rate, raw_rate = events / seconds, events / raw_seconds
            rows.append(Row(
                key=f"rebuild_{name}", what=f"rebuild {name}", backend="sqlite", unit="ev/s",
                nervenbahn=rate, raw=raw_rate, ratio=rate / raw_rate,
                target=f"≥ {TARGET}× raw read", met=rate / raw_rate >= TARGET,
                detail={"seconds": seconds, "raw_seconds": raw_seconds,
                        "read_and_decode_seconds": decoded_seconds,
                        "read_and_parse_seconds": parsed_seconds,
                        "read_and_fast_parse": (fast_loads[0], fast_seconds)
                        if fast_loads else None},
            ))
        rows += _api_rows(settings, folder, clients, requests, seed)
        return rows, events
    finally:
        container.close()


def _raw_read(service: object) -> float:
    """Seconds to read every notification in batches (best of three), nothing decoded."""
    best = float("inf")
    for _ in range(3):
        begun, position = time.perf_counter(), 0
        while notes := service.recorder.select_notifications(  # type: ignore[attr-defined]
            start=position + 1, limit=BATCH
        ):
            position = notes[-1].id
        best = min(best, time.perf_counter() - begun)
    return best


def _read_and_parse(service: object, loads: Callable[[bytes], object]) -> float:
    """Seconds to read every notification in batches, as the raw read, and parse each stored
    state with `loads` (no hook: dicts and strings, no value decoded, nothing applied): the
    floor of any rebuild from the stored JSON, whatever decodes it. Best of three, as the raw
    read."""
    best = float("inf")
    for _ in range(3):
        begun, position = time.perf_counter(), 0
        while notes := service.recorder.select_notifications(  # type: ignore[attr-defined]
            start=position + 1, limit=BATCH
        ):
            for note in notes:
                loads(note.state)
            position = notes[-1].id
        best = min(best, time.perf_counter() - begun)
    return best


def _fast_loads() -> tuple[str, Callable[[bytes], object]] | None:
    """orjson's or msgspec's parser if one is installed (neither is a dependency)."""
    try:
        import orjson
    except ImportError:
        pass
    else:
        return "orjson", orjson.loads
    try:
        import msgspec
    except ImportError:
        return None
    return "msgspec", msgspec.json.decode


def _read_and_decode(service: CaseService) -> float:
    """Seconds to read every notification in batches and decode each through the
    application's mapper, nothing applied: the ceiling of any rebuild that decodes so."""
    begun, position = time.perf_counter(), 0
    while notes := service.notifications(gt=position, limit=BATCH):
        for note in notes:
            service.decode(note)
        position = notes[-1].id
    return time.perf_counter() - begun


# --- API latency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One request of a client's plan: its kind (for the per-kind figures), path and key."""

    kind: str
    path: str
    key: str


def _api_rows(
    settings: Settings, folder: Path, clients: int, requests: int, seed: int
) -> list[Row]:
    """Serve the API on the read models just rebuilt and a trivial app beside it, each in a
    process of its own; N clients send M requests to each, in the order nervenbahn, raw, raw,
    nervenbahn (half each). Rows `api_latency` and `api_throughput`."""
    api = ApiSettings(api_keys=folder / "api-keys.json", access_log=folder / "access-log.db")
    keys = _issue_keys(ApiKeyRegistry(api.api_keys))
    with _serving(_nervenbahn_server, settings, api) as nb_url, \
            _serving(_trivial_server) as raw_url:
        case_ids = _office_case_ids(nb_url, keys["office"])
        plans = []
        for c in range(clients):
            rng = random.Random(seed * 1009 + c)
            kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=requests)
            plans.append(_plan(rng, kinds, case_ids, keys))
        raw_plan = [_Call("raw", "/ping", keys["office"])] * requests
        nb_http = [httpx.Client(base_url=nb_url, timeout=60) for _ in range(clients)]
        raw_http = [httpx.Client(base_url=raw_url, timeout=60) for _ in range(clients)]
        try:
            for index in range(clients):  # connect, and ask each kind once, untimed
                _run([nb_http[index]], [_plan(random.Random(-1 - index), list(MIX),
                                              case_ids, keys)])
                _run([raw_http[index]], [raw_plan[:len(MIX)]])
            half = requests // 2
            # This process built the store and the read models first: one full collection of
            # its heap took 86 ms in the middle of the timed requests, added to the latency
            # of every request then in flight. What it holds is set aside for the timed part.
            gc.collect()
            gc.freeze()
            nb_first, nb_seconds = _run(nb_http, [plan[:half] for plan in plans])
            raw_first, raw_seconds = _run(raw_http, [raw_plan[:half]] * clients)
            raw_second, seconds = _run(raw_http, [raw_plan[half:]] * clients)
            raw_seconds += seconds
            nb_second, seconds = _run(nb_http, [plan[half:] for plan in plans])
            nb_seconds += seconds
        finally:
            gc.unfreeze()
            for client in (*nb_http, *raw_http):
                client.close()
    nb_calls, raw_calls = nb_first + nb_second, raw_first + raw_second
    nb_ms, raw_ms = [ms for _, ms in nb_calls], [ms for _, ms in raw_calls]
    detail: dict[str, Any] = {"requests_total": len(nb_ms), "office_cases_known": len(case_ids),
                              "nervenbahn_per_s": len(nb_ms) / nb_seconds,
                              "raw_per_s": len(raw_ms) / raw_seconds}
    detail |= _latency_figures("nervenbahn", nb_ms) | _latency_figures("raw", raw_ms)
    for kind in MIX:
        detail |= _latency_figures(kind, [ms for k, ms in nb_calls if k == kind])
    rest = [ms for kind, ms in nb_calls if kind != "canton_quarter"]
    detail["nervenbahn_p99_ms_without_canton"] = percentile(rest, 99) if rest else 0.0
    worst = max(MIX, key=lambda kind: detail[f"{kind}_p99_ms"])
    p99 = detail[f"{worst}_p99_ms"]
    detail["slowest_endpoint"] = worst
    per_s, raw_per_s = detail["nervenbahn_per_s"], detail["raw_per_s"]
    backend = "sqlite · uvicorn process"
    return [
        Row(key="api_latency", what=f"API p99, slowest endpoint ({clients} clients)",
            backend=backend, unit="ms (p99)", nervenbahn=p99, raw=detail["raw_p99_ms"],
            ratio=detail["raw_p50_ms"] / detail["nervenbahn_p50_ms"],
            target=f"p99 < {API_P99_TARGET_MS:.0f} ms, every endpoint",
            met=p99 < API_P99_TARGET_MS, detail=detail),
        Row(key="api_throughput", what=f"API throughput ({clients} clients)", backend=backend,
            unit="req/s", nervenbahn=per_s, raw=raw_per_s, ratio=per_s / raw_per_s,
            target=f"≥ {API_THROUGHPUT_TARGET}× trivial",
            met=per_s / raw_per_s >= API_THROUGHPUT_TARGET,
            detail={"requests_total": len(nb_ms)}),
    ]


def _latency_figures(name: str, ms: list[float]) -> dict[str, Any]:
    """`<name>_count`, `_p50_ms`, `_p95_ms`, `_p99_ms`, `_max_ms` (zeros without samples)."""
    figures: dict[str, Any] = {f"{name}_count": len(ms)}
    for pct in (50, 95, 99):
        figures[f"{name}_p{pct}_ms"] = percentile(ms, pct) if ms else 0.0
    figures[f"{name}_max_ms"] = max(ms, default=0.0)
    return figures


def _issue_keys(registry: ApiKeyRegistry) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "office": registry.add("bench-office", Scope("branch_office", OFFICE), now=now),
        "region": registry.add("bench-region", Scope("region", REGION), now=now),
        "canton": registry.add("bench-canton", Scope("canton"), now=now),
    }


def _office_case_ids(url: str, key: str) -> list[str]:
    """Every case id of the office (untimed), for the detail requests."""
    ids: list[str] = []
    with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": key}) as client:
        while True:
            response = client.get(f"/v1/branch-offices/{OFFICE}/cases",
                                  params={"limit": 500, "offset": len(ids)})
            response.raise_for_status()
            page = [case["case_id"] for case in response.json()["cases"]]
            ids += page
            if len(page) < 500:
                break
    if not ids:
        raise RuntimeError(f"no case in {OFFICE}'s municipalities: raise --households")
    return ids


def _plan(
    rng: random.Random, kinds: list[str], case_ids: list[str], keys: dict[str, str]
) -> list[_Call]:
    """A request of each of `kinds`, their parameters drawn from `rng`."""
    days = (PERIOD_END - PERIOD_START).days
    quarters = sorted({f"{d.year}Q{(d.month - 1) // 3 + 1}" for d in
                       (PERIOD_START + timedelta(days=n) for n in range(0, days + 1, 30))})
    office, region = f"/v1/branch-offices/{OFFICE}/cases", f"/v1/regions/{REGION}"
    make: dict[str, Callable[[], _Call]] = {
        "office_cases": lambda: _Call("office_cases", office + _query(
            phase=rng.choice(PHASES), limit=rng.choice((20, 50, 100)),
            offset=rng.choice((0, 0, 0, 20, 100))), keys["office"]),
        "office_case": lambda: _Call("office_case", f"{office}/{rng.choice(case_ids)}",
                                     keys["office"]),
        "region_caseload": lambda: _Call("region_caseload", f"{region}/caseload",
                                         keys["region"]),
        "region_worklist": lambda: _Call("region_worklist", f"{region}/worklist" + _query(
            today=PERIOD_START + timedelta(days=rng.randint(0, days))), keys["region"]),
        "canton_quarter": lambda: _Call("canton_quarter",
                                        f"/v1/canton/quarters/{rng.choice(quarters)}",
                                        keys["canton"]),
    }
    return [make[kind]() for kind in kinds]


def _query(**params: object) -> str:
    given = [f"{name}={value}" for name, value in params.items() if value is not None]
    return "?" + "&".join(given) if given else ""


def _run(
    http: list[httpx.Client], plans: list[list[_Call]]
) -> tuple[list[tuple[str, float]], float]:
    """Client i sends plans[i] over http[i], all threads starting together; returns every
    request's (kind, ms) and the wall-clock seconds until the last client finished."""
    barrier = threading.Barrier(len(plans) + 1)
    timed: list[list[tuple[str, float]]] = [[] for _ in plans]
    errors: list[str] = []

    def client(index: int) -> None:
        barrier.wait()
        try:
            for call in plans[index]:
                begun = time.perf_counter()
                response = http[index].get(call.path, headers={"X-API-Key": call.key})
                timed[index].append((call.kind, 1000 * (time.perf_counter() - begun)))
                if response.status_code != 200:
                    errors.append(f"GET {call.path}: {response.status_code} {response.text}")
        except Exception as exc:  # an error in a thread must fail the run, not vanish
            errors.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=client, args=(i,), name=f"bench-client-{i}")
               for i in range(len(plans))]
    for thread in threads:
        thread.start()
    barrier.wait()
    begun = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begun
    if errors:
        raise RuntimeError(f"{len(errors)} API request(s) failed, first: {errors[0]}")
    return [call for calls in timed for call in calls], seconds


@contextmanager
def _serving(serve: Callable[..., None], *args: Any) -> Iterator[str]:
    """Run `serve(port, *args)` (uvicorn on 127.0.0.1:port) in a process of its own (spawned:
    no GIL shared with the clients); yields its URL once it answers, stops it at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, *args), name=f"uvicorn-{port}", daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.join(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/ping", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _run_uvicorn(app: Any, port: int) -> None:
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                  lifespan="on", access_log=False)).run()


def _nervenbahn_server(port: int, settings: Settings, api: ApiSettings) -> None:
    """The child process: the API as `nervenbahn serve` builds its context, on the store."""
    configure_logging("json", "warning")
    container = Container(settings)
    context = build_api_context(settings, container.service, api)
    try:
        app = create_app(context)
        settle()  # as `nervenbahn serve` does before it serves
        _run_uvicorn(app, port)
    finally:
        context.close()
        container.close()


def _trivial_server(port: int) -> None:
    """The child process of the raw baseline: FastAPI with one sync route (like nervenbahn's)
    returning a constant."""
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    _run_uvicorn(app, port)


if __name__ == "__main__":
    main()
