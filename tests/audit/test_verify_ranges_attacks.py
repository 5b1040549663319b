"""Attacks on chain verification on all cores (issue 17, `nervenbahn.audit.verify_ranges`): the
chain cut into two ranges (checked one after the other in the test runner's threaded worker;
test_verify_ranges_forked.py runs the same attacks with the second range in a forked process,
as the CLI checks it). One altered byte in the
second range, the last row of the first range deleted (event alone, or event and link), two rows
swapped across the boundary: each is found, and the verdict is the careful single walk's,
finding for finding. A Merkle frontier row altered is not evidence: the next checkpoint does
not trust it and signs the true tree."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing

import pytest

from nervenbahn.audit import verify, verify_ranges
from nervenbahn.audit.checkpoints import write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.config import Settings
from nervenbahn.container import build_service, close_service
from tests.audit.test_tamper import build_store
from tests.audit.test_verify_paths import both_paths, settings
from tests.bus.pipeline import open_supported_case

__all__ = ["settings"]  # the fixture


@pytest.fixture(autouse=True)
def two_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """4-event Merkle blocks, two ranges (the second in a forked process where this process
    is single-threaded)."""
    monkeypatch.setattr(verify_ranges, "BLOCK", 4)
    monkeypatch.setattr(verify_ranges, "PARALLEL_FROM", 0)
    monkeypatch.setattr(verify_ranges, "PROCESSES", 2)


def boundary(settings: Settings) -> int:
    """The position of the first range's last event (the second range starts after it)."""
    db = open_audit_database(settings.store)
    try:
        (table,) = db.chained_tables()
        ranges = verify_ranges._ranges(db, table, db.count(table.chain_table))
    finally:
        db.close()
    assert ranges is not None and len(ranges) == 2
    return ranges[1].after


def flip_a_byte(db: sqlite3.Connection, position: int) -> None:
    (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchone()
    altered = bytearray(state)
    altered[len(altered) // 2] ^= 0x01
    db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (bytes(altered), position))


def delete_event(db: sqlite3.Connection, position: int) -> None:
    db.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))


def delete_event_and_link(db: sqlite3.Connection, position: int) -> None:
    delete_event(db, position)
    db.execute("DELETE FROM stored_events_chain WHERE position = ?", (position,))


def swap_across(db: sqlite3.Connection, position: int) -> None:
    """The first range's last event and the second range's first change places."""
    rows = {
        rowid: rest
        for rowid, *rest in db.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid IN (?, ?)",
            (position, position + 1),
        )
    }
    db.execute("DELETE FROM stored_events WHERE rowid IN (?, ?)", (position, position + 1))
    for rowid, other in ((position, position + 1), (position + 1, position)):
        db.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, "
            "state) VALUES (?, ?, ?, ?, ?)",
            (rowid, *rows[other]),
        )


ATTACKS: dict[str, tuple[Callable[[sqlite3.Connection, int], None], int]] = {
    "a-byte-in-the-second-range": (flip_a_byte, 3),
    "the-first-range's-last-event": (delete_event, 0),
    "the-first-range's-last-event-and-link": (delete_event_and_link, 0),
    "two-rows-across-the-boundary": (swap_across, 0),
}


def attacked(settings: Settings, attack: str) -> int:
    """A store of 12 supported cases with three checkpoints, then `attack` at the boundary
    of its two ranges; the position attacked."""
    build_store(settings, cases_per_batch=4)
    alter, offset = ATTACKS[attack]
    position = boundary(settings) + offset
    assert settings.store.sqlite_path is not None
    with closing(sqlite3.connect(settings.store.sqlite_path)) as db, db:
        alter(db, position)
    return position


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attack_on_either_range_is_found_as_the_single_walk_finds_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    position = attacked(settings, attack)

    quick, careful = both_paths(settings, monkeypatch)

    assert not quick.ok and quick == careful
    assert quick.first_break is not None
    assert quick.first_break.position <= position + 1


def test_an_altered_merkle_frontier_is_not_trusted_by_the_next_checkpoint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = build_store(settings, cases_per_batch=4)
    assert settings.store.sqlite_path is not None
    with closing(sqlite3.connect(settings.store.sqlite_path)) as db, db:
        (frontier,) = db.execute("SELECT frontier FROM audit_merkle_frontiers").fetchone()
        altered = ("0" if frontier[0] != "0" else "1") + frontier[1:]
        db.execute("UPDATE audit_merkle_frontiers SET frontier = ?", (altered,))
    # the altered frontier is what the next checkpoint's tree grows from
    service = build_service(settings)
    audit_db = open_audit_database(settings.store)
    try:
        for n in range(4):
            open_supported_case(service, 9000 + n)
        write_checkpoint(audit_db, key)
        quick = verify.verify_store(audit_db, key.public).to_json()
        with monkeypatch.context() as patched:
            patched.setattr(verify, "_verify_quickly", lambda *_: None)
            careful = verify.verify_store(audit_db, key.public).to_json()
    finally:
        audit_db.close()
        close_service(service)

    # the frontier row is no evidence (verification never reads it) and is not trusted: it
    # does not fold to the root the last checkpoint signed, so the tree is rebuilt from the
    # events and the next checkpoint signs the true root, which both paths confirm
    assert quick["ok"] is True, quick
    assert quick == careful
    with closing(sqlite3.connect(settings.store.sqlite_path)) as db:
        (kept,) = db.execute("SELECT frontier FROM audit_merkle_frontiers").fetchone()
    assert kept != altered
