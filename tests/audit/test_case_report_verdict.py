"""The audit report as evidence: verified against the auditor's own copy of the checkpoints
when given (a checkpoint dropped or re-signed in the system's table is then caught, which the
store alone cannot see), and never "intact" when verification fails — the report says so first
and `audit case` exits with the code `audit verify` exits with."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.cli.session import Session
from nervenbahn.config import Settings
from tests.audit.cli import Invoke, make_installation
from tests.audit.test_tamper import Tables, rewrite_from
from tests.bus.pipeline import open_supported_case

EVENTS = Tables("stored_events", "rowid", "stored_events_chain", "?", "events:stored_events")


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Invoke, UUID]:
    """Two cases (events 1-6), checkpoint #1; a third case (events 7-9) and a read of the
    first logged, checkpoint #2; the auditor's copy exported to tmp_path/copy.jsonl. The
    first case's id."""
    settings, run, case_id = make_installation(tmp_path, monkeypatch, capsys)
    assert run("audit", "checkpoint")[0] == 0
    rt = Session()
    try:
        open_supported_case(rt.service, 3)
    finally:
        rt.close()
    assert run("audit", "state", str(case_id), "--as-of", "2030-01-01")[0] == 0
    assert run("audit", "checkpoint")[0] == 0
    assert run("audit", "checkpoints", "export", str(tmp_path / "copy.jsonl"))[0] == 0
    return settings, run, case_id


def _drop_the_newest_and_rewrite(settings: Settings, store: Path) -> None:
    """Alter the third case's first event, re-chain consistently, delete checkpoint #2 (the
    newest, so no gap shows): the store's own checkpoint #1 still matches."""
    with sqlite3.connect(store) as db:
        rewrite_from(db, EVENTS, 7, random.Random(7))
        db.execute("DELETE FROM audit_checkpoints WHERE sequence = 2")


def _resign_the_newest(settings: Settings, store: Path) -> None:
    """Replace checkpoint #2 by one signed anew with the installation's key (it lies beside
    the store): valid in itself, but not the one the auditor exported."""
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM audit_checkpoints WHERE sequence = 2")
    db = open_audit_database(settings.store)
    try:
        write_checkpoint(db, SigningKey.from_seed(settings.signing_key.get_secret_value()))
    finally:
        db.close()


@pytest.mark.parametrize(
    ("tamper", "code", "named"),
    [
        (_drop_the_newest_and_rewrite, 4, "in the auditor's copy but missing from the store"),
        (_resign_the_newest, 5, "differs from the auditor's copy"),
    ],
    ids=["checkpoint-dropped", "checkpoint-re-signed"],
)
def test_only_the_auditors_copy_catches_a_checkpoint_dropped_or_re_signed_in_the_store(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    tamper: Callable[[Settings, Path], None], code: int, named: str,
) -> None:
    settings, run, case_id = installation
    copy, report = str(tmp_path / "copy.jsonl"), tmp_path / "report.html"
    tamper(settings, tmp_path / "store.db")

    assert run("audit", "verify")[0] == 0  # the system's own table is consistent
    verified, out, _ = run("audit", "verify", "--checkpoints", copy, "--json")
    assert verified == code, out
    assert any(named in p["reason"] and p["sequence"] == 2
               for p in json.loads(out)["checkpoint_problems"])

    own = run("--json", "audit", "case", str(case_id), "--as-of", "2030-01-01", "--out",
              str(tmp_path / "own.html"))
    assert own[0] == 0 and json.loads(own[1])["verified"] is True
    reported, out, err = run("--json", "audit", "case", str(case_id), "--as-of", "2030-01-01",
                             "--out", str(report), "--checkpoints", copy)
    summary = json.loads(out)
    assert reported == verified, err
    assert (summary["verified"], summary["exit_code"]) == (False, code)
    assert summary["checkpoints_from"].startswith(f"the auditor's copy {copy}")
    assert any(named in p for p in summary["problems"])
    assert named in _verdict(report)


def _alter_an_event(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "store.db") as db:  # the third case's: the report's reads
        db.execute("UPDATE stored_events SET topic = topic || 'x' WHERE rowid = 8")
    return "events:stored_events: bad position 8"


def _delete_the_access_log(tmp_path: Path) -> str:
    log = SQLiteAccessLog(tmp_path / "access-log.db")
    head = log.head()
    log.close()
    assert head.position > 0  # checkpoint #2 signed it
    for leftover in tmp_path.glob("access-log.db*"):
        leftover.unlink()
    return f"the access log {tmp_path / 'access-log.db'} is missing"


@pytest.mark.parametrize("tamper", [_alter_an_event, _delete_the_access_log],
                         ids=["event-altered", "access-log-deleted"])
def test_a_report_on_a_store_that_does_not_verify_says_so_first_and_exits_as_verify(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
    tamper: Callable[[Path], str],
) -> None:
    _, run, case_id = installation
    report = tmp_path / "report.html"
    finding = tamper(tmp_path)
    verified, verify_out, _ = run("audit", "verify")
    assert verified == 4, verify_out

    reported, out, err = run("audit", "case", str(case_id), "--as-of", "2030-01-01",
                             "--out", str(report))

    assert reported == verified, err
    line = " ".join(out.split())
    assert "NOT VERIFIED (exit 4)" in line and finding in line
    assert "intact" not in line
    html = report.read_text(encoding="utf-8")
    assert finding in _verdict(report)
    assert "<title>NICHT VERIFIZIERT" in html  # German unless asked for French
    assert ">intakt<" not in html  # no chain is called intact while verification fails


def test_a_report_on_a_store_that_verifies_says_verified_against_the_auditors_copy(
    installation: tuple[Settings, Invoke, UUID], tmp_path: Path,
) -> None:
    _, run, case_id = installation
    report = tmp_path / "report.html"
    code, out, err = run("audit", "case", str(case_id), "--as-of", "2030-01-01", "--out",
                         str(report), "--checkpoints", str(tmp_path / "copy.jsonl"))
    assert code == 0, err
    assert "verified: every chain, snapshot and checkpoint holds" in " ".join(out.split())
    assert "Geprüft:" in _verdict(report) and "2 signierte Checkpoints" in _verdict(report)
    assert f"die Kopie der Revision {tmp_path / 'copy.jsonl'}" in _verdict(report)
    assert "NICHT VERIFIZIERT" not in report.read_text(encoding="utf-8")


def _verdict(report: Path) -> str:
    """The text of the report's verdict box (tags removed)."""
    html = report.read_text(encoding="utf-8")
    found = re.search(r'<(div|p) id="verdict"[^>]*>(.*?)</\1>', html, re.S)
    assert found, "the report has no verdict"
    return re.sub(r"<[^>]+>", " ", found.group(2)).replace("&#x27;", "'")
