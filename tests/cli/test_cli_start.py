"""What a CLI start imports (not how long it takes: benchmarks/cli_start.py times it).

`nervenbahn` imports a command's module only when the command runs (`nervenbahn.cli.COMMANDS`),
and the exit-code table names its error classes instead of importing them. These tests keep it
so: each runs the CLI in a fresh interpreter and lists the heavy packages it imported. They
also keep the lazily listed help lines equal to the commands' own help.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

import nervenbahn.cli as cli_module
from nervenbahn.cli import COMMANDS
from nervenbahn.cli.lazy import LazyGroup, listed_help
from tests.cli.test_errors import APPLICANT

HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "kafka",
    "psycopg",
    "psycopg_pool",
    "playwright",
    "xmlschema",
    "prometheus_client",
    "httpx",
    "projections",
    "fastavro",
    "jinja2",
    "eventsourcing",
    "cryptography",
)
"""Packages `nervenbahn --help` must not import (the web stack, the bus, PostgreSQL, the
payments' XML schemas, the metrics, the read models, the event store, encryption)."""

NOT_FOR_CASES = (
    "fastapi",
    "uvicorn",
    "starlette",
    "kafka",
    "playwright",
    "xmlschema",
    "httpx",
    "fastavro",
    "jinja2",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
)
"""Packages a case command (write, read, or refused) on a SQLite store must not import: no
bus, no web, no PostgreSQL driver (0.2 s of a start), no metrics (0.1 s: a CLI command's are
never read)."""

_PROBE = """
import json, os, sys
from nervenbahn.cli import main
code = main(sys.argv[1:])
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(os.environ["HEAVY"])))
print("\\n" + json.dumps({"code": code, "heavy": heavy}))
"""


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `nervenbahn ARGS` in a fresh interpreter with a store in tmp_path; its exit code
    and the heavy packages it had imported when `main` returned."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NERVENBAHN_")}
    env |= {
        "HOME": str(tmp_path),
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(),
        "NERVENBAHN_ACTOR": "cw-olten-01:caseworker:so-olten",
        "NERVENBAHN_LOG_FORMAT": "json",
        "HEAVY": json.dumps(HEAVY),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_help_imports_no_heavy_package(tmp_path: Path) -> None:
    assert _run(tmp_path, "--help") == {"code": 0, "heavy": []}


def test_a_usage_error_imports_no_heavy_package(tmp_path: Path) -> None:
    assert _run(tmp_path, "cse") == {"code": 2, "heavy": []}


def test_case_commands_on_sqlite_import_neither_web_bus_postgres_nor_metrics(
    tmp_path: Path,
) -> None:
    opened = tmp_path / "open.json"
    opened.write_text(
        json.dumps({"municipality_bfs": 2581, "household_size": 1, "applicant": APPLICANT}), "utf-8"
    )
    missing = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"

    refused = _run(tmp_path, "case", "show", missing)
    written = _run(tmp_path, "case", "run", "open_case", f"@{opened}")
    listed = _run(tmp_path, "case", "history", missing)

    assert refused["code"] == 1 and written["code"] == 0 and listed["code"] == 1
    for run in (refused, written, listed):
        assert set(run["heavy"]).isdisjoint(NOT_FOR_CASES), run


def test_every_command_is_listed_with_its_own_help_line() -> None:
    """The line `--help` lists without importing a command is the command's own first help
    paragraph, and every command is listed once."""
    group = typer.main.get_command(cli_module.app)
    assert isinstance(group, LazyGroup)
    ctx = typer.Context(group)
    names = [entry.name for entry in COMMANDS]
    assert len(names) == len(set(names))
    for entry in COMMANDS:
        real = group.get_command(ctx, entry.name)
        assert real is not None and real.name == entry.name
        assert listed_help(real) == entry.help, entry.name


@pytest.mark.parametrize(("names", "code"), cli_module._EXIT_CODES)
def test_the_exit_code_table_names_each_class_where_it_is_defined(
    names: tuple[str, ...], code: int
) -> None:
    """A class is matched only once its module is imported (`nervenbahn.cli._listed`): that
    is sound only if the named module is the one that defines it."""
    assert (names, code) in cli_module._EXIT_CODES
    for name in names:
        module, _, attribute = name.rpartition(".")
        kind = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert f"{kind.__module__}.{kind.__qualname__}" == name


_GC_PROBE = """
import gc, json, sys, weakref
import nervenbahn.startup as startup
if sys.argv[1] == "paused":
    startup.pause_collector()
import nervenbahn.cli as cli

class Cycle:
    pass

during = {}

@cli.app.command("gc-probe")
def _probe() -> None:
    during.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
    a, b = Cycle(), Cycle()
    a.b, b.a = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    during["collected"] = ref() is None  # a cycle the command made and dropped is freed

code = cli.main(["gc-probe"])
print("\\n" + json.dumps({"code": code, "during": during, "enabled": gc.isenabled()}))
"""


@pytest.mark.parametrize("start", ["paused", "as_library"])
def test_a_command_runs_with_the_cycle_collector_on(start: str) -> None:
    """`nervenbahn.startup` pauses the cycle collector while the CLI is imported (80-100 ms of
    a start): by the time any command runs it is on again, with the imported objects frozen,
    and a cycle the command makes and drops is collected. Used as a library (the tests'
    in-process CLI), nothing is paused or frozen."""
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, start],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0 and report["enabled"] is True
    assert report["during"]["enabled"] is True and report["during"]["collected"] is True
    if start == "paused":
        assert report["during"]["frozen"] > 10_000
    else:
        assert report["during"]["frozen"] == 0


def test_the_script_starts_through_the_paused_collector() -> None:
    """The installed `nervenbahn` script and `python -m nervenbahn` both enter through
    `nervenbahn.startup.main`."""
    from importlib.metadata import entry_points

    import nervenbahn.startup

    (script,) = entry_points(group="console_scripts", name="nervenbahn")
    assert script.load() is nervenbahn.startup.main
    main_module = Path(nervenbahn.startup.__file__).with_name("__main__.py").read_text("utf-8")
    assert "from nervenbahn.startup import main" in main_module


_SETTLE_PROBE = """
import gc, json, weakref
from nervenbahn.startup import settle

class Cycle:
    pass

kept = [Cycle() for _ in range(1000)]
a, b = Cycle(), Cycle()
a.b, b.a = b, a
dropped = weakref.ref(a)
del a, b
gc.disable()  # only settle's own collection may free the cycle
settle()
print(json.dumps({"dropped_freed": dropped() is None, "frozen": gc.get_freeze_count(),
                  "kept_tracked": all(gc.is_tracked(c) for c in kept)}))
"""


def test_settle_frees_the_garbage_of_start_up_and_freezes_the_rest() -> None:
    """`nervenbahn serve` settles before it serves (`nervenbahn.startup.settle`): the cycles
    start-up dropped are freed, not frozen for the life of the process, and what it keeps is
    frozen (out of the full collections that made the API's tail)."""
    done = subprocess.run(
        [sys.executable, "-c", _SETTLE_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["dropped_freed"] is True and report["kept_tracked"] is True
    assert report["frozen"] >= 1000
