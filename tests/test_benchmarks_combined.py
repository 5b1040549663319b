"""`make bench`'s combined table (benchmarks/run_all.py) and the scale benchmark (scale.py)
still run and write what their docs promise. Figures are not judged (speed belongs to the
benchmarks' tables, never to timed tests): the shape of results.json and of the scale table is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"what", "backend", "nervenbahn", "raw", "ratio", "target", "met"}


def _run_all(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_all_writes_results_json_with_one_row_per_goal(tmp_path: Path) -> None:
    run = _run_all("--quick", "--only", "cli_start.py", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert [row["key"] for row in rows] == [
        "cli_start_help",
        "cli_start_error",
        "cli_start_read",
        "cli_start_write",
    ]
    for row in rows:
        assert row.keys() >= FIELDS, row
        assert row["nervenbahn"] > 0 and row["raw"] > 0, row
        assert row["met"] == (row["nervenbahn"] < 500), row  # the goal the row names
    whole = json.loads((tmp_path / "cli_start.json").read_text(encoding="utf-8"))
    assert {row["key"] for row in whole["results"]} >= {row["key"] for row in rows}
    assert "of 4 goals met" in run.stdout


def test_run_all_refuses_an_unknown_benchmark_naming_it(tmp_path: Path) -> None:
    run = _run_all("--only", "nosuch.py", "--out", str(tmp_path), timeout=60)
    assert run.returncode == 2
    assert "--only: no benchmark nosuch.py" in run.stderr
    assert not (tmp_path / "results.json").exists()


def test_a_goal_whose_script_gave_no_row_is_unmet_with_the_reason() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    script = run_all.Script("append.py", (), ("execute_sqlite", "execute_postgres"))
    result = {
        "skipped": {"postgres": "no server at 127.0.0.1:5432"},
        "results": [
            {
                "key": "execute_sqlite",
                "what": "execute",
                "backend": "sqlite",
                "nervenbahn": 600.0,
                "raw": 700.0,
                "ratio": 0.857,
                "target": "≥ 0.8× raw",
                "met": True,
                "unit": "ev/s",
            }
        ],
    }
    rows = run_all._goal_rows(script, result, "")
    assert [(row["key"], row["met"]) for row in rows] == [
        ("execute_sqlite", True),
        ("execute_postgres", False),
    ]
    assert rows[1]["missing"] == "skipped: no server at 127.0.0.1:5432"
    failed = run_all._goal_rows(script, None, "exit 1: Traceback")
    assert all(row["missing"] == "exit 1: Traceback" and not row["met"] for row in failed)


@pytest.mark.slow
def test_scale_benchmark_grows_one_store_and_measures_each_size(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            "--json",
            "--sizes",
            "1000,2000",
            "--chunk",
            "1000",
            "--window",
            "200",
            "--clients",
            "2",
            "--requests",
            "4",
            "--keep",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    small, large = report["results"]
    assert 1000 <= small["events"] < large["events"], (small["events"], large["events"])
    assert large["events"] >= 2000
    for size in (small, large):
        assert size["relay_events"] == 200
        for key in (
            "import_events_per_s",
            "relay_events_per_s",
            "rebuild_region_events_per_s",
            "as_of_p99_ms",
            "api_p99_ms",
            "grow_rss_mb",
            "measure_rss_mb",
        ):
            assert size[key] > 0, key
    assert large["store_bytes"] > small["store_bytes"]
    assert set(report["verdicts"]) >= {"import_events_per_s", "grow_rss_mb"}
    swiss = report["switzerland"]
    assert swiss["events"] == pytest.approx(
        swiss["people"] * swiss["events_per_person_year"] * swiss["years"]
    )
