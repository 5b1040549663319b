"""Every query command turns red on an integrity problem: one byte of a stored event altered in
the SQLite file (an amount in a case's event, or in a payment order), and each command that
would show something resting on it exits 4, as `audit verify` does, naming the position and
`audit verify`, and shows nothing. The same commands answer (exit 0) on the intact store."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from uuid import UUID

import pytest

from domain.commands import swiss_today
from nervenbahn.audit.database import AuditDatabase, open_audit_database
from nervenbahn.audit.read_check import case_problems
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.audit.cli import Invoke, make_installation
from tests.bus.pipeline import open_supported_case

CASEWORKER = ("--actor", "cw-olten-01:caseworker:so-olten")
AUDITOR = ("--actor", "fk.meier:auditor:so-finanzkontrolle")
ADMIN = ("--actor", "pay.office:administrator:so-canton")
CONTROL = ("--actor", "pay.control:administrator:so-canton")

CASE_QUERIES = {
    "case show": (*CASEWORKER, "case", "show", "{id}"),
    "case show --as-of": (*CASEWORKER, "case", "show", "{id}", "--as-of", "2099-01-01"),
    "case history": (*AUDITOR, "case", "history", "{id}"),
    "case list": (*AUDITOR, "case", "list"),
    "audit state": (*AUDITOR, "audit", "state", "{id}", "--as-of", "2099-01-01"),
    "audit budget": (
        *AUDITOR,
        "audit",
        "budget",
        "{id}",
        "--month",
        "{month}",
        "--as-known-at",
        "2099-01-01",
    ),
    "audit diff": (
        *AUDITOR,
        "audit",
        "diff",
        "{id}",
        "--month",
        "{month}",
        "--known-at",
        "2098-01-01",
        "--compared-to",
        "2099-01-01",
    ),
    "audit case": (
        *AUDITOR,
        "audit",
        "case",
        "{id}",
        "--as-of",
        "2099-01-01",
        "--out",
        "{dir}/report.html",
    ),
    "audit extract": (*AUDITOR, "audit", "extract", "live", "--out", "{dir}/extract.csv"),
    "payments orders": (*AUDITOR, "payments", "orders", "{id}"),
}
"""The query commands (actor, command, arguments) that rest on the case store."""
PAYMENT_QUERIES = ("payments orders", "payments runs", "audit case", "audit extract")
"""Those that rest on the payments store."""
ALL = {**CASE_QUERIES, "payments runs": (*AUDITOR, "payments", "runs")}


@pytest.fixture
def installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Settings, Invoke, UUID]:
    """Two supported cases with payout accounts, this month's payment run recorded."""
    settings, run, case_id = make_installation(tmp_path, monkeypatch, capsys)
    _, out, _ = run(*ADMIN, "--json", "case", "list")
    for listed in re.findall(r'"case_id": "([0-9a-f-]{36})"', out):
        assert (
            run(
                *ADMIN,
                "payments",
                "account",
                listed,
                "--iban",
                "CH9300762011623852957",
                "--holder",
                "N. Beispiel",
            )[0]
            == 0
        )
    ran = run(*ADMIN, "payments", "run", f"{swiss_today():%Y-%m}")
    assert ran[0] == 0, ran[2]
    return settings, run, case_id


def _query(run: Invoke, name: str, case_id: UUID, folder: Path) -> tuple[int, str, str]:
    """Run query `name` of `ALL`: its case, folder and this month (asked now, not at
    collection: a run crossing the end of a month would ask of a month without payments)."""
    month = f"{swiss_today():%Y-%m}"
    return run(*(a.replace("{id}", str(case_id)).replace("{dir}", str(folder))
                 .replace("{month}", month) for a in ALL[name]))


def _alter_amount(store: Path, table: str, where: str) -> int:
    """Change one digit of an amount in the state of the first event matching `where`,
    leaving it decodable (a silent change, not a garbled one); its position."""
    with sqlite3.connect(store) as db:
        position, state = db.execute(
            f"SELECT rowid, state FROM {table} WHERE {where} ORDER BY rowid LIMIT 1"
        ).fetchone()
        altered = re.sub(
            rb'"(\d)(\d*\.\d\d)"',
            lambda m: b'"' + str((int(m.group(1)) % 9) + 1).encode() + m.group(2) + b'"',
            bytes(state),
            count=1,
        )
        assert altered != bytes(state), "no amount found in the event's stored state"
        db.execute(f"UPDATE {table} SET state = ? WHERE rowid = ?", (altered, position))
    return int(position)


