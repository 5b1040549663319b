"""A deleted access log is not "no access log": once a signed checkpoint names its head,
`audit verify` fails (exit 4) naming the file, whether the checkpoint names the log's identity
or was signed before logs had one. An installation whose checkpoints never signed a log (or
only an empty one) still verifies without it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.checkpoints import SigningKey, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.config import Settings
from tests.audit.cli import Invoke, make_installation


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Invoke, Path]:
    """An installation with two cases; the access log's path (no log yet)."""
    settings, run, _ = make_installation(tmp_path, monkeypatch, capsys)
    return settings, run, tmp_path / "access-log.db"


def _log_reads(path: Path, count: int) -> None:
    log = SQLiteAccessLog(path)
    try:
        for n in range(count):
            log.append(AccessEntry(at=datetime.now(UTC), consumer=f"office-{n}",
                                   scope="branch_office:akso-olten", case_id=str(uuid4()),
                                   person_id=str(uuid4()), fields=("family_name",),
                                   endpoint="/v1/branch-offices/akso-olten/cases/x"))
    finally:
        log.close()


def _verified(run: Invoke) -> tuple[int, dict[str, Any]]:
    code, out, _ = run("audit", "verify", "--json")
    return code, json.loads(out)


def _delete(path: Path) -> None:
    leftovers = list(path.parent.glob(path.name + "*"))  # the file and its WAL/SHM
    assert leftovers
    for leftover in leftovers:
        leftover.unlink()


def test_verify_fails_naming_the_file_when_a_signed_access_log_was_deleted(
    installation: tuple[Settings, Invoke, Path],
) -> None:
    _, run, log_path = installation
    _log_reads(log_path, 3)
    assert run("audit", "checkpoint")[0] == 0
    _log_reads(log_path, 2)
    assert run("audit", "checkpoint")[0] == 0
    assert run("audit", "verify")[0] == 0
    _delete(log_path)

    code, report = _verified(run)

    assert code == 4, report
    missing = report["access_log_missing"]
    assert missing["location"] == str(log_path)
    assert missing["sequences"] == [1, 2] and missing["head"]["position"] == 5
    assert report["access_log"] is None
    assert report["logs_not_found"] == []  # one finding, not one per checkpoint
    code, out, _ = run("audit", "verify")
    assert code == 4
    text = " ".join(out.split())
    assert f"BROKEN: the access log {log_path} is missing" in text
    assert "NOT verified" in text


def test_a_checkpoint_signed_before_logs_had_identities_also_fails_on_a_deleted_log(
    installation: tuple[Settings, Invoke, Path],
) -> None:
    settings, run, log_path = installation
    _log_reads(log_path, 4)
    log = SQLiteAccessLog(log_path)
    head = log.head()
    log.close()
    db = open_audit_database(settings.store)
    try:  # as an earlier release signed it: the head, no identity
        write_checkpoint(db, SigningKey.from_seed(settings.signing_key.get_secret_value()),
                         access_log=head, access_log_id=None)
    finally:
        db.close()
    _delete(log_path)

    code, report = _verified(run)

    assert code == 4, report
    assert report["access_log_missing"]["sequences"] == [1]
    assert report["access_log_missing"]["log_id"] is None
    assert report["access_log_missing"]["head"]["position"] == head.position == 4


def test_no_access_log_is_no_finding_while_no_checkpoint_signed_one(
    installation: tuple[Settings, Invoke, Path],
) -> None:
    _, run, log_path = installation
    assert not log_path.exists()
    assert run("audit", "checkpoint")[0] == 0

    code, report = _verified(run)

    assert code == 0, report
    assert report["access_log_missing"] is None
