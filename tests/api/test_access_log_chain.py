"""The SQLite access log's chain against someone who edits the file: every change found at
its first position; an unchained file refused, chained only explicitly; purge permits;
concurrent appends."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.errors import (
    AccessLogTamperedError,
    AccessLogUnavailableError,
    UnchainedAccessLogError,
)
from nervenbahn.audit.hashing import ChainHead
from tests.api.access_log_contract import GENESIS, entry, expected_hash, recorded
from tests.bus.waiting import wait_until

ENTRIES = 5
NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A closed log file with five entries, 500 to 496 days old."""
    file = tmp_path / "access-log.db"
    log = SQLiteAccessLog(file)
    for n in range(1, ENTRIES + 1):
        log.append(recorded(n, NOW - timedelta(days=501 - n), person=f"p-{n}"))
    log.close()
    return file


def tamper(path: Path, *statements: str) -> None:
    """Run SQL on the file as an intruder would: with the append-only triggers dropped."""
    with sqlite3.connect(path) as db:
        for name, in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            db.execute(statement)


def verify(path: Path, expected: tuple[ChainHead, ...] = ()) -> tuple[int | None, str]:
    """(first bad position, reason) after reopening the file; (None, "") if intact."""
    log = SQLiteAccessLog(path)
    result = log.verify(expected)
    log.close()
    broken = result.first_break
    return (broken.position, broken.reason) if broken else (None, "")


def head_of(path: Path) -> ChainHead:
    log = SQLiteAccessLog(path)
    head = log.head()
    log.close()
    return head


def test_every_entry_has_its_hash_in_the_same_file(path: Path) -> None:
    with sqlite3.connect(path) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM access_log ORDER BY id")]
        hashed = [row[0] for row in db.execute("SELECT id FROM access_log_chain ORDER BY id")]

    assert ids == hashed == list(range(1, ENTRIES + 1))
    assert verify(path) == (None, "")


@pytest.mark.parametrize(
    "change",
    [
        "at = '2024-01-01T00:00:00+00:00'",
        "consumer = 'nobody'",
        "scope = 'auditor'",
        "case_id = 'c-other'",
        "person_id = 'p-other'",
        "fields = '[\"given_name\"]'",
        "endpoint = 'GET /v1/other'",
    ],
)
def test_a_changed_field_is_found_at_its_entry(path: Path, change: str) -> None:
    tamper(path, f"UPDATE access_log SET {change} WHERE id = 3")

    position, reason = verify(path)

    assert (position, "altered" in reason) == (3, True)


def test_a_changed_hash_is_found_at_its_entry(path: Path) -> None:
    tamper(path, "UPDATE access_log_chain SET hash = zeroblob(32) WHERE id = 2")

    assert verify(path)[0] == 2


def test_unreadable_fields_are_a_break_not_a_crash(path: Path) -> None:
    tamper(path, "UPDATE access_log SET fields = 'not json' WHERE id = 4")

    position, reason = verify(path)

    assert (position, "cannot be read" in reason) == (4, True)


@pytest.mark.parametrize(
    ("statements", "reason"),
    [
        (["DELETE FROM access_log WHERE id = 3"], "deleted"),
        (["DELETE FROM access_log WHERE id = 3",
          "DELETE FROM access_log_chain WHERE id = 3"], "entry 3 is missing"),
        (["DELETE FROM access_log WHERE id IN (3, 4)",
          "DELETE FROM access_log_chain WHERE id IN (3, 4)"], "entries 3-4 are missing"),
    ],
    ids=["entry-only", "entry-and-hash", "two-entries"],
)
def test_a_deleted_entry_is_found_at_its_position(
    path: Path, statements: list[str], reason: str
) -> None:
    tamper(path, *statements)

    position, why = verify(path)

    assert position == 3
    assert reason in why


def test_an_inserted_entry_is_found(path: Path) -> None:
    tamper(path, "INSERT INTO access_log SELECT 6, at, 'me', scope, case_id, person_id, "
                 "fields, endpoint FROM access_log WHERE id = 5")

    position, reason = verify(path)

    assert (position, "no stored hash" in reason) == (6, True)


