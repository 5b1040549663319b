"""The access log in a SQLite file of its own: hash-chained, append-only, purged by retention.

Tables: `access_log` (the entries), `access_log_chain` (each entry's hash, written in the same
transaction as the entry: BEGIN IMMEDIATE, read the previous hash, insert both),
`access_log_anchor` (one row per purge: the last purged entry's position and hash) and
`access_log_purge_permit` (empty except inside a purge's own transaction) and
`access_log_identity` (one row: the log's random id, made when the log is created; signed
checkpoints name the log by it, so a checkpoint is compared only with the log it signed) and
`access_log_rechained` (one row per explicit chaining of entries that had no hash).

Triggers refuse UPDATE and DELETE of entries and hashes, and any change of an anchor; a
DELETE passes only for entries up to the position a permit row names, and the purge inserts
that row and removes it again in the same transaction. The triggers stop mistakes and casual
edits, not someone who can rewrite the file (a DROP TRIGGER is enough): what proves that
history was not altered is the chain, recomputed by `verify()`, and its heads in signed
checkpoints.

A file with entries that have no hash (written by a version before the chain, or with its
hashes removed) is refused on open (`UnchainedAccessLogError`): chaining them would make the
chain vouch for entries nobody verified. Only `SQLiteAccessLog(path, chain_existing=True)`
(the command `nervenbahn audit access-chain-existing --confirm`) chains them, in order from the
hash before them; it logs a warning and records the chaining in `access_log_rechained`, which
verification reports.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import structlog

from nervenbahn.audit.access_log import (
    ACCESS_LOG_CHAIN,
    AccessEntry,
    AccessLogVerification,
    ChainedAccessLog,
    LoggedAccess,
    Rechaining,
    RetentionAnchor,
    check_retention,
)
from nervenbahn.audit.errors import (
    AccessLogTamperedError,
    AccessLogUnavailableError,
    UnchainedAccessLogError,
)
from nervenbahn.audit.hashing import (
    MAX_BREAKS,
    ChainBreak,
    ChainHead,
    encode_fields,
    genesis,
    link,
    text_or_invalid,
    wrong_type,
    wrong_types,
)
from schemas.sql import Component, Migration, migrate_sqlite

__all__ = ["ACCESS_LOG", "SCHEMA_VERSION", "SQLiteAccessLog", "entry_record"]

log = structlog.get_logger("nervenbahn.access_log")

SCHEMA_VERSION = 1
"""`PRAGMA user_version` of a chained log (0: an unchained log of an earlier version)."""

_REFUSE = "BEGIN SELECT RAISE(ABORT, 'the access log is append-only: {what}'); END"
_PERMITTED = "NOT EXISTS (SELECT 1 FROM access_log_purge_permit WHERE OLD.id <= upto)"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS access_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, "
    "consumer TEXT NOT NULL, scope TEXT NOT NULL, case_id TEXT NOT NULL, "
    "person_id TEXT NOT NULL, fields TEXT NOT NULL, endpoint TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS access_log_by_person ON access_log (person_id, id)",
    "CREATE INDEX IF NOT EXISTS access_log_by_case ON access_log (case_id, id)",
    "CREATE TABLE IF NOT EXISTS access_log_chain (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS access_log_anchor (seq INTEGER PRIMARY KEY, "
    "position INTEGER NOT NULL, hash BLOB NOT NULL, purged_at TEXT NOT NULL, "
    "last_at TEXT NOT NULL, entries INTEGER NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS access_log_purge_permit (upto INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS access_log_identity (log_id TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS access_log_identity_fixed BEFORE UPDATE "
    "ON access_log_identity " + _REFUSE.format(what="its identity cannot be changed"),
    "CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log "
    + _REFUSE.format(what="entries cannot be changed"),
    "CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log "
    f"WHEN {_PERMITTED} "
    + _REFUSE.format(what="entries cannot be deleted"),
    "CREATE TRIGGER IF NOT EXISTS access_log_chain_no_update BEFORE UPDATE ON access_log_chain "
    + _REFUSE.format(what="hashes cannot be changed"),
    "CREATE TRIGGER IF NOT EXISTS access_log_chain_no_delete BEFORE DELETE ON access_log_chain "
    f"WHEN {_PERMITTED} " + _REFUSE.format(what="hashes cannot be deleted"),
    "CREATE TRIGGER IF NOT EXISTS access_log_anchor_no_update BEFORE UPDATE "
    "ON access_log_anchor " + _REFUSE.format(what="retention anchors cannot be changed"),
    "CREATE TRIGGER IF NOT EXISTS access_log_anchor_no_delete BEFORE DELETE "
    "ON access_log_anchor " + _REFUSE.format(what="retention anchors cannot be deleted"),
    "CREATE TABLE IF NOT EXISTS access_log_rechained (at TEXT NOT NULL, "
    "entries INTEGER NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS access_log_rechained_no_update BEFORE UPDATE "
    "ON access_log_rechained " + _REFUSE.format(what="re-chainings cannot be changed"),
    "CREATE TRIGGER IF NOT EXISTS access_log_rechained_no_delete BEFORE DELETE "
    "ON access_log_rechained " + _REFUSE.format(what="re-chainings cannot be deleted"),
)
ACCESS_LOG = Component(
    "access_log",
    [Migration(1, "the hash-chained, append-only access log", _SCHEMA, postgres=())],
    tables=["access_log"],
)
"""The access log's tables (SQLite only). Its `PRAGMA user_version` predates this record and
still marks a chained log (1) apart from an unchained one of an earlier release (0)."""
_COLUMNS = "id, at, consumer, scope, case_id, person_id, fields, endpoint"
_INSERT = (
    "INSERT INTO access_log (id, at, consumer, scope, case_id, person_id, fields, endpoint) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_GENESIS = genesis(ACCESS_LOG_CHAIN)
_ENTRY_COLUMNS = tuple(_COLUMNS.split(", ")[1:])


def entry_record(entry_id: int, row: Sequence[object]) -> bytes:
    """What an entry's hash covers: its id and every stored field, length-prefixed.

    `row` is (at, consumer, scope, case_id, person_id, fields JSON, endpoint) as stored; the
    fields are hashed one by one after their count, so the JSON spelling does not matter.
    """
    at, consumer, scope, case_id, person_id, fields, endpoint = (str(value) for value in row)
    names = json.loads(fields)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("fields is not a JSON list of field names")
    return encode_fields([entry_id, at, consumer, scope, case_id, person_id, len(names),
                          *names, endpoint])


@dataclass
class _Pending:
    """An entry waiting for the transaction that records it (`SQLiteAccessLog.append`)."""

    row: tuple[str, ...]
    done: bool = False
    entry_id: int | None = None
    error: BaseException | None = None


class SQLiteAccessLog(ChainedAccessLog):
    """A hash-chained, append-only access log in a SQLite file (WAL, synchronous FULL).

    Opening refuses a log with entries that have no hash (`UnchainedAccessLogError`) unless
    `chain_existing` is set: then they are chained, and `rechained` says what was done.
    """

    def __init__(self, path: Path, *, chain_existing: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._queued = threading.Lock()  # guards `_queue` (never held while writing)
        self._queue: list[_Pending] = []
        self.rechained: Rechaining | None = None
        with _translated(f"cannot open the access log {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = FULL")
                self._db.execute("PRAGMA secure_delete = ON")  # purged entries leave no bytes
                with self._transaction():
                    self._prepare(chain_existing)
                    self.log_id = self._identity()
            except BaseException:
                self._db.close()
                raise

    # --- the port -------------------------------------------------------------------------

    def append(self, entry: AccessEntry) -> int:
        """Record the entry durably (committed, synchronous FULL) before returning its id.

        Group commit: the entries of threads that append while another's transaction is
        being written and synced wait for it, then whichever of them takes the writer's turn
        next writes all waiting entries, chained in the order they came, in one transaction;
        each thread returns once the transaction holding its entry is committed, or raises if
        that transaction failed (then none of its entries is recorded). Under 16 API clients
        the detail requests had waited in line for one commit each (two thirds of their time,
        py-spy); a commit now serves every entry that queued up meanwhile."""
        row = (
            entry.at.astimezone(UTC).isoformat(),
            entry.consumer,
            entry.scope,
            entry.case_id,
            entry.person_id,
            json.dumps(list(entry.fields)),
            entry.endpoint,
        )
        # An entry that cannot be stored fails its own caller here, never a group it joined.
        if not all(isinstance(value, str) for value in row):
            raise TypeError("an access log entry's fields are text")
        entry_record(0, row)  # ValueError: field names that are not text
        pending = _Pending(row)
        with self._queued:
            self._queue.append(pending)
        with self._lock:
            if not pending.done:  # no other thread wrote it meanwhile: write what is queued
                with self._queued:
                    batch, self._queue = self._queue, []
                try:
                    self._append_all(batch)
                finally:  # interrupted before every entry was settled: those were not told
                    for unsettled in batch:
                        if not unsettled.done:
                            unsettled.error = AccessLogUnavailableError(
                                "the transaction writing the entry was interrupted")
                            unsettled.done = True
        if pending.error is not None:  # each waiting thread raises an error of its own
            failed = pending.error
            if isinstance(failed, AccessLogUnavailableError):
                raise AccessLogUnavailableError(str(failed)) from failed.__cause__ or failed
            raise AccessLogUnavailableError(
                f"cannot append to the access log: {failed}") from failed
        if pending.entry_id is None:
            raise AccessLogUnavailableError("the access log entry was not recorded")
        return pending.entry_id

    def _append_all(self, batch: list[_Pending]) -> None:
        """Write the queued entries in one transaction; settle each with its id or the error."""
        try:
            with _translated("cannot append to the access log"), self._transaction():
                previous = _head(self._db, _anchor(self._db))
                position, last = previous.position, previous.hash
                for pending in batch:
                    position += 1
                    self._db.execute(_INSERT, (position, *pending.row))
                    last = link(last, entry_record(position, pending.row))
                    self._db.execute(
                        "INSERT INTO access_log_chain (id, hash) VALUES (?, ?)", (position, last)
                    )
        except BaseException as exc:
            for pending in batch:
                pending.error, pending.done = exc, True
            if not isinstance(exc, Exception):
                raise
            return
        for offset, pending in enumerate(batch, start=previous.position + 1):
            pending.entry_id, pending.done = offset, True

    def select(
        self,
        *,
        person_id: str | None = None,
        case_id: str | None = None,
        gt: int = 0,
        limit: int = 100,
    ) -> list[LoggedAccess]:
        query = f"SELECT {_COLUMNS} FROM access_log WHERE id > ?"  # noqa: S608
        params: list[object] = [gt]
        for column, value in (("person_id", person_id), ("case_id", case_id)):
            if value is not None:
                query += f" AND {column} = ?"  # names are ours, values are bound
                params.append(value)
        query += " ORDER BY id LIMIT ?"
        with self._lock, _translated("cannot read the access log"):
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [_logged(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def head(self) -> ChainHead:
        with self._lock, _translated("cannot read the access log"):
            return _head(self._db, _anchor(self._db))

    def anchor(self) -> RetentionAnchor | None:
        with self._lock, _translated("cannot read the access log"):
            return _anchor(self._db)

    def anchors(self) -> list[RetentionAnchor]:
        with self._lock, _translated("cannot read the access log"):
            return _anchors(self._db)

    def verify(self, expected: Sequence[ChainHead] = ()) -> AccessLogVerification:
        """(See the port.) On a read-only connection of its own, in one snapshot: appends
        go on while a long log is verified."""
        with self._lock, _translated("cannot read the access log"):
            self._db.execute("SELECT 1")  # refuses a closed log
        with _translated("cannot verify the access log"), closing(sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10
        )) as db:
            # Text that is not UTF-8 must be reported, not fail the read (any bytes can be written).
            db.text_factory = text_or_invalid
            db.execute("BEGIN")
            anchors, unreadable = _readable_anchors(db)
            latest = anchors[-1] if anchors else None
            walk = _Walk.start(latest, expected)
            for row in db.execute(_ALL_POSITIONS + " ORDER BY u.id"):
                walk.step(row)
            try:
                head = _head(db, latest)
            except TypeError:  # the last stored hash has the wrong type: a break above
                head = ChainHead(walk.position, walk.previous)
            rechained, damaged = _rechainings(db)
            db.execute("COMMIT")
        result = walk.result(head)
        breaks = (*unreadable, *damaged, *result.all_breaks)[:MAX_BREAKS]
        return replace(result, log_id=self.log_id, anchors=tuple(anchors), rechained=rechained,
                       breaks=breaks, first_break=breaks[0] if breaks else None)

    def purge(
        self, *, now: datetime, retention_days: int, reason: str | None = None
    ) -> RetentionAnchor | None:
        check_retention(retention_days)
        if now.tzinfo is None:
            raise ValueError("purge: now must carry a time zone")
        cutoff = now - timedelta(days=retention_days)
        why = reason or f"retention: recorded more than {retention_days} days before {now:%F}"
        with self._lock, _translated("cannot purge the access log"), self._transaction():
            upto, last_at = self._purgeable(cutoff)
            if upto is None or last_at is None:
                return None
            anchor = _anchor(self._db)
            verified = self._verified_prefix(anchor, upto)
            purged = RetentionAnchor(
                position=upto, hash=verified, purged_at=now.astimezone(UTC), last_at=last_at,
                entries=upto - (anchor.position if anchor else 0), reason=why,
            )
            purged = replace(purged, seq=self._remove(purged))
        log.info("access log purged", path=str(self.path), entries=purged.entries,
                 anchor=upto, reason=why)
        return purged

    # --- inside a transaction -------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error): one writer at a time, also
        across processes, so that reading the previous hash and appending are one step."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # Also when the COMMIT itself failed (disk full, I/O): left open, the transaction
            # would keep the write lock and refuse every later append on this connection.
            if self._db.in_transaction:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _prepare(self, chain_existing: bool) -> None:
        """Create or migrate the schema; refuse an unchained log (an earlier version's, or one
        whose hashes were removed) unless `chain_existing`, which chains its entries."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer nervenbahn (schema {version}, this one knows "
                f"{SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            unchained = self._unchained()
            if unchained and not chain_existing:
                raise UnchainedAccessLogError(str(self.path), unchained)
            # an unchained log's delete trigger knew no purge
            self._db.execute("DROP TRIGGER IF EXISTS access_log_no_delete")
        migrate_sqlite(self._db, ACCESS_LOG)
        if chain_existing:
            self.rechained = self._chain_unchained()
        if version < SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if self._db.execute("SELECT 1 FROM access_log_purge_permit").fetchone():
            log.warning("access log: a purge permit was left in the file; removed",
                        path=str(self.path))
            self._db.execute("DELETE FROM access_log_purge_permit")

    def _identity(self) -> str:
        """The log's id (made now for a log that has none: a new one, or an older file); one
        stored with the wrong type is named as such (it then matches no checkpoint)."""
        row = self._db.execute("SELECT typeof(log_id), CAST(log_id AS BLOB) FROM "
                               "access_log_identity LIMIT 1").fetchone()
        if row is not None:
            kind, raw = row
            text = text_or_invalid(raw) if kind == "text" else None
            if isinstance(text, str):
                return text
            shown = "TEXT that is not valid UTF-8" if kind == "text" else kind.upper()
            return f"(unreadable: access_log_identity.log_id is {shown}, expected TEXT)"
        log_id = uuid.uuid4().hex
        self._db.execute("INSERT INTO access_log_identity (log_id) VALUES (?)", (log_id,))
        return log_id

    def _unchained(self) -> int:
        """How many entries have no hash (every entry if the file has no chain table)."""
        tables = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "access_log" not in tables:
            return 0
        if "access_log_chain" not in tables:
            return int(self._db.execute("SELECT count(*) FROM access_log").fetchone()[0])
        return int(self._db.execute(
            "SELECT count(*) FROM access_log AS e LEFT JOIN access_log_chain AS c "
            "ON c.id = e.id WHERE c.id IS NULL").fetchone()[0])

    def _chain_unchained(self) -> Rechaining | None:
        """Hash every entry after the retention anchor that has none, in id order, each from
        the hash before it (stored, or just computed); recorded and logged; None if every
        entry has its hash."""
        anchor = _anchor(self._db)
        previous = anchor.hash if anchor else _GENESIS
        chained: list[int] = []
        for entry_id, _, *row, stored in self._db.execute(
            _ALL_POSITIONS + " WHERE u.id > ? ORDER BY u.id",
            (anchor.position if anchor else 0,),
        ).fetchall():
            if isinstance(stored, bytes):
                previous = stored
                continue
            previous = link(previous, entry_record(int(entry_id), row))
            self._db.execute("INSERT INTO access_log_chain (id, hash) VALUES (?, ?)",
                             (entry_id, previous))
            chained.append(int(entry_id))
        if not chained:
            return None
        done = Rechaining(datetime.now(UTC), len(chained), chained[0], chained[-1])
        self._db.execute("INSERT INTO access_log_rechained (at, entries, first_id, last_id) "
                         "VALUES (?, ?, ?, ?)",
                         (done.at.isoformat(), done.entries, done.first, done.last))
        log.warning("access log: entries without a hash chained explicitly",
                    path=str(self.path), entries=done.entries, first=done.first,
                    last=done.last)
        return done

    def _purgeable(self, cutoff: datetime) -> tuple[int | None, datetime | None]:
        """The last id (and its time) of the longest run of oldest entries recorded before
        `cutoff`: the chain is only ever cut at its start."""
        upto: int | None = None
        last_at: datetime | None = None
        for entry_id, at in self._db.execute("SELECT id, at FROM access_log ORDER BY id"):
            recorded = datetime.fromisoformat(at)
            if recorded >= cutoff:
                break
            upto, last_at = int(entry_id), recorded
        return upto, last_at

    def _verified_prefix(self, anchor: RetentionAnchor | None, upto: int) -> bytes:
        """The recomputed hash at `upto`, if the chain is intact up to there; else refuse."""
        walk = _Walk.start(anchor, ())
        for row in self._db.execute(_ALL_POSITIONS + " WHERE u.id <= ? ORDER BY u.id", (upto,)):
            walk.step(row)
        if walk.first_break is not None or walk.position != upto:
            problem = walk.first_break or ChainBreak(walk.position + 1, "entry is missing")
            raise AccessLogTamperedError(
                f"cannot purge the access log: the chain is broken at {problem.position} "
                f"({problem.reason}); nothing was removed — verify the log and keep it as "
                "evidence"
            )
        return walk.previous

    def _remove(self, anchor: RetentionAnchor) -> int:
        """Delete entries and hashes up to the anchor, record the anchor (its `seq` is
        returned); the permit exists only within this transaction."""
        self._db.execute("INSERT INTO access_log_purge_permit (upto) VALUES (?)",
                         (anchor.position,))
        self._db.execute("DELETE FROM access_log WHERE id <= ?", (anchor.position,))
        self._db.execute("DELETE FROM access_log_chain WHERE id <= ?", (anchor.position,))
        seq = self._db.execute(
            "INSERT INTO access_log_anchor (position, hash, purged_at, last_at, entries, "
            "reason) VALUES (?, ?, ?, ?, ?, ?)",
            (anchor.position, anchor.hash, anchor.purged_at.isoformat(),
             anchor.last_at.isoformat(), anchor.entries, anchor.reason),
        ).lastrowid
        self._db.execute("DELETE FROM access_log_purge_permit")
        assert seq is not None
        return seq


