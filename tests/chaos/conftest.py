"""The fault suite's fixtures and its closing table.

Each scenario records one row of figures (`harness.Figures`) through the `figures` fixture;
at the end of the session the rows are printed as one table (pytest_terminal_summary) and
written to `chaos-figures.json` in pytest's base temporary folder, for the closing note.
`make chaos` runs the full scenarios (marker `chaos`); a short version of some runs in CI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus.broker import EmbeddedBroker, free_port
from tests.chaos.harness import Figures, Installation
from tests.conftest import BROKER_DEADLINE_S

ROWS = pytest.StashKey[list[dict[str, Any]]]()
REPORT = pytest.StashKey[Path]()

COLUMNS = (
    ("scenario", "scenario"), ("events_in", "events in"), ("messages_out", "messages out"),
    ("lost", "lost"), ("duplicated", "duplicated"),
    ("read_models_equal", "read models == rebuild"), ("ready_after_s", "ready again after (s)"),
    ("passed", "pass"),
)


@pytest.fixture(scope="session")
def _chaos_rows(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    rows = request.config.stash.setdefault(ROWS, [])
    request.config.stash[REPORT] = tmp_path_factory.getbasetemp() / "chaos-figures.json"
    return rows


@pytest.fixture
def figures(_chaos_rows: list[dict[str, Any]],
            request: pytest.FixtureRequest) -> Callable[[Figures], Figures]:
    """`record(figures)`: add the scenario's row to the closing table (and the JSON file)."""

    def record(row: Figures) -> Figures:
        _chaos_rows.append(row.row())
        request.config.stash[REPORT].write_text(json.dumps(_chaos_rows, indent=2) + "\n")
        return row

    return record


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker of the test's own (as `private_broker`) on a fixed port, so that a
    scenario can stop it and start it again, empty, where `serve` expects it."""
    with EmbeddedBroker(tmp_path / "broker", port=free_port(),
                        start_timeout=BROKER_DEADLINE_S) as started:
        yield started


@pytest.fixture
def installation(tmp_path: Path, broker: EmbeddedBroker) -> Installation:
    """A SQLite store with its keys, on a broker of the test's own."""
    return Installation(tmp_path / "installation", broker)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the scenarios' figures as one table."""
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    table = [[_cell(row[key]) for key, _ in COLUMNS] for row in rows]
    heads = [title for _, title in COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(heads)]
    terminalreporter.section("fault suite figures")
    line = " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    terminalreporter.write_line(line)
    terminalreporter.write_line("-+-".join("-" * w for w in widths))
    for cells in table:
        terminalreporter.write_line(" | ".join(c.ljust(w) for c, w in
                                               zip(cells, widths, strict=True)))
    for row in rows:
        if row.get("note"):
            terminalreporter.write_line(f"  {row['scenario']}: {row['note']}")
    terminalreporter.write_line(f"figures written to {config.stash[REPORT]}")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.1f}"
    return "–" if value is None else str(value)
