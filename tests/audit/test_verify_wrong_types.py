"""`audit verify` never crashes on what an attacker can write into the store.

In SQLite any column can hold any type. On a real SQLite store with case events, a case
snapshot, the payments service's events and snapshot, signed checkpoints, a recorded
`audit chain-existing` and an access log with a retention anchor, each test writes one value
of a wrong type (TEXT, TEXT that is not UTF-8, INTEGER, REAL, BLOB, NULL where the column
allows it) into one column of one row, alters a case event elsewhere as well, and runs
`audit verify --json` through the CLI: it exits 4 (never 70), names the damaged table and
row, and still reports the other alteration.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.application.payments import PaymentService
from domain.commands import Actor, swiss_today
from domain.payments import RUN_BOOK_ID, RecordPayoutAccount, RunPayments
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.audit.cli import cli_for
from tests.domain.test_bitemporal_snapshots import long_history

SYSTEM = Actor("test", "system", "so-canton")
DAMAGED = 10
"""The position (event, chain link, access-log entry) whose column gets a wrong type."""
WRONG = {
    "TEXT": "'abc'",
    "TEXT not UTF-8": "CAST(x'ff80' AS TEXT)",
    "INTEGER": "7777777",
    "REAL": "1.5",
    "BLOB": "x'00'",
    "NULL": "NULL",
}


@dataclass(frozen=True)
class Golden:
    """The untouched store to copy for each test."""

    directory: Path
    settings: Settings
    case_id: UUID
    snapshots: tuple[str, str]  # the case service's and the payments service's tables


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    directory = tmp_path_factory.mktemp("golden")
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{directory / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    case_id = uuid4()
    service = build_service(settings)
    try:
        end = datetime.now(UTC) - timedelta(hours=1)
        service.import_records(json.dumps(r) for r in long_history(case_id, 120, end))
        payments = PaymentService({**settings.store.eventsourcing_env(),
                                   "IS_SNAPSHOTTING_ENABLED": "y"}, cases=service)
        payments.record_account(RecordPayoutAccount(
            case_id=case_id, iban="CH9300762011623852957", holder="Anna Muster", actor=SYSTEM,
            correlation_id=uuid4()))
        payments.run(RunPayments(month=swiss_today().replace(day=1), actor=SYSTEM,
                                 correlation_id=uuid4()))
        payments.take_snapshot(RUN_BOOK_ID)
        snapshots = (str(service.snapshots.recorder.events_table_name),  # type: ignore[union-attr]
                     str(payments.snapshots.recorder.events_table_name))  # type: ignore[union-attr]
        payments.close()
    finally:
        close_service(service)
    _access_log(directory / "access-log.db")
    # as `audit chain-existing` records it
    with closing(sqlite3.connect(directory / "store.db")) as db, db:
        db.execute("CREATE TABLE audit_chain_rewrites (at TEXT NOT NULL, events_table TEXT NOT "
                   "NULL, events BIGINT NOT NULL, unchained BIGINT NOT NULL, registered "
                   "INTEGER NOT NULL)")
        db.execute("INSERT INTO audit_chain_rewrites VALUES (?, 'payments_events', 0, 0, 1)",
                   (datetime.now(UTC).isoformat(),))
    return Golden(directory, settings, case_id, snapshots)


def _access_log(path: Path) -> None:
    """Twenty entries, the first five purged (a retention anchor)."""
    log = SQLiteAccessLog(path)
    now = datetime.now(UTC)
    for n in range(20):
        log.append(AccessEntry(at=now - timedelta(days=500 - n if n < 5 else 1), consumer="c",
                               scope="so-olten", case_id=str(uuid4()), person_id=str(uuid4()),
                               fields=("name", "ahvn13"), endpoint="/cases"))
    assert log.purge(now=now, retention_days=400) is not None
    log.close()


@pytest.fixture
def store(golden: Golden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, dict[str, Any]]]:
    """A copy of the golden store with two checkpoints signed; `verify()` runs the CLI."""
    for name in ("store.db", "access-log.db"):
        shutil.copy(golden.directory / name, tmp_path / name)
    invoke = cli_for(f"sqlite:///{tmp_path / 'store.db'}", golden.settings,
                     tmp_path / "access-log.db", monkeypatch, capsys)
    for _ in range(2):
        assert invoke("audit", "checkpoint")[0] == 0

    def verify(plain: bool = False) -> tuple[int, Any]:
        code, out, err = invoke("audit", "verify", *([] if plain else ["--json"]))
        assert code in (4, 5), (code, out, err)
        return code, out if plain else json.loads(out)

    return verify


def _write(path: Path, statement: str, *, drop_triggers: bool = False) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        if drop_triggers:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                db.execute(f"DROP TRIGGER {name}")
        db.execute(statement)


def _alter_an_event_elsewhere(path: Path) -> int:
    """Flip a byte of a later case event's state (its type kept); its position."""
    with closing(sqlite3.connect(path)) as db, db:
        (position,) = db.execute("SELECT MAX(rowid) - 3 FROM stored_events").fetchone()
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = ?",
                              (position,)).fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                   (state[:-1] + bytes([state[-1] ^ 1]), position))
    return int(position)