_ALL_POSITIONS = (
    "SELECT u.id, e.id IS NOT NULL, e.at, e.consumer, e.scope, e.case_id, e.person_id, "
    "e.fields, e.endpoint, c.hash FROM (SELECT id FROM access_log UNION "
    "SELECT id FROM access_log_chain) AS u LEFT JOIN access_log AS e ON e.id = u.id "
    "LEFT JOIN access_log_chain AS c ON c.id = u.id"
)
"""Every position that has an entry or a hash (or both); callers add the order."""


@dataclass
class _Walk:
    """Recomputing the chain position by position, from the anchor (or genesis)."""

    position: int
    previous: bytes
    expected: dict[int, list[bytes]]
    anchor: RetentionAnchor | None
    before_anchor: tuple[ChainHead, ...]
    records: int = 0
    first_break: ChainBreak | None = None
    checked: int = 0
    confirmed: ChainHead | None = None
    breaks: list[ChainBreak] = field(default_factory=list)

    @classmethod
    def start(cls, anchor: RetentionAnchor | None, heads: Sequence[ChainHead]) -> _Walk:
        start = anchor.head if anchor else ChainHead(0, _GENESIS)
        expected: dict[int, list[bytes]] = {}
        for head in heads:
            if head.position >= start.position:
                expected.setdefault(head.position, []).append(head.hash)
        walk = cls(start.position, start.hash, expected, anchor,
                   tuple(h for h in heads if h.position < start.position))
        walk._compare()  # a head at the anchor itself
        return walk

    def step(self, row: Sequence[object]) -> None:
        """Check the next stored position; after a break, go on from its stored hash."""
        entry_id, has_entry, *fields, stored = row
        position = int(str(entry_id))
        reason = self._problem(position, bool(has_entry), fields, stored)
        if reason is not None:
            self._break(min(position, self.position + 1), reason)
            if position <= self.position:
                return
            self.position = position
            if isinstance(stored, bytes):
                self.previous = stored
        else:
            self.records += 1
        self._compare()

    def result(self, head: ChainHead) -> AccessLogVerification:
        """The verification, with a truncation break for heads beyond the log's end."""
        beyond = [p for p in self.expected if p > self.position]
        if beyond:
            self._break(self.position + 1, f"entry {self.position + 1} is missing: a signed "
                        f"checkpoint has the log reach {max(beyond)}, the log ends at "
                        f"{self.position} (truncated)")
            self.checked += len(beyond)
        return AccessLogVerification(
            chain=ACCESS_LOG_CHAIN, records=self.records, head=head,
            first_break=self.first_break, checkpoints_checked=self.checked,
            checkpoint=self.confirmed.to_json() if self.confirmed else None,
            anchor=self.anchor, before_anchor=self.before_anchor, breaks=tuple(self.breaks),
        )

    def _problem(
        self, position: int, has_entry: bool, fields: Sequence[object], stored: object
    ) -> str | None:
        """Why this position does not continue the chain (None if it does); advances."""
        if position <= self.position:
            return f"entry {position} is at or before the retention anchor {self.position}"
        if position > self.position + 1:
            gone = self.position + 1
            if position == gone + 1:
                return f"entry {gone} is missing (deleted)"
            return f"entries {gone}-{position - 1} are missing (deleted)"
        if not has_entry:
            return f"entry {position} was deleted: its hash is still stored"
        if stored is None:
            return f"entry {position} has no stored hash (added outside the log)"
        wrong = [wrong_type(name, value, "TEXT") for name, value
                 in zip(_ENTRY_COLUMNS, fields, strict=True) if not isinstance(value, str)]
        if not isinstance(stored, bytes):
            wrong.append(wrong_type("hash", stored, "BLOB"))
        if wrong:
            return f"entry {position} cannot be read: {'; '.join(wrong)}"
        try:
            computed = link(self.previous, entry_record(position, fields))
        except (ValueError, TypeError) as exc:
            return f"entry {position} cannot be read: {exc}"
        if computed != stored:
            return f"entry {position} does not match its stored hash (altered)"
        self.position, self.previous = position, computed
        return None

    def _compare(self) -> None:
        """Compare the recomputed hash with the expected heads at the current position."""
        hashes = self.expected.pop(self.position, [])
        self.checked += len(hashes)
        if any(h != self.previous for h in hashes):
            since = self.confirmed.position if self.confirmed else (
                self.anchor.position if self.anchor else 0)
            self._break(self.position, f"the chain at {self.position} differs from a signed "
                        f"checkpoint: an entry after {since} was altered and its hashes "
                        "rewritten")
        elif hashes:
            self.confirmed = ChainHead(self.position, self.previous)

    def _break(self, position: int, reason: str) -> None:
        if self.first_break is None:
            self.first_break = ChainBreak(position, reason)
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(ChainBreak(position, reason))


