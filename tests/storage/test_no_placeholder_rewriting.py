"""No SQL text is rewritten for the other backend (issue 11): each statement is written with the
placeholder of the connection it runs on (`schemas.sql.placeholder`, the audit database's
`placeholder`). A `.replace("?", "%s")` on SQL would let SQLite-only text reach PostgreSQL
unnoticed (a `?` or `%` inside a literal, an `INSERT OR …`); this scan keeps it from coming back.
"""

from __future__ import annotations

import ast

from tests.storage.test_ddl_home import PACKAGES, ROOT

MARKERS = ("?", "%s", "%", "%%")
"""The placeholders (and psycopg's escape of `%`) that a rewrite of SQL text replaces."""


def rewrites(source: str) -> list[int]:
    """The lines of `source` that call `.replace(...)` with a placeholder as what to replace,
    or `re.sub` a pattern matching a literal `?` (`\\?`, `[?]`)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        first = node.args[0] if node.args else None
        if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
            continue
        replaces = node.func.attr == "replace" and first.value in MARKERS
        substitutes = node.func.attr in ("sub", "subn") and first.value in (r"\?", "[?]")
        if replaces or substitutes:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_finds_a_rewrite_of_placeholders() -> None:
    planted = (
        'query = query.replace("%", "%%").replace("?", "%s")\n'
        "other = text.replace('?', '%s')\n"
        'import re\nthird = re.sub(r"\\?", "%s", text)\n'
        'fine = name.replace("-", "_")\n'
    )
    assert rewrites(planted) == [1, 1, 2, 4]


def test_no_module_of_ours_rewrites_sql_placeholders() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for line in rewrites(path.read_text(encoding="utf-8"))
    }
    assert found == set()
