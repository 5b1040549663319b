"""The scale tests' closing table: each scenario records one row (`cluster.Figures`) through
the `scale_figures` fixture; the rows are printed as one markdown table at the end of the
session and written to `scale-figures.json` in pytest's base temporary folder.

The scale tests run one after another on one pytest-xdist worker (group `scale`, `make test`
runs `--dist loadgroup`): three `serve` processes hold about 70 PostgreSQL connections, and two
such clusters at once exceed the test server's 100."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.scale.cluster import Figures

ROWS = pytest.StashKey[list[dict[str, Any]]]()
HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook runs first otherwise)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every scale test in the xdist group `scale` (one worker, one at a time)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("scale"))


@pytest.fixture
def scale_figures(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Callable[[Figures], Figures]:
    """`record(figures)`: add the scenario's row to the closing table (and the JSON file)."""
    rows = request.config.stash.setdefault(ROWS, [])
    report = tmp_path_factory.getbasetemp() / "scale-figures.json"

    def record(row: Figures) -> Figures:
        rows.append(row.row())
        report.write_text(json.dumps(rows, indent=2) + "\n")
        return row

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the scenarios' figures as one markdown table."""
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("scale figures")
    heads = [key for key in rows[0] if key != "note"]
    terminalreporter.write_line("| " + " | ".join(h.replace("_", " ") for h in heads) + " |")
    terminalreporter.write_line("|" + "---|" * len(heads))
    for row in rows:
        cells = [_cell(row[key]) for key in heads]
        terminalreporter.write_line("| " + " | ".join(cells) + " |")
    for row in rows:
        if row["note"]:
            terminalreporter.write_line(f"  {row['scenario']}: {row['note']}")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "–" if value is None else str(value)
