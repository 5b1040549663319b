"""Each table's DDL lives in exactly one module (issue 11): two modules creating one table
would drift apart, and the migration runner could version only one of them."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bus", "connectors", "domain", "nervenbahn", "projections", "schemas")
CREATE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\{schema\}\.|\{\}\.)?"
    r"(\{[^}]*\}\w*|\w+)"
)


def table_homes() -> dict[str, set[str]]:
    """Every table name in a CREATE TABLE of our code, and the modules that write it."""
    homes: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for table in CREATE.findall(path.read_text(encoding="utf-8")):
                homes[table].add(str(path.relative_to(ROOT)))
    return homes


def test_every_table_is_created_in_one_module() -> None:
    homes = table_homes()
    assert "consumer_offsets" in homes and "relay_positions" in homes  # the scan finds them
    shared = {table: sorted(modules) for table, modules in homes.items() if len(modules) > 1}
    assert shared == {}
