"""`make bench`: every benchmark in one run, one combined table, `benchmarks/out/results.json`.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--strict]

Runs each benchmark script below as a process of its own with `--json` (one after the other, so
that they do not share the cores), keeps each one's whole JSON object in
`benchmarks/out/<script>.json`, and picks out the rows that carry the project's performance
goals (issue 17's table, plus CLI start). Those rows go into one table and into
`benchmarks/out/results.json`: a list of objects
`{what, backend, nervenbahn, raw, ratio, target, met}` (plus `unit`, `key` and `source`, the
script that measured it). A goal whose row a script did not produce (it failed, or skipped a
backend it could not reach) is listed with `met: false` and the reason.

`--quick` passes each script smaller sizes (a smoke run: the figures are not the goals' own).
`--strict` exits 1 if any goal is not met; otherwise the exit status is 1 only if a benchmark
failed. Nothing here is part of the test suite's timing: it is measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


@dataclass(frozen=True)
class Script:
    """A benchmark script, its arguments for a quick run, and the goal rows it measures."""

    name: str
    quick: tuple[str, ...]
    goals: tuple[str, ...]


SCRIPTS = (
    Script(
        "append.py",
        ("--cases", "20", "--import-cases", "300", "--as-of-calls", "5"),
        ("execute_sqlite", "execute_postgres", "import_sqlite"),
    ),
    Script(
        "bus_throughput.py",
        ("--events", "2000", "--commands", "20"),
        ("relay_throughput", "latency"),
    ),
    Script(
        "read_models.py",
        ("--households", "300", "--requests", "20"),
        (
            "rebuild_region",
            "rebuild_branch_office",
            "rebuild_reporting",
            "api_latency",
            "api_throughput",
        ),
    ),
    Script(
        "audit.py",
        ("--events", "2000", "--case-events", "500", "--calls", "3"),
        ("case_as_of_cold", "verify_vs_read_and_hash"),
    ),
    Script(
        "cli_start.py",
        ("--runs", "2"),
        ("cli_start_help", "cli_start_error", "cli_start_read", "cli_start_write"),
    ),
)
"""In the order of issue 17's table; the goal rows by the key each script gives them."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="run only these scripts (e.g. audit.py)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is not met")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    names = {script.name for script in SCRIPTS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(
            f"--only: no benchmark {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
    chosen = [s for s in SCRIPTS if args.only is None or s.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for script in chosen:
        result, error = _run(script, quick=args.quick)
        if result is not None:
            (args.out / f"{Path(script.name).stem}.json").write_text(
                json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
        else:
            failed.append(f"{script.name}: {error}")
        rows += _goal_rows(script, result, error)
    (args.out / "results.json").write_text(
        json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    _print(rows, failed, time.perf_counter() - started, args.out, quick=args.quick)
    if failed:
        return 1
    return 1 if args.strict and not all(row["met"] for row in rows) else 0


def _run(script: Script, *, quick: bool) -> tuple[dict[str, Any] | None, str]:
    """The script's JSON object, or None and why not (its last lines of stderr)."""
    command = [sys.executable, str(HERE / script.name), "--json", *(script.quick if quick else ())]
    print(f"running {' '.join(command[1:])} …", file=sys.stderr, flush=True)
    begun = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=HERE.parent, env=os.environ.copy(), check=False
    )
    print(
        f"  {script.name}: exit {done.returncode} after {time.perf_counter() - begun:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return None, f"exit {done.returncode}: {tail}"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), ""
    except (json.JSONDecodeError, IndexError) as exc:
        return None, f"no JSON object on its output ({exc})"


def _goal_rows(script: Script, result: dict[str, Any] | None, error: str) -> list[dict[str, Any]]:
    """One row per goal of the script: as it measured it, or unmet with the reason."""
    found = {row["key"]: row for row in (result or {}).get("results", [])}
    skipped = (result or {}).get("skipped", {})
    rows = []
    for key in script.goals:
        row = found.get(key)
        if row is None:
            why = error or _skip_reason(key, skipped) or "the script gave no such row"
            rows.append(
                {
                    "what": key,
                    "backend": "",
                    "nervenbahn": None,
                    "raw": None,
                    "ratio": None,
                    "target": "",
                    "met": False,
                    "unit": "",
                    "key": key,
                    "source": script.name,
                    "missing": why,
                }
            )
            continue
        rows.append(
            {
                "what": row["what"],
                "backend": row["backend"],
                "nervenbahn": row["nervenbahn"],
                "raw": row["raw"],
                "ratio": row["ratio"],
                "target": row["target"],
                "met": bool(row["met"]),
                "unit": row["unit"],
                "key": key,
                "source": script.name,
            }
        )
    return rows


def _skip_reason(key: str, skipped: dict[str, str]) -> str:
    return next((f"skipped: {why}" for backend, why in skipped.items() if backend in key), "")


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}".strip()


def _print(
    rows: list[dict[str, Any]], failed: list[str], seconds: float, out: Path, *, quick: bool
) -> None:
    title = "nervenbahn performance goals (issue 17), one run" + (
        " — QUICK, not the goals' sizes" if quick else ""
    )
    table = Table(title=title)
    for name, justify in (
        ("what", "left"),
        ("backend", "left"),
        ("nervenbahn", "right"),
        ("raw baseline", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("met", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        table.add_row(
            row["what"],
            row["backend"],
            _figure(row["nervenbahn"], row["unit"]),
            _figure(row["raw"], row["unit"]),
            ratio,
            row["target"] or row.get("missing", ""),
            "[green]yes[/green]" if row["met"] else "[red]no[/red]",
        )
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(table)
    met = sum(row["met"] for row in rows)
    console.print(
        f"{met} of {len(rows)} goals met; each script's whole output in {out}/*.json, "
        f"these rows in {out / 'results.json'}; {seconds:.0f} s"
    )
    for failure in failed:
        console.print(f"[red]failed: {failure}[/red]")


if __name__ == "__main__":
    sys.exit(main())