def test_an_inserted_entry_with_a_copied_hash_is_found(path: Path) -> None:
    tamper(path,
           "INSERT INTO access_log SELECT 6, at, 'me', scope, case_id, person_id, fields, "
           "endpoint FROM access_log WHERE id = 5",
           "INSERT INTO access_log_chain SELECT 6, hash FROM access_log_chain WHERE id = 5")

    assert verify(path)[0] == 6


def test_entries_shifted_to_make_room_are_found_at_the_first_shifted(path: Path) -> None:
    tamper(path,
           "UPDATE access_log SET id = id + 10 WHERE id >= 3",
           "UPDATE access_log SET id = id - 9 WHERE id >= 13",    # 3 -> 4, 4 -> 5, 5 -> 6
           "INSERT INTO access_log SELECT 3, at, 'me', scope, case_id, person_id, fields, "
           "endpoint FROM access_log WHERE id = 2",
           "UPDATE access_log_chain SET id = id + 10 WHERE id >= 3",
           "UPDATE access_log_chain SET id = id - 9 WHERE id >= 13",
           "INSERT INTO access_log_chain SELECT 3, hash FROM access_log_chain WHERE id = 2")

    assert verify(path)[0] == 3


def test_two_swapped_entries_are_found_at_the_first(path: Path) -> None:
    tamper(path,
           "UPDATE access_log SET id = 100 WHERE id = 2",
           "UPDATE access_log SET id = 2 WHERE id = 4",
           "UPDATE access_log SET id = 4 WHERE id = 100")

    assert verify(path)[0] == 2


def test_a_truncation_is_found_only_against_an_expected_head(path: Path) -> None:
    checkpoint = head_of(path)
    tamper(path, "DELETE FROM access_log WHERE id > 3", "DELETE FROM access_log_chain WHERE id > 3")

    position, reason = verify(path, (checkpoint,))

    assert verify(path) == (None, "")                        # the rest is self-consistent
    assert position == 4
    assert "truncated" in reason


def test_a_rewritten_chain_is_found_against_an_expected_head(path: Path) -> None:
    checkpoint = head_of(path)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, at, consumer, scope, case_id, person_id, fields, "
                          "endpoint FROM access_log ORDER BY id").fetchall()
    tamper(path, "UPDATE access_log SET consumer = 'nobody' WHERE id = 2")
    previous = GENESIS                      # the intruder recomputes every hash from entry 1
    rewritten = []
    for entry_id, at, consumer, scope, case_id, person_id, fields, endpoint in rows:
        forged = AccessEntry(
            at=datetime.fromisoformat(at), consumer="nobody" if entry_id == 2 else consumer,
            scope=scope, case_id=case_id, person_id=person_id,
            fields=tuple(json.loads(fields)), endpoint=endpoint)
        previous = expected_hash(previous, entry_id, forged)
        rewritten.append(f"UPDATE access_log_chain SET hash = x'{previous.hex()}' "
                         f"WHERE id = {entry_id}")
    tamper(path, *rewritten)

    position, reason = verify(path, (checkpoint,))

    assert verify(path) == (None, "")
    assert position == ENTRIES
    assert "signed checkpoint" in reason


def test_a_purge_refuses_a_chain_broken_in_the_part_it_would_remove(path: Path) -> None:
    tamper(path, "UPDATE access_log SET consumer = 'nobody' WHERE id = 1")
    log = SQLiteAccessLog(path)

    with pytest.raises(AccessLogTamperedError, match="broken at 1"):
        log.purge(now=NOW, retention_days=365)

    assert len(log.select()) == ENTRIES
    assert log.anchor() is None
    log.close()


