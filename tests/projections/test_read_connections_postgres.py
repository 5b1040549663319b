"""`projections.read_connections.reused_read_model` on PostgreSQL: the readers of a schema share
a pool of connections that answer like new ones (read-only, seeing what was committed since,
errors translated alike), and a connection the server ended is replaced, not handed out."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from nervenbahn.progress import _read_model_state
from projections import READ_MODELS
from projections.errors import ReadModelUnreadableError
from projections.framework import open_projection_store
from projections.read_connections import close_read_connections, reused_read_model
from projections.storage import PostgresReadModels
from schemas.postgres import SILENT_SERVER_S
from tests.bus.waiting import wait_until

pytestmark = pytest.mark.postgres

TABLE = "region_cases"
POOL_SIZE = 3
DEADLINE_S = 10.0


@pytest.fixture
def target(postgres_server_url: str) -> Iterator[PostgresReadModels]:
    """A schema of this test's own holding `TABLE`; its readers' connections are named after
    it (so the test sees and ends exactly those), closed and the schema dropped afterwards."""
    schema = f"t_{uuid4().hex[:12]}"
    conninfo = psycopg.conninfo.make_conninfo(postgres_server_url, application_name=schema)
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield PostgresReadModels(conninfo, schema, POOL_SIZE)
    close_read_connections()
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def build(target: PostgresReadModels, *case_ids: str) -> None:
    """`TABLE` in the schema (made if missing), `case_ids` added, committed."""
    with target.connect() as db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (case_id TEXT)")
        for case_id in case_ids:
            db.execute(f"INSERT INTO {TABLE} VALUES (%s)", (case_id,))


def read(target: PostgresReadModels) -> tuple[list[str], int]:
    """The table's case ids and the server process that answered."""
    with reused_read_model(target, TABLE) as db:
        rows = db.execute(f"SELECT case_id FROM {TABLE} ORDER BY case_id").fetchall()
        backend = db.execute("SELECT pg_backend_pid()").fetchone()
    assert backend is not None
    return [row[0] for row in rows], backend[0]


