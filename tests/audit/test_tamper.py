"""1,000 seeded random tamper trials directly on a store's SQLite file, a smaller set on
PostgreSQL: every one is detected and the first bad position is the one tampered with.

The expected position is computed here from what each trial did; the rewritten chain is
recomputed with `hashing.encode_fields` + `hashing.link` (the reference definition), not with
the verifier's own fast path.
"""

from __future__ import annotations

import base64
import random
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from nervenbahn.audit import verify_ranges
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.hashing import encode_fields, genesis, link
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN, verify_store
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import open_supported_case

TRIALS = 1000
CHUNKS = 20
SEED = 20260505
KINDS = (
    "flip_state_byte", "delete_event", "swap_states", "insert_event", "insert_event_and_link",
    "truncate_tail", "alter_link", "delete_link", "delete_event_and_link", "rewrite_chain",
)


@dataclass(frozen=True)
class Prepared:
    """A store file with events in three batches and a checkpoint after each batch."""

    data: bytes
    key: SigningKey
    head: int
    checkpoints: tuple[int, ...]


def build_store(settings: Settings, cases_per_batch: int, batches: int = 3) -> tuple[
        SigningKey, tuple[int, ...]]:
    """Record supported cases (3 events each, personal data sealed) and a checkpoint after each
    batch; the signing key and the checkpoint positions."""
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    service = build_service(settings)
    db = open_audit_database(settings.store)
    positions = []
    try:
        for batch in range(batches):
            for n in range(cases_per_batch):
                open_supported_case(service, batch * 1000 + n)
            checkpoint = write_checkpoint(db, key)
            assert checkpoint is not None
            positions.append(next(iter(checkpoint.chains.values())).position)
    finally:
        db.close()
        close_service(service)
    return key, tuple(positions)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    folder = tmp_path_factory.mktemp("tamper")
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{folder / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    key, checkpoints = build_store(settings, cases_per_batch=34)
    with sqlite3.connect(folder / "store.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    return Prepared((folder / "store.db").read_bytes(), key, checkpoints[-1], checkpoints)


# --- tampering, on any DB-API connection ------------------------------------------------------


@dataclass
class Tables:
    """Where to tamper: the events table, its position column, the chain table, `?` or `%s`."""

    events: str
    position: str
    chain: str
    mark: str
    chain_name: str

    def q(self, statement: str) -> str:
        return statement.format(e=self.events, p=self.position, c=self.chain).replace(
            "?", self.mark)


def tamper(kind: str, rng: random.Random, db: Any, t: Tables, head: int,
           checkpoints: tuple[int, ...], dense: bool) -> int:
    """Tamper with the store as `kind` says; the first position verification must name."""
    positions = [row[0] for row in db.execute(t.q("SELECT {p} FROM {e} ORDER BY {p}")).fetchall()]
    p = rng.choice(positions)
    if kind == "flip_state_byte":
        (state,) = db.execute(t.q("SELECT state FROM {e} WHERE {p} = ?"), (p,)).fetchone()
        state = bytearray(state)
        state[rng.randrange(len(state))] ^= 1 << rng.randrange(8)
        db.execute(t.q("UPDATE {e} SET state = ? WHERE {p} = ?"), (bytes(state), p))
        return p
    if kind == "delete_event":
        db.execute(t.q("DELETE FROM {e} WHERE {p} = ?"), (p,))
        return p
    if kind == "swap_states":
        p, q = sorted(rng.sample(positions, 2))
        a = db.execute(t.q("SELECT state FROM {e} WHERE {p} = ?"), (p,)).fetchone()[0]
        b = db.execute(t.q("SELECT state FROM {e} WHERE {p} = ?"), (q,)).fetchone()[0]
        assert bytes(a) != bytes(b)
        db.execute(t.q("UPDATE {e} SET state = ? WHERE {p} = ?"), (b, p))
        db.execute(t.q("UPDATE {e} SET state = ? WHERE {p} = ?"), (a, q))
        return p
    if kind in ("insert_event", "insert_event_and_link"):
        forged = head + 1
        topic = db.execute(t.q("SELECT topic FROM {e} WHERE {p} = ?"), (p,)).fetchone()[0]
        originator: Any = UUID(int=rng.getrandbits(128))
        db.execute(
            t.q("INSERT INTO {e} ({p}, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, 1, ?, ?)"),
            (forged, originator.hex if dense else originator, topic, rng.randbytes(200)),
        )
        if kind == "insert_event_and_link":
            db.execute(t.q("INSERT INTO {c} (position, hash) VALUES (?, ?)"),
                       (forged, rng.randbytes(32)))
        return forged
    if kind == "truncate_tail":
        cut = rng.randint(2, head)  # the last checkpoint names the head
        db.execute(t.q("DELETE FROM {e} WHERE {p} >= ?"), (cut,))
        db.execute(t.q("DELETE FROM {c} WHERE position >= ?"), (cut,))
        return cut
    if kind == "alter_link":
        (digest,) = db.execute(t.q("SELECT hash FROM {c} WHERE position = ?"), (p,)).fetchone()
        digest = bytearray(digest)
        digest[rng.randrange(32)] ^= 1 << rng.randrange(8)
        db.execute(t.q("UPDATE {c} SET hash = ? WHERE position = ?"), (bytes(digest), p))
        return p
    if kind == "delete_link":
        db.execute(t.q("DELETE FROM {c} WHERE position = ?"), (p,))
        return p
    if kind == "delete_event_and_link":
        db.execute(t.q("DELETE FROM {e} WHERE {p} = ?"), (p,))
        db.execute(t.q("DELETE FROM {c} WHERE position = ?"), (p,))
        if dense or p == head:
            return p
        return min(x for x in positions if x > p)  # gaps are legal: the next link breaks
    if kind == "rewrite_chain":
        rewrite_from(db, t, p, rng)
        return max((c for c in checkpoints if c < p), default=0) + 1
    raise AssertionError(kind)


def rewrite_from(db: Any, t: Tables, start: int, rng: random.Random) -> None:
    """Alter the event at `start` and recompute every link from there, consistently."""
    (state,) = db.execute(t.q("SELECT state FROM {e} WHERE {p} = ?"), (start,)).fetchone()
    db.execute(t.q("UPDATE {e} SET state = ? WHERE {p} = ?"),
               (bytes(state) + rng.randbytes(1), start))
    previous = genesis(t.chain_name)
    rows = db.execute(t.q("SELECT {p}, originator_id, originator_version, topic, state FROM {e} "
                          "ORDER BY {p}")).fetchall()
    for position, originator, version, topic, state in rows:
        text = originator.hex if isinstance(originator, UUID) else originator
        previous = link(previous, encode_fields([position, text, version, topic, bytes(state)]))
        if position >= start:
            db.execute(t.q("UPDATE {c} SET hash = ? WHERE position = ?"), (previous, position))


# --- SQLite: 1,000 trials ------------------------------------------------------------------


def trials(chunk: int) -> Iterator[tuple[int, str]]:
    per_chunk = TRIALS // CHUNKS
    for n in range(chunk * per_chunk, (chunk + 1) * per_chunk):
        yield n, KINDS[n % len(KINDS)]


@pytest.fixture
def in_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification's quick path cuts even these short chains into three ranges of whole
    4-event Merkle blocks, two of them checked in other processes (as a long chain is on
    every core): the signed trees end inside blocks, and every range boundary is crossed."""
    monkeypatch.setattr(verify_ranges, "BLOCK", 4)
    monkeypatch.setattr(verify_ranges, "PARALLEL_FROM", 0)
    monkeypatch.setattr(verify_ranges, "PROCESSES", 3)


@pytest.mark.parametrize("chunk", range(CHUNKS), ids=lambda c: f"chunk-{c:02d}")
def test_every_tampering_is_detected_at_the_position_tampered_with(
    chunk: int, prepared: Prepared, tmp_path: Path
) -> None:
    detect_every_tampering(trials(chunk), prepared, tmp_path)


@pytest.mark.usefixtures("in_ranges")
@pytest.mark.parametrize("chunk", range(0, CHUNKS, 5), ids=lambda c: f"chunk-{c:02d}")
def test_every_tampering_is_detected_when_the_chain_is_verified_in_ranges(
    chunk: int, prepared: Prepared, tmp_path: Path
) -> None:
    """The quick path never vouches for a tampered chain however it is cut (then the careful
    walk names the position): 200 of the trials, each kind 20 times."""
    detect_every_tampering(trials(chunk), prepared, tmp_path)


def detect_every_tampering(cases: Iterator[tuple[int, str]], prepared: Prepared,
                           tmp_path: Path) -> None:
    """Each trial on a fresh copy of the store: verification fails (exit 4) and names the
    position tampered with first."""
    sqlite_tables = Tables("stored_events", "rowid", "stored_events_chain", "?",
                           "events:stored_events")
    path = tmp_path / "store.db"
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{path}",
                              "NERVENBAHN_MASTER_KEY": base64.b64encode(bytes(32)).decode()})
    for n, kind in cases:
        path.write_bytes(prepared.data)
        rng = random.Random(SEED + n)
        with sqlite3.connect(path) as db:
            expected = tamper(kind, rng, db, sqlite_tables, prepared.head, prepared.checkpoints,
                              dense=True)
        audit = open_audit_database(settings.store)
        try:
            report = verify_store(audit, prepared.key.public)
        finally:
            audit.close()
        found = report.chains[0].first_break
        assert report.exit_code == EXIT_CHAIN_BROKEN, (n, kind)
        assert found is not None and found.position == expected, (n, kind, found, expected)


@pytest.mark.parametrize("cut", [False, True], ids=["one-range", "in-ranges"])
def test_the_untouched_store_verifies(
    cut: bool, prepared: Prepared, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if cut:
        request.getfixturevalue("in_ranges")
    path = tmp_path / "store.db"
    path.write_bytes(prepared.data)
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{path}",
                              "NERVENBAHN_MASTER_KEY": base64.b64encode(bytes(32)).decode()})
    audit = open_audit_database(settings.store)
    report = verify_store(audit, prepared.key.public)
    audit.close()
    assert report.ok, report.to_json()
    assert report.chains[0].records == prepared.head == 3 * 34 * 3
    assert report.chains[0].checkpoints_checked == 3


# --- PostgreSQL: a smaller set ------------------------------------------------------------


PG_TRIALS = 40


@pytest.fixture
def pg_store(postgres_dsn: str) -> tuple[Settings, SigningKey, tuple[int, ...]]:
    settings = load_settings({
        "NERVENBAHN_STORE": postgres_dsn,
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    key, checkpoints = build_store(settings, cases_per_batch=5)
    return settings, key, checkpoints


@pytest.mark.parametrize("cut", [False, True], ids=["one-range", "in-ranges"])
def test_tampering_on_postgres_is_detected_at_the_position_tampered_with(
    cut: bool, pg_store: tuple[Settings, SigningKey, tuple[int, ...]],
    request: pytest.FixtureRequest,
) -> None:
    if cut:
        request.getfixturevalue("in_ranges")
    settings, key, checkpoints = pg_store
    base = settings.store.schema_name
    tables = ["nervenbahn_events", "nervenbahn_events_chain", "audit_chains", "audit_checkpoints"]
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        for n in range(PG_TRIALS):
            kind = KINDS[n % len(KINDS)]
            trial = f"{base}_t{n}"
            copy_schema(conn, base, trial, tables)
            t = Tables(f"{trial}.nervenbahn_events", "notification_id",
                       f"{trial}.nervenbahn_events_chain", "%s", "events:nervenbahn_events")
            with conn.transaction():
                expected = tamper(kind, random.Random(SEED + n), conn, t, checkpoints[-1],
                                  checkpoints, dense=False)
            audit = open_audit_database(settings.store.model_copy(update={"schema_name": trial}))
            try:
                report = verify_store(audit, key.public)
            finally:
                audit.close()
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(trial)))
            found = report.chains[0].first_break
            assert report.exit_code == EXIT_CHAIN_BROKEN, (n, kind)
            assert found is not None and found.position == expected, (n, kind, found, expected)


def copy_schema(conn: psycopg.Connection[Any], source: str, target: str,
                tables: list[str]) -> None:
    """The tables an auditor reads, copied into a schema of the trial's own."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target)))
    for table in tables:
        conn.execute(sql.SQL("CREATE TABLE {}.{} AS TABLE {}.{}").format(
            sql.Identifier(target), sql.Identifier(table),
            sql.Identifier(source), sql.Identifier(table)))


