"""`projections.storage.open_read_model`: the read models' storage translates either backend's
database errors into one `ReadModelUnreadableError` with the reason, so that readers (the API)
never handle sqlite3 or psycopg themselves."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from projections.errors import ProjectionError, ReadModelUnreadableError
from projections.storage import PostgresReadModels, ReadModelTarget, open_read_model

TABLE = "region_cases"


def _read(target: ReadModelTarget, statement: str = f"SELECT count(*) FROM {TABLE}") -> None:
    with open_read_model(target, TABLE) as db:
        db.execute(statement)


def test_a_read_model_not_built_is_unreadable_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(ReadModelUnreadableError, match="is not built yet") as info:
        _read(tmp_path / "region.db")

    assert info.value.reason == "is not built yet"
    assert isinstance(info.value, ProjectionError)
    assert not (tmp_path / "region.db").exists()  # a reader never creates the file


def test_a_half_built_read_model_fails_while_read_with_the_database_s_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "region.db"
    sqlite3.connect(path).close()  # the file exists, its tables do not

    with pytest.raises(ReadModelUnreadableError, match=r"cannot be read .*no such table"):
        _read(path)


def test_a_built_read_model_answers_and_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "region.db"
    setup = sqlite3.connect(path)
    with setup:
        setup.execute(f"CREATE TABLE {TABLE} (case_id TEXT)")
        setup.execute(f"INSERT INTO {TABLE} VALUES ('c-1')")
    setup.close()

    with open_read_model(path, TABLE) as db:
        assert db.execute(f"SELECT case_id FROM {TABLE}").fetchall() == [("c-1",)]
    with pytest.raises(ReadModelUnreadableError, match=r"cannot be read .*readonly"):
        _read(path, f"INSERT INTO {TABLE} VALUES ('c-2')")


def test_an_unreachable_postgresql_read_model_cannot_be_opened() -> None:
    nowhere = PostgresReadModels("host=127.0.0.1 port=1 dbname=test connect_timeout=2",
                                 "read_models")

    with pytest.raises(ReadModelUnreadableError, match="cannot be opened"):
        _read(nowhere)
