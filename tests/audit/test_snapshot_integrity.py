"""A snapshot altered in the database (the issue's attack: housing 1000 -> 9000 in the first
budget version) is never used — `get_case`, `case_as_of`, `budget_as_known_at` and a payment
run give the answers of before — and `audit verify` fails naming the table, case and version.
The same for the payments service's snapshots. On SQLite files and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.application.snapshots import MacSnapshotStore
from domain.case import SWISS_TIME
from domain.commands import Actor, swiss_today
from domain.payments import RUN_BOOK_ID, RecordPayoutAccount, RunPayments
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.snapshots import verify_snapshots
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.audit.cli import cli_for
from tests.domain.test_bitemporal_snapshots import long_history

SYSTEM = Actor("test", "system", "so-canton")
SIGNED = len(b"nbmac1\x00") + 32  # the stored state: prefix, MAC (32 bytes), then the JSON
HOUSING = b'"code":"housing","amount":{"_type_":"decimal_str","_data_":"1200.00"}'
Tamper = Callable[[str, UUID, int, Callable[[bytes], bytes]], None]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


def _settings(store: str) -> Settings:
    return load_settings({
        "NERVENBAHN_STORE": store,
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })


def _tamperer(settings: Settings) -> Tamper:
    """Rewrite one stored snapshot's state bytes in place (as an attacker with write access)."""
    def tamper(
        table: str, originator: UUID, version: int, change: Callable[[bytes], bytes]
    ) -> None:
        if settings.store.kind == "sqlite":
            assert settings.store.sqlite_path is not None
            with sqlite3.connect(settings.store.sqlite_path) as db:
                where = "WHERE originator_id = ? AND originator_version = ?"
                key = (originator.hex, version)  # how eventsourcing's SQLite stores UUIDs
                (state,) = db.execute(f"SELECT state FROM {table} {where}", key).fetchone()
                db.execute(f"UPDATE {table} SET state = ? {where}",
                           (change(bytes(state)), *key))
            return
        with psycopg.connect(settings.store.conninfo(), autocommit=True) as db:
            db.execute(sql.SQL("SET search_path TO {}").format(
                sql.Identifier(settings.store.schema_name)))
            match = sql.SQL("WHERE originator_id = %s AND originator_version = %s")
            row = db.execute(sql.SQL("SELECT state FROM {} {}").format(
                sql.Identifier(table), match), (originator, version)).fetchone()
            assert row is not None
            db.execute(sql.SQL("UPDATE {} SET state = %s {}").format(sql.Identifier(table), match),
                       (change(bytes(row[0])), originator, version))
    return tamper


def _nine_thousand(state: bytes) -> bytes:
    assert HOUSING in state
    return state.replace(HOUSING, HOUSING.replace(b"1200.00", b"9000.00"), 1)


@pytest.fixture
def recorded(store: str) -> Iterator[tuple[Settings, CaseService, UUID]]:
    settings = _settings(store)
    service = build_service(settings)
    case_id = uuid4()
    end = datetime.now(UTC) - timedelta(hours=1)
    service.import_records(json.dumps(r) for r in long_history(case_id, 120, end))
    yield settings, service, case_id
    close_service(service)


def _answers(service: CaseService, case_id: UUID) -> tuple[object, ...]:
    now = datetime.now(UTC)
    month = now.astimezone(SWISS_TIME).date().replace(day=1)
    service.forget_decoded_snapshots()
    case = service.get_case(case_id)
    return (
        [b.total for b in case.budgets], case.version,
        [b.total for b in service.case_as_of(case_id, now).budgets],
        service.budget_as_known_at(case_id, month, now).amount,
        [b.total for b in service.case_as_of(case_id, now - timedelta(minutes=5)).budgets],
    )


