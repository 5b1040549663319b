"""Tampering with the benefits store's events (issue 14, table `benefits_events`, a chain of
its own beside the case store's): every altered byte, deleted or reordered row is found by
`nervenbahn audit verify`, which exits 4 naming the chain and the first bad position.

The store holds a case (its own chain, left untouched, must stay intact) and two benefit
applications, four events: A received (position 1), B received (2), A checked (3), A forwarded
(4). Each trial changes the database directly (a SQLite file; a PostgreSQL schema of the test's
own), as someone with access to it would.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from nervenbahn.cli import main
from nervenbahn.config import StoreConfig, load_settings
from tests.domain.case_desk import person_input

OFFICE = "eva.frei:branch_office:akso-grenchen"
CHAIN = "events:benefits_events"
CASE_CHAINS = ("events:stored_events", "events:nervenbahn_events")
"""The case store's chain: its events table on SQLite, on PostgreSQL."""
Run = Callable[..., tuple[int, str, str]]


class Edit:
    """Direct changes to the benefits events table at chain positions, as someone with the
    database would make them: SQLite (`rowid`) or PostgreSQL (`notification_id`)."""

    def __init__(self, execute: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
                 position: str) -> None:
        self._execute = execute
        self._position = position

    def get(self, position: int, column: str) -> Any:
        """A column's value at a position."""
        ((value,),) = self._execute(f"SELECT {column} FROM benefits_events "
                                    f"WHERE {self._position} = ?", (position,))
        return bytes(value) if isinstance(value, memoryview) else value

    def set(self, position: int, **columns: object) -> None:
        """Overwrite columns at a position."""
        assignments = ", ".join(f"{column} = ?" for column in columns)
        self._execute(f"UPDATE benefits_events SET {assignments} WHERE {self._position} = ?",
                      (*columns.values(), position))

    def delete(self, position: int) -> None:
        """Delete the row at a position."""
        self._execute(f"DELETE FROM benefits_events WHERE {self._position} = ?", (position,))


Tamper = Callable[[Edit], None]


@dataclass(frozen=True)
class Store:
    """The CLI on a store with a case and two benefit applications, and a way to change it."""

    run: Run
    change: Callable[[Tamper], None]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Store:
    """The store (SQLite file, or a PostgreSQL schema of the test's own) with a case and two
    benefit applications (four benefit events)."""
    if request.param == "sqlite":
        monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    else:
        monkeypatch.setenv("NERVENBAHN_STORE", request.getfixturevalue("postgres_dsn"))
        for key in ("MASTER_KEY", "AUDIT_SIGNING_KEY", "REPORTING_KEY"):
            monkeypatch.setenv(f"NERVENBAHN_{key}", base64.b64encode(os.urandom(32)).decode())
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

    assert invoke("init")[0] == 0
    ok("--actor", "cw:caseworker:so-olten", "case", "open", "--municipality", "2581",
       "--household-size", "1", *person(1))
    applications = [json.loads(ok("benefits", "receive", "--kind", "el_ahv", "--municipality",
                                  "2546", *person(serial)))["id"] for serial in (2, 3)]
    ok("benefits", "check", applications[0])
    ok("benefits", "forward", applications[0], "--override-reason", "in hospital")
    change = _sqlite_change(tmp_path / "store.db") if request.param == "sqlite" else (
        _postgres_change(load_settings().store))
    order: list[object] = []
    change(lambda edit: order.extend(str(edit.get(n, "originator_id")).replace("-", "")
                                     for n in range(1, 5)))
    a, b = (application.replace("-", "") for application in applications)
    assert order == [a, b, a, a]
    return Store(invoke, change)


def _sqlite_change(path: Path) -> Callable[[Tamper], None]:
    def change(tamper: Tamper) -> None:
        with sqlite3.connect(path) as db:
            tamper(Edit(lambda text, args: db.execute(text, args).fetchall(), "rowid"))
    return change


def _postgres_change(config: StoreConfig) -> Callable[[Tamper], None]:
    def change(tamper: Tamper) -> None:
        with psycopg.connect(config.conninfo(), autocommit=False) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(
                sql.Identifier(config.schema_name or "public")))

            def execute(text: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
                cursor = conn.execute(text.replace("?", "%s").encode(), args)
                return cursor.fetchall() if cursor.description else []

            tamper(Edit(execute, "notification_id"))
    return change


def _flip_a_state_byte(edit: Edit) -> None:
    altered = bytearray(edit.get(3, "state"))
    altered[len(altered) // 2] ^= 0x01
    edit.set(3, state=bytes(altered))


def _swap(edit: Edit) -> None:
    second, third = ((edit.get(n, "topic"), edit.get(n, "state")) for n in (2, 3))
    edit.set(2, topic=third[0], state=third[1])
    edit.set(3, topic=second[0], state=second[1])


TAMPERS: dict[str, tuple[Tamper, int]] = {
    "flip one byte of a stored event": (_flip_a_state_byte, 3),
    "alter an event's topic": (lambda e: e.set(4, topic=e.get(4, "topic") + "x"), 4),
    "alter an event's version": (lambda e: e.set(2, originator_version=9), 2),
    "delete a row": (lambda e: e.delete(3), 3),
    "delete the last row": (lambda e: e.delete(4), 4),
    "reorder two rows": (_swap, 2),
}


def test_an_untouched_store_verifies_with_the_benefits_chain(store: Store) -> None:
    code, out, err = store.run("audit", "verify", "--json")
    benefits, cases = _chains(out)
    assert code == 0, err
    assert benefits["records"] == 4 and cases["records"] == 1


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampering_with_a_benefit_event_exits_4_naming_the_chain_and_position(
    store: Store, tamper: str
) -> None:
    change, position = TAMPERS[tamper]
    store.change(change)

    code, out, _ = store.run("audit", "verify", "--json")
    benefits, cases = _chains(out)
    text_code, text, _ = store.run("audit", "verify")

    assert code == text_code == 4
    assert benefits["first_break"]["position"] == position, benefits
    assert cases["ok"] is True
    assert CHAIN in text and f"first bad position {position}" in text


def _chains(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The benefits chain and the case chain of `audit verify --json`."""
    chains = {c["chain"]: c for c in json.loads(out)["chains"]}
    return chains[CHAIN], next(chains[name] for name in CASE_CHAINS if name in chains)
