"""Events the chain does not cover are never chained as a side effect of opening the store:
opening refuses (`UnchainedEventsError`, exit 3 in the CLI naming the table and the count);
only `audit chain-existing --confirm` chains them, logged and recorded, and an earlier
auditor's checkpoint still shows the rewrite. On SQLite files and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from domain.application.cases import CaseService
from nervenbahn.audit.chain_existing import UnchainedEventsError
from nervenbahn.audit.checkpoints import SigningKey, export_checkpoints, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_payment_service, build_service, close_service
from tests.audit.cli import Invoke, cli_for
from tests.bus.pipeline import open_supported_case

Execute = Callable[[str], None]
STORES: dict[int, str] = {}


def _settings(store: str) -> Settings:
    settings = load_settings({
        "NERVENBAHN_STORE": store,
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    STORES[id(settings)] = store
    return settings


def _cli(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Invoke:
    return cli_for(STORES[id(settings)], settings, tmp_path / "access-log.db", monkeypatch,
                   capsys)


def _sqlite_executor(path: Path) -> Execute:
    def execute(statement: str) -> None:
        with sqlite3.connect(path) as db:
            db.execute(statement)
    return execute


def _postgres_executor(settings: Settings) -> Execute:
    def execute(statement: str) -> None:
        with psycopg.connect(settings.store.conninfo(), autocommit=True) as db:
            db.execute(sql.SQL("SET search_path TO {}").format(
                sql.Identifier(settings.store.schema_name or "public")))
            db.execute(statement.encode())
    return execute


def _recorded(settings: Settings, cases: int) -> str:
    """Record cases, sign a checkpoint, export the auditor's copy; the events table."""
    service = build_service(settings)
    build_payment_service(settings, service).close()
    for n in range(cases):
        open_supported_case(service, n)
    events_table = service.recorder.events_table_name  # type: ignore[attr-defined]
    close_service(service)
    db = open_audit_database(settings.store)
    try:
        write_checkpoint(db, SigningKey.from_seed(settings.signing_key.get_secret_value()))
    finally:
        db.close()
    return str(events_table)


def _store(kind: str, tmp_path: Path, postgres_dsn: str) -> tuple[Settings, Execute]:
    if kind == "sqlite":
        settings = _settings(f"sqlite:///{tmp_path / 'store.db'}")
        return settings, _sqlite_executor(tmp_path / "store.db")
    settings = _settings(postgres_dsn)
    return settings, _postgres_executor(settings)


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_dsn(store_kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("postgres_dsn")) if store_kind == "postgres" else ""


def test_an_emptied_chain_table_is_refused_and_only_the_explicit_command_chains(
    store_kind: str, any_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, execute = _store(store_kind, tmp_path, any_dsn)
    events_table = _recorded(settings, 3)
    db = open_audit_database(settings.store)
    export_checkpoints(db, tmp_path / "auditor.jsonl")
    db.close()
    # The attack of the issue: alter an event, empty the chain table.
    execute(f"UPDATE {events_table} SET topic = topic || 'x' WHERE originator_version = 2")
    execute(f"DELETE FROM {events_table}_chain")

    with pytest.raises(UnchainedEventsError) as refused:
        build_service(settings)
    assert refused.value.events_table == events_table and refused.value.unchained == 9
    run = _cli(settings, tmp_path, monkeypatch, capsys)
    code, out, err = run("case", "list")
    assert code == 3, (out, err)
    message = [line for line in err.splitlines() if line.strip()]
    assert len(message) == 1, err
    assert events_table in message[0] and "9 events" in message[0]
    assert "audit chain-existing --confirm" in message[0]

    assert run("audit", "chain-existing")[0] == 1  # needs --confirm
    code, out, err = run("audit", "chain-existing", "--confirm", "--json")
    assert code == 0, err
    assert json.loads(out)["chained"] == [
        {"events_table": events_table, "events": 9, "unchained": 9, "registered": True}]
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warned = [e for e in logged if e.get("level") == "warning" and "events_table" in e]
    assert [(w["events_table"], w["events"]) for w in warned] == [(events_table, 9)]
    close_service(build_service(settings))  # opens again without a word

    code, out, _ = run("audit", "verify", "--json")  # the store's own checkpoint
    report = json.loads(out)
    assert code == EXIT_CHAIN_BROKEN, report
    assert [r["events_table"] for r in report["chain_rewrites"]] == [events_table]
    code, out, _ = run("audit", "verify", "--json", "--checkpoints",
                       str(tmp_path / "auditor.jsonl"))
    report = json.loads(out)
    assert code == EXIT_CHAIN_BROKEN
    broken = [c for c in report["chains"] if not c["ok"]]
    assert [c["chain"] for c in broken] == [f"events:{events_table}"]
    assert "rewritten" in broken[0]["first_break"]["reason"]


def test_a_deleted_registration_is_refused_too(
    store_kind: str, any_dsn: str, tmp_path: Path
) -> None:
    settings, execute = _store(store_kind, tmp_path, any_dsn)
    events_table = _recorded(settings, 2)
    execute(f"DELETE FROM audit_chains WHERE events_table = '{events_table}'")
    with pytest.raises(UnchainedEventsError, match="not registered in audit_chains") as refused:
        build_service(settings)
    assert refused.value.registered is False and refused.value.unchained == 0


def test_a_store_from_before_the_chain_is_refused_until_chained_explicitly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(f"sqlite:///{tmp_path / 'store.db'}")
    plain_env = settings.store.eventsourcing_env()
    del plain_env["APPLICATION_RECORDER_TOPIC"]
    service = build_service(settings)
    old = CaseService(plain_env, vault=service.vault, reference=service.reference)
    for n in range(3):
        open_supported_case(old, n)
    old.close()
    close_service(service)
    _sqlite_executor(tmp_path / "store.db")("DELETE FROM stored_events_chain")
    with pytest.raises(UnchainedEventsError):
        build_service(settings)
    run = _cli(settings, tmp_path, monkeypatch, capsys)
    assert run("audit", "chain-existing", "--confirm")[0] == 0
    service = build_service(settings)
    open_supported_case(service, 50)
    close_service(service)
    code, out, _ = run("audit", "verify", "--json")
    assert code == 0, out
    records = {c["chain"]: c["records"] for c in json.loads(out)["chains"]}
    assert records["events:stored_events"] == 12


def test_a_partly_deleted_chain_table_is_refused(
    store_kind: str, any_dsn: str, tmp_path: Path
) -> None:
    settings, execute = _store(store_kind, tmp_path, any_dsn)
    events_table = _recorded(settings, 2)
    execute(f"DELETE FROM {events_table}_chain WHERE position IN "
            f"(SELECT MIN(position) + 2 FROM {events_table}_chain)")
    with pytest.raises(UnchainedEventsError, match="1 events have no hash-chain link"):
        build_service(settings)
