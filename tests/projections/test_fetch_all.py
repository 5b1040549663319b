"""`fetch_all`: a query's rows in one piece (SQLite: one JSON row), the values as the driver
would give them, on both backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import pytest

from projections.storage import SQLConnection, fetch_all
from schemas.sql import placeholder

# Text that JSON must escape or that looks like JSON itself, numbers at the edge of 64 bits.
VALUES = [
    ("a", 1, None),
    ('quote " backslash \\ tab \t newline \n', -(2**63), "x"),
    ('{"looks": ["like", "json"]}', 2**63 - 1, "[1, 2]"),
    ("Zürich — Genève ✓ 𝄞", 0, ""),
    ("null", 42, "true"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Iterator[SQLConnection]:
    if request.param == "sqlite":
        connection = sqlite3.connect(":memory:")
        yield connection
        connection.close()
        return
    url = request.getfixturevalue("postgres_server_url")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TEMPORARY TABLE facts (t TEXT, n BIGINT, o TEXT)")
        yield connection


def _fill(db: SQLConnection) -> None:
    if isinstance(db, sqlite3.Connection):
        db.execute("CREATE TABLE facts (t TEXT, n INTEGER, o TEXT)")
    p = placeholder(db)
    for row in VALUES:
        db.execute(f"INSERT INTO facts VALUES ({p}, {p}, {p})", row)


def test_every_value_arrives_as_the_driver_gives_it(db: SQLConnection) -> None:
    _fill(db)
    p = placeholder(db)
    query = f"SELECT t, n, o FROM facts WHERE n <> {p}"
    expected = db.execute(query, (1,)).fetchall()

    rows = fetch_all(db, query, (1,), 3)

    assert sorted(map(tuple, rows)) == sorted(expected)
    assert len(expected) == 4  # the parameter chose the rows


def test_order_by_with_limit_still_chooses_the_rows(db: SQLConnection) -> None:
    _fill(db)
    p = placeholder(db)
    rows = fetch_all(db, f"SELECT n FROM facts ORDER BY n DESC LIMIT {p}", (2,), 1)

    assert sorted(row[0] for row in rows) == [42, 2**63 - 1]


def test_no_row_is_an_empty_list(db: SQLConnection) -> None:
    _fill(db)
    assert fetch_all(db, "SELECT t, n FROM facts WHERE n IS NULL", (), 2) == []