def backends(server_url: str, target: PostgresReadModels) -> set[int]:
    """The server processes of the readers' connections (named after the schema)."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                             (target.schema,)).fetchall()
    return {row[0] for row in rows}


def test_readers_one_after_another_share_one_connection(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    build(target, "c-1")

    answered_by = {read(target)[1] for _ in range(20)}

    assert len(answered_by) == 1
    assert backends(postgres_server_url, target) == answered_by


def test_concurrent_readers_hold_at_most_the_pool_size(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    build(target, "c-1")
    inside, release = threading.Barrier(POOL_SIZE + 1), threading.Event()
    answered_by: list[int] = []
    errors: list[BaseException] = []

    def reader(hold: bool) -> None:
        try:
            with reused_read_model(target, TABLE) as db:
                row = db.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                answered_by.append(row[0])
                if hold:  # the first POOL_SIZE readers hold their connections
                    inside.wait(DEADLINE_S)
                    release.wait(DEADLINE_S)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    holders = [threading.Thread(target=reader, args=(True,)) for _ in range(POOL_SIZE)]
    for thread in holders:
        thread.start()
    inside.wait(DEADLINE_S)  # every connection of the pool is in use now
    waiting = threading.Thread(target=reader, args=(False,))
    waiting.start()
    wait_until(lambda: len(backends(postgres_server_url, target)) == POOL_SIZE,
               within=DEADLINE_S, what="the pool's connections made")
    assert waiting.is_alive()  # no fourth connection: it waits for one of the three
    release.set()
    for thread in [*holders, waiting]:
        thread.join(DEADLINE_S)

    assert errors == []
    assert len(answered_by) == POOL_SIZE + 1
    assert set(answered_by) <= backends(postgres_server_url, target)
    assert len(backends(postgres_server_url, target)) == POOL_SIZE


def test_rows_committed_after_a_read_are_seen_by_the_next(target: PostgresReadModels) -> None:
    build(target, "c-1")
    assert read(target)[0] == ["c-1"]

    build(target, "c-2")

    assert read(target)[0] == ["c-1", "c-2"]


def test_a_pooled_connection_stays_read_only(target: PostgresReadModels) -> None:
    build(target, "c-1")
    assert read(target)[0] == ["c-1"]

    with (  # not translated: a write is a reader's defect, not the read model's state
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        reused_read_model(target, TABLE) as db,
    ):
        db.execute(f"INSERT INTO {TABLE} VALUES ('c-2')")
    assert read(target)[0] == ["c-1"]  # and the connection serves the next reader


def test_a_read_model_not_built_is_unreadable_until_it_is(target: PostgresReadModels) -> None:
    with pytest.raises(ReadModelUnreadableError, match="is not built yet"):
        read(target)

    build(target, "c-1")

    assert read(target)[0] == ["c-1"]


def test_a_connection_the_server_ended_is_replaced_before_a_reader_gets_it(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    build(target, "c-1")
    first = read(target)[1]
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    wait_until(lambda: first not in backends(postgres_server_url, target), within=DEADLINE_S,
               what="the ended server process gone")

    case_ids, second = read(target)  # no error: checked, found ended, replaced

    assert case_ids == ["c-1"]
    assert second != first


def test_an_unreachable_server_fails_the_reader_after_the_connect_timeout() -> None:
    nowhere = PostgresReadModels("host=127.0.0.1 port=1 dbname=test connect_timeout=1",
                                 "read_models")
    try:
        with pytest.raises(ReadModelUnreadableError, match="cannot be opened"):
            read(nowhere)
    finally:
        close_read_connections()


def test_a_table_migrated_under_pooled_readers_is_read_with_its_new_columns(
    target: PostgresReadModels,
) -> None:
    build(target, "c-1")
    for _ in range(10):  # more than psycopg's threshold for preparing a repeated statement
        with reused_read_model(target, TABLE) as db:
            db.execute(f"SELECT * FROM {TABLE}").fetchall()
    with target.connect() as db:  # a newer release's migration, while this one serves
        db.execute(f"ALTER TABLE {TABLE} ADD COLUMN phase TEXT")

    with reused_read_model(target, TABLE) as db:
        rows = db.execute(f"SELECT * FROM {TABLE}").fetchall()

    assert rows == [("c-1", None)]


def test_what_a_reader_changes_in_its_session_never_reaches_the_next_reader(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    build(target, "own")
    other = f"{target.schema}_other"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
        admin.execute(sql.SQL("CREATE TABLE {}.{} (case_id TEXT)").format(
            sql.Identifier(other), sql.Identifier(TABLE)))
        admin.execute(sql.SQL("INSERT INTO {}.{} VALUES ('another scope')").format(
            sql.Identifier(other), sql.Identifier(TABLE)))
    try:
        with reused_read_model(target, TABLE) as db:  # a careless reader
            db.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(other)))
            db.execute("SET default_transaction_read_only = off")
            db.execute("CREATE TEMPORARY TABLE scratch (x int)")

        assert read(target)[0] == ["own"]  # its own schema, not the other
        with reused_read_model(target, TABLE) as db:
            assert db.execute("SELECT to_regclass('scratch')").fetchone() == (None,)
        with (
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
            reused_read_model(target, TABLE) as db,
        ):
            db.execute(f"INSERT INTO {TABLE} VALUES ('written')")
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))


def test_a_pooled_connection_gives_up_on_a_silent_server(
    target: PostgresReadModels,
) -> None:
    """A silent server (a failover, a partition) cannot be made here without a firewall:
    this holds the TCP settings that bound the wait, as libpq reports them in use."""
    build(target, "c-1")

    with reused_read_model(target, TABLE) as db:
        assert isinstance(db, psycopg.Connection)
        used = db.info.get_parameters()

    assert used["tcp_user_timeout"] == str(SILENT_SERVER_S * 1000)
    assert (used["keepalives"], used["keepalives_idle"], used["keepalives_count"]) == (
        "1", "10", "3")


def test_a_reader_waiting_while_the_pools_are_closed_reads_from_a_new_one(
    target: PostgresReadModels,
) -> None:
    build(target, "c-1")
    inside, release = threading.Barrier(POOL_SIZE + 1), threading.Event()
    waited: list[object] = []

    def holder() -> None:
        with reused_read_model(target, TABLE):
            inside.wait(DEADLINE_S)
            release.wait(DEADLINE_S)

    def waiting_reader() -> None:
        try:
            waited.append(read(target)[0])
        except BaseException as exc:  # handed to the test's thread
            waited.append(exc)

    holders = [threading.Thread(target=holder) for _ in range(POOL_SIZE)]
    for thread in holders:
        thread.start()
    inside.wait(DEADLINE_S)  # the pool is exhausted: the next reader waits
    reader = threading.Thread(target=waiting_reader)
    reader.start()
    close_read_connections()  # another context closes while it waits
    release.set()
    for thread in [*holders, reader]:
        thread.join(DEADLINE_S)

    assert waited == [["c-1"]]


def test_a_reader_queued_behind_a_lock_is_cancelled_after_the_read_timeout(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    """A reader waits for a lock (a migration's, a rebuild's swap) at most `read_timeout_s`:
    then the server cancels its statement, the reader gets the read model's error (the API
    a 503) and the pooled connection serves the next reader once the lock is gone. Without
    the timeout the reader waited as long as the lock was held, holding its connection."""
    build(target, "a")
    timed = dataclasses.replace(target, read_timeout_s=1)
    with psycopg.connect(postgres_server_url) as locker:  # a transaction: the lock is held
        locker.execute(sql.SQL("LOCK TABLE {}.{} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(target.schema), sql.Identifier(TABLE)))
        started = time.monotonic()
        with pytest.raises(ReadModelUnreadableError, match="statement timeout"):
            read(timed)
        assert 0.9 <= time.monotonic() - started < DEADLINE_S
    rows, _ = read(timed)
    assert rows == ["a"]


def test_the_metrics_read_of_a_locked_read_model_gives_up_after_the_read_timeout(
    postgres_server_url: str, target: PostgresReadModels
) -> None:
    """`/metrics` (and `status`) read each read model's offsets and progress on a connection
    of their own (`nervenbahn.progress`): timed like the pooled readers, so that a scrape
    behind a lock ends after `read_timeout_s` (the read model reported as not readable)
    instead of holding a server thread and a connection as long as the lock is held (found
    by an attack on the readers' timeout)."""
    projection = READ_MODELS["region"]()
    timed = dataclasses.replace(target, read_timeout_s=1)
    open_projection_store(projection, timed).close()
    container = SimpleNamespace(read_model=lambda name: timed)
    assert _read_model_state(container, projection)[0]  # type: ignore[arg-type]
    with psycopg.connect(postgres_server_url) as locker:  # a transaction: the locks held
        locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(target.schema, table) for table in (
                *projection.tables, "read_model_progress", "consumer_offsets"))))
        started = time.monotonic()
        built, *_ = _read_model_state(container, projection)  # type: ignore[arg-type]
        assert 0.9 <= time.monotonic() - started < DEADLINE_S
        assert not built
    assert _read_model_state(container, projection)[0]  # type: ignore[arg-type]
