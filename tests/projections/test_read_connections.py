"""`projections.read_connections.reused_read_model`: a SQLite read model's connection kept
per thread answers like a new one — errors translated alike, new rows seen, and a file
replaced by a rebuild read from the new file."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from projections.errors import ReadModelUnreadableError
from projections.read_connections import reused_read_model

TABLE = "region_cases"


def build(path: Path, *case_ids: str) -> None:
    """A read model file with one table holding `case_ids`."""
    db = sqlite3.connect(path)
    with db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (case_id TEXT)")
        db.executemany(f"INSERT INTO {TABLE} VALUES (?)", [(case,) for case in case_ids])
    db.close()


def cases(path: Path) -> list[str]:
    with reused_read_model(path, TABLE) as db:
        return [row[0] for row in db.execute(f"SELECT case_id FROM {TABLE} ORDER BY case_id")]


def test_a_read_model_not_built_is_unreadable_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(ReadModelUnreadableError, match="is not built yet"):
        cases(tmp_path / "region.db")

    assert not (tmp_path / "region.db").exists()


def test_a_half_built_read_model_fails_with_the_database_s_reason(tmp_path: Path) -> None:
    path = tmp_path / "region.db"
    sqlite3.connect(path).close()

    with pytest.raises(ReadModelUnreadableError, match=r"cannot be read .*no such table"):
        cases(path)
    build(path, "c-1")  # built since: the next reader sees it
    assert cases(path) == ["c-1"]


def test_a_kept_connection_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "region.db"
    build(path, "c-1")
    assert cases(path) == ["c-1"]

    with (
        pytest.raises(ReadModelUnreadableError, match=r"cannot be read .*readonly"),
        reused_read_model(path, TABLE) as db,
    ):
        db.execute(f"INSERT INTO {TABLE} VALUES ('c-2')")


def test_rows_committed_after_a_read_are_seen_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "region.db"
    build(path, "c-1")
    assert cases(path) == ["c-1"]

    build(path, "c-2")

    assert cases(path) == ["c-1", "c-2"]


def test_a_file_replaced_by_a_rebuild_is_read_from_the_new_file(tmp_path: Path) -> None:
    path, fresh = tmp_path / "region.db", tmp_path / "region.db.rebuild"
    build(path, "old")
    assert cases(path) == ["old"]

    build(fresh, "new")  # as projections.framework.rebuild: beside it, then renamed over it
    path.unlink()
    os.replace(fresh, path)

    assert cases(path) == ["new"]


def test_each_thread_reads_through_a_connection_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "region.db"
    build(path, "c-1")
    seen: list[object] = []

    def read() -> None:
        with reused_read_model(path, TABLE) as db:
            seen.append(db)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read()
    read()

    assert seen[0] is not seen[1]
    assert seen[2] is seen[3]  # this thread's, kept
