"""What the benchmarks share: a result row, percentiles, the rich table and the JSON object.

Used by append.py and bus_throughput.py (imported by name from this folder).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

RATIO = "nervenbahn speed / raw speed"
"""What every ratio is (for latencies: raw p50 / nervenbahn p50)."""
COLUMNS = (("what", "left"), ("backend", "left"), ("nervenbahn", "right"),
           ("raw baseline", "right"), ("ratio", "right"), ("target", "left"), ("met", "center"))


@dataclass
class Row:
    """One figure of nervenbahn beside its raw baseline, measured in the same run."""

    key: str
    what: str
    backend: str
    unit: str
    nervenbahn: float
    raw: float
    ratio: float
    target: str
    met: bool
    detail: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (with 30 samples, p99 is the slowest call)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark has: `--seed` and `--json`."""
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def print_table(
    title: str, rows: list[Row], notes: list[str], *,
    fmt: Callable[[Row, str], str], describe: Callable[[Row], Iterable[str]],
    seed: int, runtime: float, context: str = "",
    columns: tuple[str, str] = ("nervenbahn", "raw baseline"), ratio: str = RATIO,
) -> None:
    """The rows as a rich table, then `describe(row)`'s lines for each row, notes and a footer.

    `fmt(row, side)` renders a figure, side "nervenbahn" or "raw"; `context` leads the footer.
    `columns` names the two sides' columns and `ratio` says what the ratio is (scale_out.py
    compares three instances with one, not nervenbahn with a raw baseline).
    """
    table = Table(title=title)
    names = {"nervenbahn": columns[0], "raw baseline": columns[1]}
    for name, justify in COLUMNS:
        table.add_column(names.get(name, name), justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(row.what, row.backend, fmt(row, "nervenbahn"), fmt(row, "raw"),
                      f"{row.ratio:.2f}×", row.target,
                      "[green]yes[/green]" if row.met else "[red]no[/red]")
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for row in rows:
        for line in describe(row):
            console.print(line)
    for note in notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    console.print(f"{context}ratio = {ratio}; seed {seed}; runtime {runtime:.1f} s")


def emit_json(
    runtime: float, seed: int, params: dict[str, Any], rows: list[Row], notes: list[str],
    skipped: dict[str, str] | None = None, ratio: str = RATIO,
) -> None:
    """Print one JSON object: the run's parameters, then each row with its details flattened."""
    print(json.dumps({
        "runtime_s": round(runtime, 2), "seed": seed, **params, "ratio": ratio,
        **({} if skipped is None else {"skipped": skipped}), "notes": notes,
        "results": [
            {"key": r.key, "what": r.what, "backend": r.backend, "unit": r.unit,
             "nervenbahn": round(r.nervenbahn, 2), "raw": round(r.raw, 2),
             "ratio": round(r.ratio, 3), "target": r.target, "met": r.met,
             **{k: round(v, 3) if isinstance(v, float) else v for k, v in r.detail.items()}}
            for r in rows
        ],
    }, ensure_ascii=False))
