"""Checkpoints name the access log they sign; verification compares a log only with heads
signed for it, fails on a checkpoint naming a log it cannot find (the log was replaced), and
lists every break, not only the first.

The demo-like flow uses the pieces `make demo` uses (the demo API's reads logged in the
installation's access log, `demo_connectors.audit_and_report`), then the auditor's CLI."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.cli.session import Session
from nervenbahn.config import Settings
from nervenbahn.demo_connectors import audit_and_report
from nervenbahn.demo_session import DemoSession
from tests.audit.cli import Invoke, make_installation


def _read(log: SQLiteAccessLog, n: int) -> None:
    log.append(AccessEntry(at=datetime.now(UTC), consumer=f"demo-office-{n}",
                           scope="branch_office:akso-olten", case_id=str(uuid4()),
                           person_id=str(uuid4()), fields=("given_name", "family_name"),
                           endpoint="/v1/branch-offices/akso-olten/cases/x"))


def _tamper_log(path: Path, *entry_ids: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER access_log_no_update")
        for entry_id in entry_ids:
            db.execute("UPDATE access_log SET consumer = 'someone-else' WHERE id = ?",
                       (entry_id,))


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Invoke, UUID]:
    return make_installation(tmp_path, monkeypatch, capsys)


def test_a_demo_like_flow_verifies_and_a_tampered_access_log_is_reported(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    _, run, case_id = installation
    log_path = tmp_path / "access-log.db"
    log = SQLiteAccessLog(log_path)  # the demo API's reads (demo_api.py) land here
    for n in range(3):
        _read(log, n)
    log.close()
    rt = Session()
    try:  # checkpoint #1, as `make demo` signs it
        audit_and_report(DemoSession(rt.container, rt.console), case_id, tmp_path)
    finally:
        rt.close()
    log = SQLiteAccessLog(log_path)
    _read(log, 3)  # later reads (the API, the CLI), then the operator's checkpoint
    log.close()
    assert run("audit", "checkpoint")[0] == 0
    code, out, _ = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 0, report
    assert report["access_log"]["checkpoints_checked"] == 2
    assert report["logs_not_found"] == []

    _tamper_log(log_path, 2)
    code, out, _ = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 4
    assert [b["position"] for b in report["access_log"]["breaks"]] == [2]
    assert "altered" in report["access_log"]["breaks"][0]["reason"]


def test_a_checkpoint_of_another_access_log_fails_verification(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    """An earlier release's `make demo` signed checkpoint #1 with the demo API's own log: that
    log is not this one, so what #1 vouched for cannot be checked here."""
    settings, run, _ = installation
    other = SQLiteAccessLog(tmp_path / "demo-access-log.db")
    for n in range(2):
        _read(other, n)
    db = open_audit_database(settings.store)
    try:
        write_checkpoint(db, SigningKey.from_seed(settings.signing_key.get_secret_value()),
                         access_log=other.head(), access_log_id=other.log_id)
    finally:
        db.close()
    other_id = other.log_id
    other.close()
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    for n in range(5):
        _read(log, n)
    assert log.log_id != other_id
    log.close()
    assert run("audit", "checkpoint")[0] == 0
    code, out, _ = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 4, report
    assert [(o["sequence"], o["log_id"]) for o in report["logs_not_found"]] == [(1, other_id)]
    assert "replaced or re-created" in report["logs_not_found"][0]["problem"]
    assert report["access_log"]["log_id"] != other_id
    assert report["access_log"]["breaks"] == []  # the log itself matches its own checkpoint
    code, out, _ = run("audit", "verify")
    assert code == 4
    assert f"BROKEN: checkpoint #1 signs access log {other_id}" in " ".join(out.split())


def test_an_access_log_rewritten_under_a_new_identity_fails_verification(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    """The attack: delete the access log after reads were signed; the next open makes a fresh,
    consistent log with a new identity, which the earlier checkpoint does not name."""
    _, run, _ = installation
    log_path = tmp_path / "access-log.db"
    log = SQLiteAccessLog(log_path)
    for n in range(3):
        _read(log, n)
    signed_id = log.log_id
    log.close()
    assert run("audit", "checkpoint")[0] == 0
    for leftover in tmp_path.glob("access-log.db*"):
        leftover.unlink()
    log = SQLiteAccessLog(log_path)  # the attacker's clean log, chained correctly
    _read(log, 9)
    assert log.log_id != signed_id
    log.close()

    code, out, _ = run("audit", "verify", "--json")

    report = json.loads(out)
    assert code == 4, report
    assert [o["log_id"] for o in report["logs_not_found"]] == [signed_id]


def test_every_break_is_reported_in_the_events_chain_and_the_access_log(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    settings, run, _ = installation
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    for n in range(6):
        _read(log, n)
    log.close()
    assert run("audit", "checkpoint")[0] == 0
    assert settings.store.sqlite_path is not None
    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute("UPDATE stored_events SET topic = topic || 'x' WHERE rowid IN (2, 5)")
    _tamper_log(tmp_path / "access-log.db", 2, 5)
    code, out, _ = run("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 4
    [events] = [c for c in report["chains"] if c["chain"] == "events:stored_events"]
    assert [b["position"] for b in events["breaks"]] == [2, 5]
    assert events["first_break"]["position"] == 2
    assert [b["position"] for b in report["access_log"]["breaks"]] == [2, 5]
    code, out, _ = run("audit", "verify")
    assert "first bad position 2" in out and "bad position 5" in out