def _breaks(report: dict[str, Any], chain: str) -> list[dict[str, Any]]:
    found = [c for c in [*report["chains"], report["access_log"]] if c and c["chain"] == chain]
    return [b for c in found for b in c["breaks"]]


def _stored_as(path: Path, table: str, column: str, where: str) -> str:
    with closing(sqlite3.connect(path)) as db, db:
        row = db.execute(f"SELECT typeof({column}) FROM {table} WHERE {where}").fetchone()
    return str(row[0]) if row else "missing"


def _wrong(stored: str, expected: str, kind: str) -> bool:
    """Whether a value written as `kind` is stored as another type than the column's."""
    return stored != expected or kind == "TEXT not UTF-8"


def _cases(columns: dict[str, tuple[str, ...]]) -> list[Any]:
    return [pytest.param(column, kind, id=f"{column}-{kind}")
            for column, kinds in columns.items() for kind in kinds]


ALL = tuple(WRONG)
NOT_NULL = tuple(k for k in WRONG if k != "NULL")


# --- the events chain ----------------------------------------------------------------------


@pytest.mark.parametrize(("column", "kind"), _cases({
    "originator_id": ALL, "originator_version": ALL, "topic": ALL, "state": ALL,
}))
def test_an_event_of_the_wrong_type_is_a_break(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE stored_events SET {column} = {WRONG[kind]} WHERE rowid = {DAMAGED}")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    breaks = _breaks(report, "events:stored_events")
    assert code == 4
    at_damaged = [b["reason"] for b in breaks if b["position"] == DAMAGED]
    assert at_damaged, breaks
    expected = {"originator_id": "text", "originator_version": "integer", "topic": "text",
                "state": "blob"}[column]
    if _wrong(_stored_as(db, "stored_events", column, f"rowid = {DAMAGED}"), expected, kind):
        assert f"stored_events at position {DAMAGED} cannot be read: {column} is" in (
            at_damaged[0])
    assert any(b["position"] == elsewhere for b in breaks), breaks


@pytest.mark.parametrize("kind", NOT_NULL)
def test_a_chain_link_of_the_wrong_type_is_a_break(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, kind: str
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE stored_events_chain SET hash = {WRONG[kind]} WHERE position = {DAMAGED}")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    breaks = _breaks(report, "events:stored_events")
    assert code == 4
    [reason] = [b["reason"] for b in breaks if b["position"] == DAMAGED]
    if kind != "BLOB":
        assert f"stored_events_chain at position {DAMAGED} cannot be read: hash is" in reason
    assert any(b["position"] == elsewhere for b in breaks), breaks


# --- the audit's own tables ----------------------------------------------------------------


@pytest.mark.parametrize(("column", "kind"), _cases({
    "events_table": ALL, "chain_table": NOT_NULL, "chain": NOT_NULL,
}))
def test_a_damaged_chain_registration_is_named_and_its_chain_still_verified(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE audit_chains SET {column} = {WRONG[kind]} "
               "WHERE events_table = 'stored_events'")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    assert code == 4
    assert any(d["table"] == "audit_chains" for d in report["damaged_rows"]), report
    assert any(b["position"] == elsewhere
               for b in _breaks(report, "events:stored_events")), report["chains"]


@pytest.mark.parametrize(("column", "kind"), _cases({
    name: NOT_NULL for name in ("at", "events_table", "events", "unchained", "registered")
}))
def test_a_damaged_rewrite_record_is_named(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE audit_chain_rewrites SET {column} = {WRONG[kind]}")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    assert code == 4
    expected = "text" if column in ("at", "events_table") else "integer"
    if _wrong(_stored_as(db, "audit_chain_rewrites", column, "1"), expected, kind):
        [damaged] = report["damaged_rows"]
        assert damaged["table"] == "audit_chain_rewrites" and damaged["row"] == "1"
        assert column in damaged["problem"]
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


# --- snapshots -----------------------------------------------------------------------------


@pytest.mark.parametrize("service", [0, 1], ids=["case", "payments"])
@pytest.mark.parametrize(("column", "kind"), _cases({
    "originator_id": NOT_NULL, "originator_version": NOT_NULL, "topic": ALL, "state": ALL,
}))
def test_a_snapshot_of_the_wrong_type_is_a_snapshot_problem(
    store: Callable[..., tuple[int, dict[str, Any]]], golden: Golden, tmp_path: Path,
    column: str, kind: str, service: int,
) -> None:
    db, table = tmp_path / "store.db", golden.snapshots[service]
    _write(db, f"UPDATE {table} SET {column} = {WRONG[kind]}")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    assert code == 4
    problems = [p for p in report["snapshot_problems"] if p["table"] == table]
    assert len(problems) == 1, report["snapshot_problems"]
    assert problems[0]["problem"]
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


@pytest.mark.parametrize("row", [
    "'not-a-uuid', 5, 'x', x'00'",
    "'{case}', 'abc', 'x', x'00'",
    "'{case}', 77, 5, 'text'",
], ids=["not-a-uuid", "version-abc", "topic-int-state-text"])
def test_a_snapshot_row_added_with_wrong_types_is_named(
    store: Callable[..., tuple[int, dict[str, Any]]], golden: Golden, tmp_path: Path, row: str
) -> None:
    """The security review's reproduction: such a row crashed verify (exit 70), hiding an
    event altered in the same store."""
    db, table = tmp_path / "store.db", golden.snapshots[0]
    _write(db, f"INSERT INTO {table} VALUES ({row.format(case=golden.case_id.hex)})")
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    assert code == 4
    [added] = [p for p in report["snapshot_problems"] if p["version"] != 100]
    assert added["table"] == table
    assert "expected" in added["problem"] or "not a UUID" in added["problem"], added
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


# --- checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "kind"), _cases({
    "sequence": ALL, "payload": NOT_NULL, "signature": NOT_NULL, "key_id": NOT_NULL,
    "created_at": NOT_NULL, "published": NOT_NULL,
}))
def test_a_stored_checkpoint_of_the_wrong_type_is_a_checkpoint_problem(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE audit_checkpoints SET {column} = {WRONG[kind]} WHERE sequence = 1")
    code, report = store()
    assert code == 5, report
    problems = report["checkpoint_problems"]
    assert len(problems) == 1, problems
    assert problems[0]["sequence"] in (1, None, 7777777 if column == "sequence" else None)
    elsewhere = _alter_an_event_elsewhere(db)
    code, report = store()
    assert code == 4
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


# --- the access log ------------------------------------------------------------------------


ENTRY_COLUMNS = ("at", "consumer", "scope", "case_id", "person_id", "fields", "endpoint")


@pytest.mark.parametrize(("table", "column", "kind"), [
    *[pytest.param("access_log", c, k, id=f"access_log-{c}-{k}")
      for c in ENTRY_COLUMNS for k in NOT_NULL],
    *[pytest.param("access_log_chain", "hash", k, id=f"access_log_chain-hash-{k}")
      for k in NOT_NULL],
])
def test_an_access_log_entry_of_the_wrong_type_is_a_break(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, table: str, column: str,
    kind: str,
) -> None:
    log = tmp_path / "access-log.db"
    _write(log, f"UPDATE {table} SET {column} = {WRONG[kind]} WHERE id = {DAMAGED}",
           drop_triggers=True)
    elsewhere = _alter_an_event_elsewhere(tmp_path / "store.db")
    code, report = store()
    assert code == 4
    breaks = _breaks(report, "access-log")
    assert any(b["position"] == DAMAGED for b in breaks), breaks
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


@pytest.mark.parametrize(("column", "kind"), _cases({
    **{name: NOT_NULL for name in ("position", "hash", "purged_at", "last_at", "entries",
                                   "reason")},
    "seq": ("INTEGER",),  # SQLite stores nothing but a whole number in an INTEGER PRIMARY KEY
}))
def test_an_access_log_anchor_of_the_wrong_type_is_a_break(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    log = tmp_path / "access-log.db"
    _write(log, f"UPDATE access_log_anchor SET {column} = {WRONG[kind]}", drop_triggers=True)
    elsewhere = _alter_an_event_elsewhere(tmp_path / "store.db")
    code, report = store()
    assert code == 4
    expected = {"position": "integer", "hash": "blob", "entries": "integer"}.get(column, "text")
    signed = ("position", "hash", "seq")  # any change: the anchor is not the one signed
    if _wrong(_stored_as(log, "access_log_anchor", column, "1"), expected, kind) or (
            column in signed):
        breaks = _breaks(report, "access-log")
        assert any(column in b["reason"] for b in breaks) or column in signed, breaks
        assert breaks, report["access_log"]
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


@pytest.mark.parametrize(("column", "kind"), _cases({
    name: NOT_NULL for name in ("at", "entries", "first_id", "last_id")
}))
def test_an_access_log_rechaining_of_the_wrong_type_is_a_break(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, column: str, kind: str
) -> None:
    log = tmp_path / "access-log.db"
    _write(log, "INSERT INTO access_log_rechained (at, entries, first_id, last_id) VALUES "
           f"('{datetime.now(UTC).isoformat()}', 2, 11, 12)")
    _write(log, f"UPDATE access_log_rechained SET {column} = {WRONG[kind]}", drop_triggers=True)
    elsewhere = _alter_an_event_elsewhere(tmp_path / "store.db")
    code, report = store()
    assert code == 4
    expected = "text" if column == "at" else "integer"
    rechained = [b for b in _breaks(report, "access-log") if "access_log_rechained row 1" in
                 b["reason"]]
    if _wrong(_stored_as(log, "access_log_rechained", column, "1"), expected, kind) or (
            column == "at"):  # no time ('abc', '7777777', '1.5') is a break too
        [damaged] = rechained
        assert column in damaged["reason"], damaged
        assert report["access_log"]["rechained"] == []
    else:
        assert rechained == [], rechained
        assert report["access_log"]["rechained"][0][column.removesuffix("_id")] == 7777777
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


@pytest.mark.parametrize("kind", ["BLOB", "INTEGER", "TEXT not UTF-8", "REAL"])
def test_an_access_log_identity_of_the_wrong_type_fails_verification(
    store: Callable[..., tuple[int, dict[str, Any]]], tmp_path: Path, kind: str
) -> None:
    _write(tmp_path / "access-log.db", f"UPDATE access_log_identity SET log_id = {WRONG[kind]}",
           drop_triggers=True)
    elsewhere = _alter_an_event_elsewhere(tmp_path / "store.db")
    code, report = store()
    assert code == 4
    assert report["logs_not_found"], report
    if kind in ("BLOB", "TEXT not UTF-8"):
        assert "access_log_identity.log_id is" in report["access_log"]["log_id"]
    assert any(b["position"] == elsewhere for b in _breaks(report, "events:stored_events"))


def test_the_report_for_people_names_each_damaged_place(
    store: Callable[..., tuple[int, Any]], golden: Golden, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    _write(db, f"UPDATE stored_events SET state = 'x' WHERE rowid = {DAMAGED}")
    _write(db, "UPDATE audit_chain_rewrites SET events = 'many'")
    _write(db, f"INSERT INTO {golden.snapshots[0]} VALUES ('not-a-uuid', 5, 'x', x'00')")
    elsewhere = _alter_an_event_elsewhere(db)
    code, out = store(plain=True)
    assert code == 4
    assert (f"first bad position {DAMAGED}: stored_events at position {DAMAGED} cannot be "
            "read: state is TEXT, expected BLOB") in out
    assert f"bad position {elsewhere}: the event's stored bytes" in out
    assert "BROKEN: audit_chain_rewrites row 1: events is TEXT, expected INTEGER" in out
    assert f"snapshot {golden.snapshots[0]} not-a-uuid version 5: originator_id is not a UUID" in (
        out)
