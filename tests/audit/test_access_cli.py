"""`nervenbahn audit access` and `audit access-purge` on a real access-log file."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.cli import main

ANNA, BEN = str(uuid4()), str(uuid4())
CASE_A, CASE_B = str(uuid4()), str(uuid4())
DETAIL = "GET /v1/branch-offices/{office_id}/cases/{case_id}"
SIGNING_SEED = base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


Cli = Callable[..., Outcome]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "access-log.db"


@pytest.fixture
def cli(
    tmp_path: Path, log_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """`nervenbahn ARGS…` with the access log in tmp_path; an empty store database (where
    `access-purge` keeps the checkpoint it signs) and a signing key; keys in tmp_path."""
    with closing(sqlite3.connect(tmp_path / "store.db")) as db:
        db.execute("VACUUM")
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("NERVENBAHN_AUDIT_SIGNING_KEY", SIGNING_SEED)
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG", str(log_path))
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "fk.meier:auditor:so-finanzkontrolle")
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("NERVENBAHN_MASTER_KEY", "NERVENBAHN_ACCESS_LOG_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def read(person: str, case: str, consumer: str, at: datetime) -> AccessEntry:
    return AccessEntry(at=at, consumer=consumer, scope=f"branch_office:{consumer}",
                       case_id=case, person_id=person, fields=("given_name", "ahvn13"),
                       endpoint=DETAIL)


def write_log(path: Path, *entries: AccessEntry) -> None:
    log = SQLiteAccessLog(path)
    for item in entries:
        log.append(item)
    log.close()


def test_access_lists_who_read_a_persons_data_oldest_first(cli: Cli, log_path: Path) -> None:
    first = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    write_log(log_path,
              read(ANNA, CASE_A, "akso-olten", first),
              read(BEN, CASE_B, "akso-olten", first + timedelta(hours=1)),
              read(ANNA, CASE_A, "akso-grenchen", first + timedelta(hours=2)))

    result = cli("audit", "access", "--person", ANNA, "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "person_id": ANNA,
        "case_id": None,
        "entries": [
            {"id": 1, "at": "2026-03-01T09:00:00+00:00", "consumer": "akso-olten",
             "scope": "branch_office:akso-olten", "case_id": CASE_A, "person_id": ANNA,
             "fields": ["given_name", "ahvn13"], "endpoint": DETAIL},
            {"id": 3, "at": "2026-03-01T11:00:00+00:00", "consumer": "akso-grenchen",
             "scope": "branch_office:akso-grenchen", "case_id": CASE_A, "person_id": ANNA,
             "fields": ["given_name", "ahvn13"], "endpoint": DETAIL},
        ],
    }


def test_the_table_shows_swiss_time_and_every_reader(cli: Cli, log_path: Path) -> None:
    write_log(log_path,
              read(ANNA, CASE_A, "akso-olten", datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
              read(ANNA, CASE_B, "akso-grenchen", datetime(2026, 1, 5, 8, 0, tzinfo=UTC)))

    result = cli("audit", "access", "--person", ANNA)

    assert result.code == 0, result.err
    assert ANNA in result.out and "(2)" in result.out
    assert "2026-07-01 10:00:00" in result.out                  # CEST, UTC+2
    assert "2026-01-05 09:00:00" in result.out                  # CET, UTC+1
    assert result.out.index("akso-olten") < result.out.index("akso-grenchen")


def test_case_narrows_the_list_and_pages_past_a_thousand(cli: Cli, log_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    write_log(log_path, *(read(ANNA, CASE_A if n % 2 else CASE_B, "akso-olten",
                               start + timedelta(minutes=n)) for n in range(2101)))

    both = cli("--json", "audit", "access", "--person", ANNA, "--case", CASE_A)
    by_case = cli("--json", "audit", "access", "--case", CASE_B)

    ids = [e["id"] for e in json.loads(both.out)["entries"]]
    assert ids == list(range(2, 2102, 2))                       # entry n+1 is read n
    assert len(json.loads(by_case.out)["entries"]) == 1051


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--person", "not-a-uuid"], "--person: 'not-a-uuid' is not a UUID"),
        (["--person", ANNA, "--case", "12"], "--case: '12' is not a UUID"),
        ([], "--person: give --person ID or --case ID"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    cli: Cli, log_path: Path, args: list[str], message: str
) -> None:
    write_log(log_path)

    result = cli("audit", "access", *args)

    assert result.code == 1
    assert result.err.strip().splitlines() == [f"error: audit access rejected: {message}"]


def test_a_missing_log_is_a_configuration_error_and_not_created(
    cli: Cli, log_path: Path
) -> None:
    result = cli("audit", "access", "--person", ANNA)

    assert result.code == 3
    assert "NERVENBAHN_ACCESS_LOG" in result.err and str(log_path) in result.err
    assert not log_path.exists()


def test_access_purge_removes_entries_past_retention_and_keeps_the_chain(
    cli: Cli, log_path: Path
) -> None:
    now = datetime.now(UTC)
    write_log(log_path,
              read(ANNA, CASE_A, "akso-olten", now - timedelta(days=800)),
              read(ANNA, CASE_A, "akso-olten", now - timedelta(days=366)),
              read(ANNA, CASE_A, "akso-olten", now - timedelta(days=300)))
    log = SQLiteAccessLog(log_path)
    checkpoint = log.head()
    log.close()

    purged = cli("--json", "audit", "access-purge")
    again = cli("audit", "access-purge")
    listed = cli("--json", "audit", "access", "--person", ANNA)

    log = SQLiteAccessLog(log_path)
    verification = log.verify([checkpoint])
    log.close()
    report = json.loads(purged.out)
    assert (purged.code, report["purged"], report["retention_days"]) == (0, 2, 365)
    assert report["anchor"]["position"] == 2
    assert report["checkpoint"] == 1  # the purge is vouched for by a signed checkpoint
    assert "nothing to purge" in again.out
    assert [e["id"] for e in json.loads(listed.out)["entries"]] == [3]
    assert verification.ok


def test_a_longer_retention_keeps_more(
    cli: Cli, log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    write_log(log_path, read(ANNA, CASE_A, "akso-olten", now - timedelta(days=800)),
              read(ANNA, CASE_A, "akso-olten", now - timedelta(days=500)))
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG_RETENTION_DAYS", "730")

    result = cli("--json", "audit", "access-purge")

    assert json.loads(result.out)["purged"] == 1


@pytest.mark.parametrize(("days", "reason"), [("364", "shorter than one year"),
                                              ("a year", "not a whole number")])
def test_access_purge_refuses_a_retention_under_a_year(
    cli: Cli, log_path: Path, monkeypatch: pytest.MonkeyPatch, days: str, reason: str
) -> None:
    write_log(log_path, read(ANNA, CASE_A, "akso-olten", datetime(2020, 1, 1, tzinfo=UTC)))
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG_RETENTION_DAYS", days)

    result = cli("audit", "access-purge")

    log = SQLiteAccessLog(log_path)
    kept = len(log.select())
    log.close()
    assert result.code == 3
    assert result.err.startswith("error: NERVENBAHN_ACCESS_LOG_RETENTION_DAYS:")
    assert reason in result.err
    assert kept == 1


def test_access_purge_refuses_a_broken_chain_and_removes_nothing(
    cli: Cli, log_path: Path
) -> None:
    write_log(log_path, read(ANNA, CASE_A, "akso-olten", datetime(2020, 1, 1, tzinfo=UTC)))
    with sqlite3.connect(log_path) as db:
        db.execute("DROP TRIGGER access_log_no_update")
        db.execute("UPDATE access_log SET consumer = 'nobody'")

    result = cli("audit", "access-purge")

    assert result.code == 1
    assert "broken at 1" in result.err
    with sqlite3.connect(log_path) as db:
        assert db.execute("SELECT count(*) FROM access_log").fetchone() == (1,)


def test_access_purge_without_a_store_to_sign_in_is_refused_and_removes_nothing(
    cli: Cli, log_path: Path, tmp_path: Path
) -> None:
    write_log(log_path, read(ANNA, CASE_A, "akso-olten", datetime(2020, 1, 1, tzinfo=UTC)))
    (tmp_path / "store.db").unlink()

    result = cli("audit", "access-purge")

    assert result.code == 3
    assert result.err.startswith("error: NERVENBAHN_STORE:")
    with sqlite3.connect(log_path) as db:
        assert db.execute("SELECT count(*) FROM access_log").fetchone() == (1,)