@pytest.mark.parametrize("name", sorted(ALL))
def test_each_query_answers_on_the_intact_store(
    installation: tuple[Settings, Invoke, UUID],
    tmp_path: Path,
    name: str,
) -> None:
    _, run, case_id = installation
    code, _out, err = _query(run, name, case_id, tmp_path)
    assert code == 0, err


def test_each_query_on_an_altered_case_event_exits_4_and_shows_nothing(
    installation: tuple[Settings, Invoke, UUID],
    tmp_path: Path,
) -> None:
    _, run, case_id = installation
    position = _alter_amount(
        tmp_path / "store.db",
        "stored_events",
        f"originator_id = '{case_id.hex}' AND topic LIKE '%SupportGranted'",
    )
    outcomes = {name: _query(run, name, case_id, tmp_path) for name in CASE_QUERIES}
    red = {name: code for name, (code, _, _) in outcomes.items()}
    assert red == dict.fromkeys(CASE_QUERIES, 4)
    for name, (_, out, err) in outcomes.items():
        if name != "audit case":  # the report is written, red first (test_case_report_verdict)
            assert f"position {position}" in err and "nervenbahn audit verify" in err, name
            assert str(case_id) not in out and "CHF" not in out, name
    assert not (tmp_path / "extract.csv").exists()


def test_each_query_on_an_altered_payment_order_exits_4(
    installation: tuple[Settings, Invoke, UUID],
    tmp_path: Path,
) -> None:
    _, run, case_id = installation
    position = _alter_amount(
        tmp_path / "store.db", "payments_events", "topic LIKE '%PaymentOrdered'"
    )
    outcomes = {name: _query(run, name, case_id, tmp_path) for name in PAYMENT_QUERIES}
    assert {name: code for name, (code, _, _) in outcomes.items()} == dict.fromkeys(
        PAYMENT_QUERIES, 4
    )
    for name, (_, _out, err) in outcomes.items():
        assert f"position {position}" in err or name == "audit case", name
    assert _query(run, "audit state", case_id, tmp_path)[0] == 0  # the case's own events hold


def test_a_deleted_event_of_a_case_is_a_gap_in_its_versions(
    installation: tuple[Settings, Invoke, UUID],
    tmp_path: Path,
) -> None:
    _, run, case_id = installation
    with sqlite3.connect(tmp_path / "store.db") as db:  # the event only: its link stays
        (position,) = db.execute(
            "SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (case_id.hex,),
        ).fetchone()
        db.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
    code, out, err = _query(run, "case history", case_id, tmp_path)
    assert code == 4
    assert f"case {case_id} has no event version 2 (the next stored is 3)" in err
    assert out == ""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path, master_key: str) -> Settings:
    """An empty store on SQLite or PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_dsn")
    )
    return load_settings({"NERVENBAHN_STORE": url, "NERVENBAHN_MASTER_KEY": master_key})


def test_a_case_check_finds_the_altered_event_on_either_backend(store: Settings) -> None:
    service = build_service(store)
    try:
        case_id, other = open_supported_case(service, 1), open_supported_case(service, 2)
        table = str(service.recorder.events_table_name)  # type: ignore[attr-defined]
    finally:
        close_service(service)
    db = open_audit_database(store.store)
    try:
        assert case_problems(db, case_id, table) == []
        position = int(db.fetch(f"SELECT MAX({_position(db)}) FROM {table}")[0][0])
        (state,) = db.fetch(
            f"SELECT state FROM {table} WHERE {_position(db)} = {db.placeholder}",
            (position,),
        )[0]
        altered = bytes(state).replace(b'"imported":false', b'"imported":true ', 1)
        assert altered != bytes(state)
        db.execute(
            f"UPDATE {table} SET state = {db.placeholder} WHERE {_position(db)} = {db.placeholder}",
            (altered, position),
        )
        assert case_problems(db, case_id, table) == []  # the other case's event was altered
        assert case_problems(db, other, table) == [
            f"events:{table}: position {position} (case {other} v3): its stored bytes do not "
            "match its hash-chain link (altered after recording)"
        ]
    finally:
        db.close()


def _position(db: AuditDatabase) -> str:
    return "rowid" if db.dense_positions else "notification_id"
