"""CLI start benchmark: how long a `nervenbahn` command takes from exec to exit, beside a bare
interpreter and one that imports Typer, in the same run.

    .venv/bin/python benchmarks/cli_start.py [--runs N] [--json]

Four commands, each started N times as a new process (`python -m nervenbahn …`, as the tests
and scripts start it) on a SQLite store in a temporary folder whose keys `nervenbahn init`
created first (not timed):

- `--help`: the root's help (lists every command);
- error path: `case show <uuid>` in an empty folder (no keys: one error line, exit 78);
- read: `case show <id>` of a case opened before (decrypts the applicant, logs the read);
- write: `case run open_case @file` (opens a case: validate, encrypt, append, one commit).

The project's modules are compiled first (not timed), as pip compiles an installed wheel's
and `make` an editable install's: where PYTHONDONTWRITEBYTECODE is set (this machine, many
container images) a checkout's edited modules would otherwise be compiled again at every start,
and the figures would time the compiler (about 200 ms of a command here).

Raw baselines, started the same way in the same rounds: `python -c pass` (the interpreter) and
`python -c "import typer"` (the least a Typer CLI imports); the ratio is the Typer baseline's
median ÷ the command's (speed ratio, as in every benchmark here). Target: every command starts,
runs and exits in under 0.5 s (issue 17). Rounds interleave the commands and the baselines in
a rotating order, so that load from other processes hits all alike; figures are medians, and
each row also gives the median CPU time (user + system) of the child, which other processes'
load moves less than wall time.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Row, add_output_arguments, emit_json, print_table

RUNS = 10
TARGET_MS = 500.0
OPEN_CASE = {
    "municipality_bfs": 2581,
    "household_size": 1,
    "applicant": {
        "given_name": "Zora",
        "family_name": "Quellmatt",
        "ahvn13": "756.9217.0769.85",
        "birth_date": "1984-05-06",
        "street": "Aarauerstrasse 7",
        "postal_code": "4600",
        "town": "Olten",
    },
}
# The project's packages (pyproject.toml, [tool.setuptools.packages.find]).
PACKAGES = ("domain", "projections", "connectors", "schemas", "bus", "nervenbahn")
MISSING_CASE = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"


def _env(home: Path) -> dict[str, str]:
    """The environment of one folder's commands: a SQLite store and keys of its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NERVENBAHN_")}
    return env | {
        "HOME": str(home),
        "NERVENBAHN_STORE": f"sqlite:///{home / 'store.db'}",
        "NERVENBAHN_ACTOR": "cw-olten-01:caseworker:so-olten",
        "NERVENBAHN_LOG_FORMAT": "json",
        "NERVENBAHN_LOG_LEVEL": "warning",
        "COLUMNS": "120",
    }


def _timed(argv: list[str], env: dict[str, str], cwd: Path, code: int) -> tuple[float, float]:
    """Start `argv`, wait for it; its wall time and its CPU time (user + system), in ms.
    Its exit code must be `code` (a benchmark of a failing command would time nothing)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != code:
        raise SystemExit(
            f"{' '.join(argv[2:])}: exit {done.returncode}, expected {code}\n{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def _prepare(home: Path) -> tuple[dict[str, str], Path, str]:
    """`nervenbahn init` and one opened case in `home`: the environment, the open_case file,
    the case's id."""
    env = _env(home)
    nervenbahn = [sys.executable, "-m", "nervenbahn"]
    subprocess.run([*nervenbahn, "init"], env=env, cwd=home, check=True, capture_output=True)
    payload = home / "open.json"
    payload.write_text(json.dumps(OPEN_CASE), "utf-8")
    opened = subprocess.run(
        [*nervenbahn, "--json", "case", "run", "open_case", f"@{payload}"],
        env=env,
        cwd=home,
        check=True,
        capture_output=True,
        text=True,
    )
    return env, payload, str(json.loads(opened.stdout)["case_id"])


def _compile_project() -> None:
    """The project's packages compiled to bytecode, as installed (see the docstring)."""
    root = Path(__file__).resolve().parents[1]
    for package in PACKAGES:
        if not compileall.compile_dir(root / package, quiet=2):
            raise SystemExit(f"{package}: a module does not compile")


def measure(runs: int, folder: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Every command and baseline `runs` times, in rotating order; wall and CPU ms of each."""
    _compile_project()
    home, empty = folder / "home", folder / "empty"
    home.mkdir()
    empty.mkdir()
    env, payload, case_id = _prepare(home)
    nervenbahn = [sys.executable, "-m", "nervenbahn"]
    starts: dict[str, tuple[list[str], dict[str, str], Path, int]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], env, home, 0),
        "python -c 'import typer'": ([sys.executable, "-c", "import typer"], env, home, 0),
        "--help": ([*nervenbahn, "--help"], env, home, 0),
        "error: case show (empty folder)": (
            [*nervenbahn, "case", "show", MISSING_CASE],
            _env(empty),
            empty,
            78,
        ),
        "read: case show": ([*nervenbahn, "case", "show", case_id], env, home, 0),
        "write: case run open_case": (
            [*nervenbahn, "case", "run", "open_case", f"@{payload}"],
            env,
            home,
            0,
        ),
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in starts}
    names = list(starts)
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            wall, cpu = _timed(*starts[name])
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def rows_of(times: dict[str, tuple[list[float], list[float]]]) -> list[Row]:
    """One row per command: its median start beside the Typer baseline's."""
    bare = statistics.median(times["python -c pass"][0])
    typer_wall = statistics.median(times["python -c 'import typer'"][0])
    typer_cpu = statistics.median(times["python -c 'import typer'"][1])
    rows = []
    for name, (walls, cpus) in times.items():
        if name.startswith("python"):
            continue
        wall = statistics.median(walls)
        rows.append(
            Row(
                "cli_start_" + name.split(":")[0].strip("-").replace(" ", "_"),
                f"CLI start: nervenbahn {name}",
                "sqlite",
                "ms",
                wall,
                typer_wall,
                typer_wall / wall,
                f"< {TARGET_MS:.0f} ms",
                wall < TARGET_MS,
                {
                    "runs": len(walls),
                    "max_ms": max(walls),
                    "cpu_ms": statistics.median(cpus),
                    "raw_cpu_ms": typer_cpu,
                    "python_pass_ms": bare,
                },
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=RUNS,
        help=f"starts of each command and baseline (default {RUNS})",
    )
    add_output_arguments(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        rows = rows_of(measure(max(1, args.runs), Path(directory)))
    runtime = time.perf_counter() - started
    notes: list[str] = []
    if args.json:
        emit_json(runtime, args.seed, {"runs": args.runs}, rows, notes)
        return
    print_table(
        "CLI start: exec to exit",
        rows,
        notes,
        fmt=_fmt,
        describe=_describe,
        seed=args.seed,
        runtime=runtime,
        columns=("nervenbahn", "import typer"),
        ratio="`python -c 'import typer'` median / the command's median",
    )


def _fmt(row: Row, side: str) -> str:
    return f"{row.nervenbahn if side == 'nervenbahn' else row.raw:.0f} ms"


def _describe(row: Row) -> list[str]:
    d = row.detail
    return [
        f"  {row.key}: CPU {d['cpu_ms']:.0f} ms (import typer: {d['raw_cpu_ms']:.0f} ms); "
        f"max {d['max_ms']:.0f} ms of {d['runs']}; python -c pass {d['python_pass_ms']:.0f} ms"
    ]


if __name__ == "__main__":
    main()
