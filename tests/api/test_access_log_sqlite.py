"""The SQLite access log: the contract, append-only triggers, and its error translation."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.errors import AccessLogUnavailableError
from tests.api.access_log_contract import AccessLogContract, ChainedAccessLogContract, entry


class TestSQLiteAccessLog(ChainedAccessLogContract):
    def open_log(self, folder: Path) -> SQLiteAccessLog:
        return SQLiteAccessLog(folder / "access-log.db")


del AccessLogContract, ChainedAccessLogContract  # collected through the subclass only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE access_log SET consumer = 'someone else'",
        "UPDATE access_log SET fields = '[]' WHERE id = 1",
        "DELETE FROM access_log",
        "DELETE FROM access_log WHERE id = 1",
    ],
)
def test_the_log_refuses_to_change_or_delete_an_entry(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "access-log.db"
    log = SQLiteAccessLog(path)
    log.append(entry(1))
    log.close()

    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(statement)

    reopened = SQLiteAccessLog(path)
    assert [item.entry for item in reopened.select()] == [entry(1)]
    reopened.close()


def _closed(tmp_path: Path) -> SQLiteAccessLog:
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    log.close()
    return log


def _read_only(tmp_path: Path) -> SQLiteAccessLog:
    path = tmp_path / "access-log.db"
    SQLiteAccessLog(path).close()
    log = SQLiteAccessLog(path)
    log._db.execute("PRAGMA query_only = ON")  # as if the disk refused writes
    return log


@pytest.mark.parametrize(
    ("make", "operation"),
    [
        (_closed, lambda log: log.append(entry(1))),            # sqlite3.ProgrammingError
        (_closed, lambda log: log.select()),
        (_read_only, lambda log: log.append(entry(1))),         # sqlite3.OperationalError
        (_closed, lambda log: log.head()),
        (_closed, lambda log: log.verify()),
        (_closed, lambda log: log.purge(now=datetime.now(UTC), retention_days=365)),
    ],
    ids=["append-after-close", "select-after-close", "append-refused-by-database",
         "head-after-close", "verify-after-close", "purge-after-close"],
)
def test_sqlite_errors_become_access_log_unavailable(
    tmp_path: Path,
    make: Callable[[Path], SQLiteAccessLog],
    operation: Callable[[SQLiteAccessLog], object],
) -> None:
    log = make(tmp_path)

    with pytest.raises(AccessLogUnavailableError) as raised:
        operation(log)

    assert isinstance(raised.value.__cause__, sqlite3.Error)


def test_a_log_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()

    with pytest.raises(AccessLogUnavailableError, match="cannot open the access log"):
        SQLiteAccessLog(tmp_path / "a-directory.db")
