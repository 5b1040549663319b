"""Read-model benchmark: rebuild throughput beside reading the same notifications raw.

    .venv/bin/python benchmarks/projections.py [--households N] [--json] [--seed S]

Seeds a SQLite store with synthetic history (the import path), then, in the same run: reads
every notification raw from the store (`select_notifications` in batches, nothing decoded),
and rebuilds each projection from scratch (`projections.framework.rebuild`: read, decode,
apply, record event ids). Target: a rebuild at least 0.5x the raw read rate.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

# `python benchmarks/projections.py` puts benchmarks/ first on sys.path, where this very file
# would hide the `projections` package: take it off, and add it back last for `report`.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)

from domain.reference import load_reference_data
from nervenbahn.bootstrap import build_service, close_service
from nervenbahn.config import load_settings
from nervenbahn.logging import configure_logging
from nervenbahn.synthetic import synthetic_history
from projections import PROJECTIONS, rebuild

sys.path.append(str(Path(__file__).resolve().parent))
from report import Row, add_output_arguments, emit_json, print_table

TARGET = 0.5
BATCH = 2000


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    add_output_arguments(parser)
    args = parser.parse_args()
    configure_logging("json", "warning")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        rows, events = measure(Path(folder), args.households, args.seed)
    runtime = time.perf_counter() - started
    notes = [f"{events} events of {args.households} synthetic households, SQLite, batch {BATCH}"]
    if args.json:
        emit_json(runtime, args.seed, {"households": args.households, "events": events},
                  rows, notes)
        return
    print_table(
        "nervenbahn read models: rebuild vs raw read (same run)", rows, notes,
        fmt=lambda row, side: f"{(row.nervenbahn if side == 'nervenbahn' else row.raw):,.0f} ev/s",
        describe=lambda row: [f"{row.what}: {row.detail['seconds']:.2f} s vs raw "
                              f"{row.detail['raw_seconds']:.2f} s"],
        seed=args.seed, runtime=runtime,
    )


def measure(folder: Path, households: int, seed: int) -> tuple[list[Row], int]:
    """Seed the store, then time the raw read and each projection's rebuild."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
                              "NERVENBAHN_MASTER_KEY": key})
    service = build_service(settings)
    try:
        records = synthetic_history(load_reference_data(), households, seed)
        service.import_records(json.dumps(record) for record in records)
        events = service.recorder.max_notification_id() or 0
        raw_seconds = _raw_read(service)
        rows = []
        for name, projection in PROJECTIONS.items():
            begun = time.perf_counter()
            rebuild(projection.from_settings(settings), service, folder / f"{name}.db",
                    batch_size=BATCH)
            seconds = time.perf_counter() - begun
            rate, raw_rate = events / seconds, events / raw_seconds
            rows.append(Row(
                key=f"rebuild_{name}", what=f"rebuild {name}", backend="sqlite", unit="ev/s",
                nervenbahn=rate, raw=raw_rate, ratio=rate / raw_rate,
                target=f"≥ {TARGET}× raw read", met=rate / raw_rate >= TARGET,
                detail={"seconds": seconds, "raw_seconds": raw_seconds},
            ))
        return rows, events
    finally:
        close_service(service)


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


if __name__ == "__main__":
    main()