def test_an_altered_case_snapshot_is_not_used_and_verify_names_it(
    recorded: tuple[Settings, CaseService, UUID], store: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings, service, case_id = recorded
    assert isinstance(service.snapshots, MacSnapshotStore)
    table = service.snapshots.table
    before = _answers(service, case_id)
    owed = sum((a.amount for a in service.budget_by_month(case_id, datetime.now(UTC))),
               Decimal(0))
    assert owed > 0
    _tamperer(settings)(table, case_id, 100, _nine_thousand)

    assert _answers(service, case_id) == before
    reopened = build_service(settings)  # a fresh process: nothing cached
    try:
        assert _answers(reopened, case_id) == before
        payments = PaymentService(settings.store.eventsourcing_env(), cases=reopened)
        payments.record_account(RecordPayoutAccount(
            case_id=case_id, iban="CH9300762011623852957", holder="Anna Muster", actor=SYSTEM,
            correlation_id=uuid4()))
        run = payments.run(RunPayments(month=swiss_today().replace(day=1), actor=SYSTEM,
                                       correlation_id=uuid4()))
        assert run.control_sum == owed  # what the events say, not the 9000
        payments.close()
    finally:
        close_service(reopened)

    run_cli = cli_for(store, settings, tmp_path / "access-log.db", monkeypatch, capsys)
    code, out, _ = run_cli("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 4, report
    assert all(chain["ok"] for chain in report["chains"])  # the events are intact
    [problem] = report["snapshot_problems"]
    assert (problem["table"], problem["originator_id"], problem["version"]) == (
        table, str(case_id), 100)
    assert "MAC does not match" in problem["problem"] and "budgets" in problem["problem"]
    code, out, _ = run_cli("audit", "verify")
    assert f"snapshot {table} {case_id} version 100" in out


def test_an_unsigned_snapshot_is_not_used_until_rewritten_from_the_events(
    recorded: tuple[Settings, CaseService, UUID], store: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A snapshot without a MAC (as written before MACs, or with it cut off) is not used;
    `audit rewrite-snapshots` replaces it by a signed one taken from the events."""
    settings, service, case_id = recorded
    before = _answers(service, case_id)

    def unsigned_and_altered(state: bytes) -> bytes:
        assert state.startswith(b"nbmac1\x00")
        return _nine_thousand(state[SIGNED:])

    assert isinstance(service.snapshots, MacSnapshotStore)
    _tamperer(settings)(service.snapshots.table, case_id, 100, unsigned_and_altered)
    assert _answers(service, case_id) == before
    assert list(service.snapshots.get(case_id, lte=100)) == []  # not used

    run_cli = cli_for(store, settings, tmp_path / "access-log.db", monkeypatch, capsys)
    code, out, _ = run_cli("audit", "rewrite-snapshots", "--json")
    assert code == 0
    [rewritten] = json.loads(out)["rewritten"]
    assert (rewritten["originator_id"], rewritten["version"]) == (str(case_id), 100)
    assert "no MAC" in rewritten["problem"]
    [used] = list(service.snapshots.get(case_id, lte=100))  # signed, used again
    assert [b.total for b in used.state["budgets"]][:1] == before[0][:1]  # type: ignore[index]
    assert _answers(service, case_id) == before
    code, out, _ = run_cli("audit", "verify", "--json")
    assert code == 0, out
    assert json.loads(out)["snapshots_checked"] == 1


def test_an_altered_payments_snapshot_is_not_used_and_verify_names_it(
    recorded: tuple[Settings, CaseService, UUID], store: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings, service, case_id = recorded
    payments = PaymentService({**settings.store.eventsourcing_env(),
                               "IS_SNAPSHOTTING_ENABLED": "y"}, cases=service)
    assert isinstance(payments.snapshots, MacSnapshotStore)
    payments.record_account(RecordPayoutAccount(
        case_id=case_id, iban="CH9300762011623852957", holder="Anna Muster", actor=SYSTEM,
        correlation_id=uuid4()))
    payments.run(RunPayments(month=swiss_today().replace(day=1), actor=SYSTEM,
                             correlation_id=uuid4()))
    book: Any = payments.repository.get(RUN_BOOK_ID)
    payments.take_snapshot(RUN_BOOK_ID)
    months_before = dict(book.runs_by_month)

    def forget_runs(state: bytes) -> bytes:  # the book would allow the month to be paid again
        document = json.loads(state[SIGNED:])
        document["state"]["runs_by_month"] = {}
        return state[:SIGNED] + json.dumps(document).encode()

    _tamperer(settings)(payments.snapshots.table, RUN_BOOK_ID, book.version, forget_runs)
    payments.close()
    fresh = PaymentService({**settings.store.eventsourcing_env(),
                            "IS_SNAPSHOTTING_ENABLED": "y"}, cases=service)
    assert dict(fresh.repository.get(RUN_BOOK_ID).runs_by_month) == months_before
    again = fresh.run(RunPayments(month=swiss_today().replace(day=1), actor=SYSTEM,
                                  correlation_id=uuid4()))
    assert not again.recorded  # nothing paid twice
    fresh.close()

    run_cli = cli_for(store, settings, tmp_path / "access-log.db", monkeypatch, capsys)
    code, out, _ = run_cli("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 4, report
    [problem] = report["snapshot_problems"]
    assert (problem["table"], problem["originator_id"]) == (payments.snapshots.table,
                                                            str(RUN_BOOK_ID))


def test_an_altered_latest_snapshot_gives_way_to_the_one_before(
    recorded: tuple[Settings, CaseService, UUID],
) -> None:
    settings, service, _ = recorded
    case_id = uuid4()
    end = datetime.now(UTC) - timedelta(hours=1)
    service.import_records(json.dumps(r) for r in long_history(case_id, 210, end))
    assert isinstance(service.snapshots, MacSnapshotStore)
    before = _answers(service, case_id)
    db = open_audit_database(settings.store)
    try:
        assert verify_snapshots(db, [service]) == (3, [])  # 100 of the other case, 100, 200
        _tamperer(settings)(service.snapshots.table, case_id, 200, _nine_thousand)
        checked, problems = verify_snapshots(db, [service])
    finally:
        db.close()
    assert checked == 3
    assert [(p.originator_id, p.version) for p in problems] == [(case_id, 200)]
    assert [s.originator_version for s in service.snapshots.get(case_id, desc=True, limit=1)
            ] == [100]
    assert _answers(service, case_id) == before
