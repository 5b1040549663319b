"""Every benchmark script still runs, as the README starts it, with tiny sizes.

Figures are not judged here (speed targets belong to the benchmarks' own tables, never to timed
unit tests); what is checked is that each script starts from `python benchmarks/<name>.py`,
measures nervenbahn and its raw baseline, and prints its JSON rows. A script that no longer
imports (a file named like one of our packages hid it once) fails here instead of on the day
someone wants the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUNS = {
    "append": ["--backend", "sqlite", "--cases", "10", "--import-cases", "20",
               "--as-of-calls", "3"],
    "bus_throughput": ["--events", "200", "--commands", "5", "--batch-size", "50"],
    "read_models": ["--households", "30", "--clients", "2", "--requests", "10"],
    "audit": ["--events", "200", "--case-events", "50", "--calls", "3"],
    "cli_start": ["--runs", "1"],
    "web_pages": ["--households", "20", "--requests", "4", "--pages", "4"],
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_script_runs_and_reports_rows(script: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--json", *RUNS[script]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    rows = report["results"]
    assert rows, f"{script} reported no rows"
    for row in rows:
        assert row["nervenbahn"] > 0, row
        assert row["raw"] > 0, row
        assert row["ratio"] > 0, row


def test_capacity_model_runs_and_derives_from_its_measurements(tmp_path: Path) -> None:
    """benchmarks/capacity.py: not in RUNS, its figures are a model, not rows beside a raw
    baseline (its `results` are append.py's rows it reuses). Checked: every measured input is
    positive, and the model follows from the inputs (Switzerland, more cases, needs more)."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "capacity.py"), "--json", "--households",
         "20", "--append-cases", "2", "--backend", "sqlite"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert [row["key"] for row in report["results"]] == ["execute_sqlite"]
    assert all(row["raw"] > 0 and row["nervenbahn"] > 0 for row in report["results"])
    inputs = {figure["key"]: figure["value"] for figure in report["inputs"]}
    for key in ("case_events_per_case_year", "bytes_per_event_sqlite", "append_sqlite",
                "apply_sqlite", "payment_run_sqlite", "read_model_bytes_per_case_sqlite"):
        assert inputs[key] > 0, key
    model = {figure["key"]: figure for figure in report["model"]}
    per_year = (inputs["case_events_per_case_year"] + inputs["orders_per_case_year"]
                + inputs["benefit_events_per_case_year"])
    for scope in ("canton", "switzerland"):
        events = model["events"][scope]
        assert abs(events - model["cases"][scope] * per_year) <= 1e-3 * events
        assert model["partitions"][scope] >= 2 * model["instances"][scope]
    assert model["cases"]["switzerland"] > model["cases"]["canton"]
    assert model["pg_gb"]["switzerland"] > model["pg_gb"]["canton"]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.xdist_group("scale")  # three serve beside a scale test would exceed 100 connections
def test_scale_out_loads_one_then_three_instances_without_failures(
    tmp_path: Path, postgres_server_url: str
) -> None:
    """scale_out.py needs PostgreSQL and starts four `serve` processes: its own test. Most of
    its time is the instances' start (consumer groups of three joining) and stop."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale_out.py"), "--json",
         "--households", "20", "--users", "4", "--duration", "3", "--write-rate", "5",
         "--postgres-url", postgres_server_url],
        cwd=tmp_path, capture_output=True, text=True, timeout=400, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row["key"]: row for row in json.loads(run.stdout)["results"]}
    total = rows.pop("total")
    for side in ("one", "three"):
        assert total[f"{side}_requests"] > 0, total
        assert total[f"{side}_failures"] == 0, total[f"{side}_failed"]
        assert total[f"{side}_p95_ms"] > 0, total
    assert sum(row["one_requests"] + row["three_requests"] for row in rows.values()) == (
        total["one_requests"] + total["three_requests"])