def _head(db: sqlite3.Connection, anchor: RetentionAnchor | None) -> ChainHead:
    """The last stored hash, else the retention anchor (the latest), else genesis."""
    last = db.execute("SELECT id, hash FROM access_log_chain ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None and (anchor is None or last[0] > anchor.position):
        if not isinstance(last[1], bytes):
            raise TypeError(f"access_log_chain {last[0]}: {wrong_type('hash', last[1], 'BLOB')}")
        return ChainHead(int(last[0]), last[1])
    return anchor.head if anchor is not None else ChainHead(0, _GENESIS)


_ANCHOR_COLUMNS = (
    "SELECT position, hash, purged_at, last_at, entries, reason, seq FROM access_log_anchor "
)


def _anchor(db: sqlite3.Connection) -> RetentionAnchor | None:
    """The latest retention anchor, if any."""
    row = db.execute(_ANCHOR_COLUMNS + "ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else _anchor_of(row)


def _anchors(db: sqlite3.Connection) -> list[RetentionAnchor]:
    """Every retention anchor, oldest first."""
    return [_anchor_of(row) for row in db.execute(_ANCHOR_COLUMNS + "ORDER BY seq")]


_ANCHOR_TYPES = (("position", int, "INTEGER"), ("hash", bytes, "BLOB"),
                 ("purged_at", str, "TEXT"), ("last_at", str, "TEXT"),
                 ("entries", int, "INTEGER"), ("reason", str, "TEXT"), ("seq", int, "INTEGER"))


def _anchor_of(row: Sequence[object]) -> RetentionAnchor:
    """A stored retention anchor; sqlite3.DatabaseError naming each column of the wrong type
    (or a time that is not ISO 8601 with a zone: the stored text is not repeated)."""
    seq = row[6]
    name = f"retention anchor {seq}" if type(seq) is int else "a retention anchor"
    wrong = wrong_types(_ANCHOR_TYPES, row)
    if not wrong:
        position, hashed, purged_at, last_at, entries, reason, seq = cast(
            tuple[int, bytes, str, str, int, str, int], tuple(row))
        purged, last = _zoned(purged_at), _zoned(last_at)
        if purged is not None and last is not None:
            return RetentionAnchor(position, hashed, purged, last, entries, reason, seq)
        wrong = ["purged_at or last_at is not an ISO date and time with a time zone"]
    raise sqlite3.DatabaseError(f"{name} (access_log_anchor) cannot be read: {'; '.join(wrong)}")


def _zoned(text: str) -> datetime | None:
    """A stored ISO 8601 time with its zone; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _readable_anchors(
    db: sqlite3.Connection,
) -> tuple[list[RetentionAnchor], list[ChainBreak]]:
    """Every retention anchor that can be read, oldest first, and a break for each that
    cannot (verification goes on from the latest readable one, else from the log's start)."""
    anchors, unreadable = [], []
    for row in db.execute(_ANCHOR_COLUMNS + "ORDER BY seq"):
        try:
            anchors.append(_anchor_of(row))
        except sqlite3.DatabaseError as exc:
            position = row[0] if type(row[0]) is int else 0
            unreadable.append(ChainBreak(position, f"{exc}; not relied on: verified from the "
                                         "anchor before it, or from the start of the log"))
    return anchors, unreadable


_RECHAINED_TYPES = (("at", str, "TEXT"), ("entries", int, "INTEGER"),
                    ("first_id", int, "INTEGER"), ("last_id", int, "INTEGER"))


def _rechainings(db: sqlite3.Connection) -> tuple[tuple[Rechaining, ...], list[ChainBreak]]:
    """Every explicit chaining of entries that had no hash, oldest first, and a break for each
    row of `access_log_rechained` that cannot be read (naming its row and columns)."""
    done, unreadable = [], []
    for rowid, *row in db.execute("SELECT rowid, at, entries, first_id, last_id FROM "
                                  "access_log_rechained ORDER BY rowid"):
        wrong = wrong_types(_RECHAINED_TYPES, row)
        at = None if wrong else _zoned(row[0])
        if at is not None:
            done.append(Rechaining(at, *cast(tuple[int, int, int], tuple(row[1:]))))
            continue
        position = row[2] if type(row[2]) is int else 0
        why = "; ".join(wrong) or "at is not an ISO date and time with a time zone"
        unreadable.append(ChainBreak(position, f"access_log_rechained row {rowid} cannot be "
                                     f"read: {why}"))
    return tuple(done), unreadable


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """sqlite3 and OS errors become AccessLogUnavailableError, naming what failed."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise AccessLogUnavailableError(f"{what}: {exc}") from exc


def _logged(row: tuple[object, ...]) -> LoggedAccess:
    entry_id, at, consumer, scope, case_id, person_id, fields, endpoint = row
    return LoggedAccess(
        id=int(str(entry_id)),
        entry=AccessEntry(
            at=datetime.fromisoformat(str(at)),
            consumer=str(consumer),
            scope=str(scope),
            case_id=str(case_id),
            person_id=str(person_id),
            fields=tuple(json.loads(str(fields))),
            endpoint=str(endpoint),
        ),
    )