def test_the_purge_permit_lasts_only_for_the_purge(path: Path) -> None:
    log = SQLiteAccessLog(path)
    anchor = log.purge(now=NOW, retention_days=497)          # entries 1-3: 500-498 days old
    log.close()

    with sqlite3.connect(path) as db:
        permits = db.execute("SELECT count(*) FROM access_log_purge_permit").fetchone()
        refused = []
        for statement in ("DELETE FROM access_log WHERE id = 4",
                          "DELETE FROM access_log_chain WHERE id = 4",
                          "DELETE FROM access_log_anchor",
                          "UPDATE access_log_anchor SET position = 5"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only") as raised:
                db.execute(statement)
            refused.append(raised.value)

    assert anchor is not None and anchor.position == 3
    assert permits == (0,)
    assert len(refused) == 4
    assert verify(path) == (None, "")


def test_an_altered_retention_anchor_is_found_at_the_entry_after_it(path: Path) -> None:
    log = SQLiteAccessLog(path)
    log.purge(now=NOW, retention_days=498)                   # entries 1-2
    log.close()
    tamper(path, "UPDATE access_log_anchor SET hash = zeroblob(32)")

    assert verify(path)[0] == 3


# --- migration of a log written before the chain --------------------------------------------

UNCHAINED_SCHEMA = (
    "CREATE TABLE access_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, "
    "consumer TEXT NOT NULL, scope TEXT NOT NULL, case_id TEXT NOT NULL, "
    "person_id TEXT NOT NULL, fields TEXT NOT NULL, endpoint TEXT NOT NULL)",
    "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only: entries cannot be changed'); END",
    "CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only: entries cannot be deleted'); END",
)


def unchained_file(path: Path, count: int) -> None:
    """A log as the version before the chain wrote it."""
    with sqlite3.connect(path) as db:
        for statement in UNCHAINED_SCHEMA:
            db.execute(statement)
        for n in range(1, count + 1):
            item = entry(n)
            db.execute(
                "INSERT INTO access_log (at, consumer, scope, case_id, person_id, fields, "
                "endpoint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (item.at.astimezone(UTC).isoformat(), item.consumer, item.scope, item.case_id,
                 item.person_id, json.dumps(list(item.fields)), item.endpoint),
            )


def test_an_unchained_log_is_refused_on_open_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "access-log.db"
    unchained_file(path, 3)
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()

    with pytest.raises(UnchainedAccessLogError) as refused:
        SQLiteAccessLog(path)

    with sqlite3.connect(path) as db:
        after = db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
        version = db.execute("PRAGMA user_version").fetchone()
    assert refused.value.unchained == 3
    assert str(path) in str(refused.value) and "access-chain-existing --confirm" in str(
        refused.value)
    assert isinstance(refused.value, AccessLogUnavailableError)  # 503 / exit 3 where used
    assert (after, version) == (before, (0,))


def test_an_unchained_log_is_chained_only_explicitly_and_keeps_every_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "access-log.db"
    unchained_file(path, 3)
    previous = GENESIS
    for n in range(1, 4):
        previous = expected_hash(previous, n, entry(n))

    with capture_logs() as logs:
        log = SQLiteAccessLog(path, chain_existing=True)
    done = log.rechained
    next_id = log.append(entry(4))
    log.close()
    with capture_logs() as again:
        reopened = SQLiteAccessLog(path)

    assert [(e["log_level"], e["entries"]) for e in logs] == [("warning", 3)]
    assert done is not None and (done.entries, done.first, done.last) == (3, 1, 3)
    assert again == []
    assert [item.entry for item in reopened.select()] == [entry(n) for n in range(1, 5)]
    assert next_id == 4
    verification = reopened.verify([ChainHead(3, previous)])
    assert verification.ok
    assert verification.rechained == (done,)
    assert reopened.head() == ChainHead(4, expected_hash(previous, 4, entry(4)))
    reopened.close()


def test_the_explicitly_chained_log_still_refuses_deletes(tmp_path: Path) -> None:
    path = tmp_path / "access-log.db"
    unchained_file(path, 2)
    SQLiteAccessLog(path, chain_existing=True).close()

    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM access_log")


def test_resetting_the_version_and_removing_the_hashes_is_refused_not_rechained(
    path: Path,
) -> None:
    with sqlite3.connect(path) as db:  # no trigger dropped: a permit row lets the delete pass
        db.execute("INSERT INTO access_log_purge_permit VALUES (1000)")
        db.execute("DELETE FROM access_log_chain")
        db.execute("DELETE FROM access_log_purge_permit")
        db.execute("PRAGMA user_version = 0")

    with pytest.raises(UnchainedAccessLogError, match=f"{ENTRIES} entries without"):
        SQLiteAccessLog(path)

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM access_log_chain").fetchone() == (0,)


