"""Tampering with the benefits store's events (issue 14, table `benefits_events`, a chain of
its own beside the case store's): every altered byte, deleted or reordered row is found by
`nervenbahn audit verify`, which exits 4 naming the chain and the first bad position.

The store holds a case (its own chain, left untouched, must stay intact) and two benefit
applications, four events: A received (position 1), B received (2), A checked (3), A forwarded
(4).
Each trial changes the SQLite file directly, as someone with the file would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nervenbahn.cli import main
from tests.domain.case_desk import person_input

OFFICE = "eva.frei:branch_office:akso-grenchen"
CHAIN = "events:benefits_events"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI on a store with a case and two benefit applications (four benefit events)."""
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_ACTOR", OFFICE)
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG", str(tmp_path / "no-access-log.db"))

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    def ok(*args: str) -> str:
        code, out, err = invoke("--json", *args)
        assert code == 0, err
        return out

    def person(serial: int) -> list[str]:
        return [arg for key, value in person_input(serial).items()
                for arg in (f"--{key.replace('_', '-')}", str(value))]

    ok("--actor", "cw:caseworker:so-olten", "case", "open", "--municipality", "2581",
       "--household-size", "1", *person(1))
    applications = [json.loads(ok("benefits", "receive", "--kind", "el_ahv", "--municipality",
                                  "2546", *person(serial)))["id"] for serial in (2, 3)]
    ok("benefits", "check", applications[0])
    ok("benefits", "forward", applications[0], "--override-reason", "in hospital")
    with sqlite3.connect(tmp_path / "store.db") as db:
        order = db.execute("SELECT originator_id FROM benefits_events ORDER BY rowid").fetchall()
    a, b = (application.replace("-", "") for application in applications)
    assert order == [(a,), (b,), (a,), (a,)]
    return invoke


def _flip_a_state_byte(db: sqlite3.Connection) -> None:
    (state,) = db.execute("SELECT state FROM benefits_events WHERE rowid = 2").fetchone()
    altered = bytearray(state)
    altered[len(altered) // 2] ^= 0x01
    db.execute("UPDATE benefits_events SET state = ? WHERE rowid = 2", (bytes(altered),))


def _swap_two_rows(db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT rowid, topic, state FROM benefits_events WHERE rowid IN (2, 3) "
                      "ORDER BY rowid").fetchall()
    for (rowid, _, _), (_, topic, state) in zip(rows, reversed(rows), strict=True):
        db.execute("UPDATE benefits_events SET topic = ?, state = ? WHERE rowid = ?",
                   (topic, state, rowid))


TAMPERS: dict[str, tuple[Callable[[sqlite3.Connection], object], int]] = {
    "flip one byte of a stored event": (_flip_a_state_byte, 2),
    "alter an event's topic": (lambda db: db.execute(
        "UPDATE benefits_events SET topic = topic || 'x' WHERE rowid = 3"), 3),
    "alter an event's version": (lambda db: db.execute(
        "UPDATE benefits_events SET originator_version = 9 WHERE rowid = 4"), 4),
    "delete a row": (lambda db: db.execute("DELETE FROM benefits_events WHERE rowid = 2"), 2),
    "delete the last row": (lambda db: db.execute(
        "DELETE FROM benefits_events WHERE rowid = 4"), 4),
    "reorder two rows": (_swap_two_rows, 2),
}


def test_an_untouched_store_verifies_with_the_benefits_chain(run: Run) -> None:
    code, out, err = run("audit", "verify", "--json")
    chains = {c["chain"]: c for c in json.loads(out)["chains"]}
    assert code == 0, err
    assert chains[CHAIN]["records"] == 4 and chains["events:stored_events"]["records"] == 1


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampering_with_a_benefit_event_exits_4_naming_the_chain_and_position(
    run: Run, tmp_path: Path, tamper: str
) -> None:
    change, position = TAMPERS[tamper]
    with sqlite3.connect(tmp_path / "store.db") as db:
        change(db)

    code, out, _ = run("audit", "verify", "--json")
    chains = {c["chain"]: c for c in json.loads(out)["chains"]}
    text_code, text, _ = run("audit", "verify")

    assert code == text_code == 4
    assert chains[CHAIN]["first_break"]["position"] == position, chains[CHAIN]
    assert chains["events:stored_events"]["ok"] is True
    assert CHAIN in text and f"first bad position {position}" in text