def test_resetting_only_the_version_of_a_chained_log_opens_it_unchanged(path: Path) -> None:
    head = head_of(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")

    with capture_logs() as logs:
        assert head_of(path) == head

    assert not [e for e in logs if e["log_level"] == "warning"]
    assert verify(path, (head,)) == (None, "")


def test_an_entry_without_hash_in_a_chained_log_is_not_migrated_but_found(path: Path) -> None:
    tamper(path, "INSERT INTO access_log SELECT 6, at, 'me', scope, case_id, person_id, "
                 "fields, endpoint FROM access_log WHERE id = 5")

    with capture_logs() as logs:
        position, _ = verify(path)

    assert position == 6
    assert not [e for e in logs if e["log_level"] == "warning"]


def test_appending_after_an_unhashed_insert_is_refused(path: Path) -> None:
    tamper(path, "INSERT INTO access_log SELECT 6, at, 'me', scope, case_id, person_id, "
                 "fields, endpoint FROM access_log WHERE id = 5")
    log = SQLiteAccessLog(path)

    with pytest.raises(AccessLogUnavailableError, match="cannot append"):
        log.append(entry(7))

    log.close()


def test_a_log_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "access-log.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(AccessLogUnavailableError, match="newer nervenbahn"):
        SQLiteAccessLog(path)


# --- concurrency ------------------------------------------------------------------------------


def run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize("connections", ["one log", "a log per thread"])
def test_concurrent_appends_make_one_linear_chain(tmp_path: Path, connections: str) -> None:
    path = tmp_path / "access-log.db"
    shared = SQLiteAccessLog(path)
    threads, per_thread = 6, 15
    ids: list[int] = []
    errors: list[BaseException] = []

    def append(thread: int) -> None:
        log = shared if connections == "one log" else SQLiteAccessLog(path)
        try:
            for n in range(per_thread):
                ids.append(log.append(entry(n, person=f"t{thread}")))
        except BaseException as exc:  # reported below: a thread's error must fail the test
            errors.append(exc)
        finally:
            if log is not shared:
                log.close()

    run_threads(threads, append)
    result = shared.verify()
    logged = shared.select(limit=1000)
    shared.close()

    total = threads * per_thread
    assert errors == []
    assert sorted(ids) == list(range(1, total + 1))
    assert [item.id for item in logged] == list(range(1, total + 1))
    assert (result.ok, result.records) == (True, total)
    assert {item.entry.person_id for item in logged} == {f"t{t}" for t in range(threads)}


def _queued_behind_a_commit(
    log: SQLiteAccessLog, entries: list[AccessEntry], *, also: AccessEntry | None = None
) -> tuple[list[int | BaseException], list[int]]:
    """Append each entry from a thread of its own while another transaction holds the
    writer's turn (the test holds it until every entry is queued, and until `also`, appended
    from one more thread, has returned or raised); what each append returned or raised (that
    of `also` last), and the size of each transaction the log wrote."""
    batches: list[int] = []
    write_all = log._append_all

    def counted(batch: list[Any]) -> None:
        batches.append(len(batch))
        write_all(batch)

    log._append_all = counted  # type: ignore[method-assign]
    results: list[int | BaseException] = [0] * len(entries)

    def append(n: int) -> None:
        try:
            results[n] = log.append(entries[n])
        except BaseException as exc:  # reported by the caller's assertions
            results[n] = exc

    if also is not None:
        entries, results = [*entries, also], [*results, 0]
    threads = [threading.Thread(target=append, args=(n,)) for n in range(len(entries))]
    queued = len(entries) - (also is not None)
    with log._lock:  # a commit in progress
        for thread in threads:
            thread.start()
        wait_until(lambda: len(log._queue) == queued, what="every entry queued")
        if also is not None:
            threads[-1].join(timeout=60)  # refused before it queued: it did not wait
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results, batches


def test_entries_queued_behind_a_commit_are_written_together_each_with_its_own_id(
    tmp_path: Path,
) -> None:
    """Group commit: the entries that queued while another transaction was being written go
    into the next one, chained in the order they came, and each append returns its own id
    only once that transaction is committed."""
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    entries = [entry(n, person=f"p-{n}") for n in range(6)]

    results, batches = _queued_behind_a_commit(log, entries)

    logged = {item.id: item.entry for item in log.select(limit=100)}
    assert batches == [6]
    assert sorted(results) == list(range(1, 7))  # type: ignore[type-var]
    assert all(logged[result] == entries[n] for n, result in enumerate(results))  # type: ignore[index]
    assert (log.verify().ok, log.verify().records) == (True, 6)
    assert log.append(entry(9)) == 7
    log.close()


def test_a_failed_group_commit_records_none_of_its_entries_and_every_caller_is_told(
    tmp_path: Path,
) -> None:
    """If the transaction of a group fails, none of its entries is recorded and every append
    in it raises (so no answer that waited for its entry is sent); the next one works."""
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    log.append(entry(0))
    log._db.execute(  # the disk refuses one entry of the group: the transaction fails
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON access_log WHEN NEW.consumer = 'desk-3' "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    entries = [entry(n, person=f"p-{n}") for n in range(1, 6)]

    results, batches = _queued_behind_a_commit(log, entries)

    assert batches == [5]
    assert all(isinstance(result, AccessLogUnavailableError) for result in results)
    assert all("cannot append to the access log: disk I/O error" in str(r) for r in results)
    assert [item.id for item in log.select(limit=100)] == [1]
    log._db.execute("DROP TRIGGER refuse")
    assert log.append(entry(7)) == 2
    assert log.verify().ok
    log.close()


def test_an_entry_that_cannot_be_stored_fails_only_its_own_caller(tmp_path: Path) -> None:
    """An entry whose field names are not text is refused before it joins a group: the
    others queued with it are recorded."""
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    bad = dataclasses.replace(entry(3), fields=("given_name", 7))  # type: ignore[arg-type]
    entries = [entry(1), entry(2), bad, entry(4)]

    results, batches = _queued_behind_a_commit(log, entries[:2] + entries[3:], also=bad)

    assert isinstance(results[-1], ValueError)
    assert sorted(r for r in results[:-1] if isinstance(r, int)) == [1, 2, 3]
    assert batches == [3]
    assert log.verify().ok
    log.close()


def test_a_group_whose_writer_is_interrupted_tells_every_caller(tmp_path: Path) -> None:
    """The thread writing a group is interrupted before it settles it (an exception that is
    not an error): every other caller of the group raises; none returns without its entry."""
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    interrupted = False
    write_all = log._append_all

    def interrupt_once(batch: list[Any]) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt
        write_all(batch)

    log._append_all = interrupt_once  # type: ignore[method-assign]
    results, _ = _queued_behind_a_commit(log, [entry(n) for n in range(4)])

    assert sum(isinstance(r, KeyboardInterrupt) for r in results) == 1
    assert sum(isinstance(r, AccessLogUnavailableError) for r in results) == 3
    assert log.select(limit=10) == []
    assert log.append(entry(9)) == 1
    log.close()


def test_a_commit_that_fails_is_rolled_back_and_the_next_append_works(tmp_path: Path) -> None:
    """A COMMIT refused by the database (here a deferred constraint; disk full or an I/O
    error alike) leaves no transaction open to refuse every later append."""
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    log._db.executescript(
        "PRAGMA foreign_keys = ON; "
        "CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY); "
        "CREATE TEMP TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);"
        "CREATE TEMP TRIGGER refuse_at_commit AFTER INSERT ON access_log "
        "WHEN NEW.consumer = 'desk-1' BEGIN INSERT INTO child VALUES (42); END;"
    )

    with pytest.raises(AccessLogUnavailableError, match="FOREIGN KEY"):
        log.append(entry(1))

    assert not log._db.in_transaction
    assert log.append(entry(2)) == 1
    assert [item.entry.consumer for item in log.select(limit=10)] == ["desk-2"]
    log.close()
