"""A demo store made by the previous release (c946418) opens with this one and upgrades in
place: versions are recorded, data reads back as that release showed it, the audit verifies,
and opening it a second time changes nothing. The fixture and how it was made:
`tests/storage/fixtures/README.md`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bus.effects import CONSUMER_BOOKKEEPING
from bus.positions import RELAY_POSITIONS
from bus.positions_sqlite import SQLitePositionStore
from bus.registry_sql import SCHEMA_REGISTRY
from bus.registry_sqlite import SQLiteSchemaRegistry
from connectors._state import CONNECTOR_STATE, StateStore
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.keyfiles import store_key_folder
from nervenbahn.keystores import PERSON_KEYS
from nervenbahn.keystores_sqlite import SQLiteKeyStore
from projections.branch_office import BranchOfficeProjection
from projections.framework import Projection, open_projection_store
from projections.region import RegionProjection
from projections.reporting import ReportingProjection
from projections.storage import READ_MODEL_PROGRESS
from schemas.sql import BASELINE_NOTE, VERSIONS_TABLE, recorded_versions_sqlite

FIXTURE = Path(__file__).parent / "fixtures" / "prev-c946418"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
PROJECTIONS: tuple[Projection, ...] = (
    RegionProjection(), BranchOfficeProjection(), ReportingProjection(None),
)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """The previous release's store copied to tmp, its keys where this release finds them;
    the environment of a CLI run on it."""
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    database = tmp_path / "store" / "nervenbahn.db"
    keys = store_key_folder(tmp_path / "keys", database)
    shutil.copytree(FIXTURE / "keys", keys)
    (keys / "store").write_text(f"{database.resolve()}\n")
    return {**os.environ, "NERVENBAHN_STORE": f"sqlite:///{database}",
           "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"), "NERVENBAHN_LOG_LEVEL": "warning"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """This release's CLI on the store, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "nervenbahn", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def folder(env: dict[str, str]) -> Path:
    return Path(env["NERVENBAHN_STORE"].removeprefix("sqlite:///")).parent


def open_every_store(root: Path) -> None:
    """Open (and close) each store the previous release left, as the services do."""
    database = root / "nervenbahn.db"
    SQLitePositionStore(database).close()
    registry = SQLiteSchemaRegistry(database)
    registry.subjects()
    registry.close()
    SQLiteKeyStore(database).close()
    SQLiteAccessLog(root / "access-log.db").close()
    StateStore(root / "connectors" / "state.db").close()
    for projection in PROJECTIONS:
        open_projection_store(projection, root / "projections" / f"{projection.name}.db").close()


def versions(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return recorded_versions_sqlite(db)
    finally:
        db.close()


def dump(path: Path) -> list[str]:
    """Every table's schema and rows (SQL text), for comparing two opens."""
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_the_previous_releases_store_reads_back_as_it_showed_it(store: dict[str, str]) -> None:
    for case_id, shown in EXPECTED["case_show"].items():
        done = cli(store, "--json", "--actor", EXPECTED["actor"], "case", "show", case_id)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == shown
    done = cli(store, "--json", "--actor", EXPECTED["actor"], "case", "list")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED["case_list"]


def test_the_audit_of_the_upgraded_store_verifies(store: dict[str, str]) -> None:
    open_every_store(folder(store))
    done = cli(store, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def test_opening_records_every_components_version(store: dict[str, str]) -> None:
    root = folder(store)
    assert versions(root / "nervenbahn.db") == {}  # the previous release recorded none
    open_every_store(root)
    assert cli(store, "audit", "verify").returncode == 0
    assert versions(root / "nervenbahn.db") == {
        "audit_checkpoints": 1, "person_keys": PERSON_KEYS.latest,
        "relay_positions": RELAY_POSITIONS.latest,
        "schema_registry": SCHEMA_REGISTRY.latest,
    }
    assert versions(root / "access-log.db") == {"access_log": 1}
    assert versions(root / "connectors" / "state.db") == {
        "connector_state": CONNECTOR_STATE.latest
    }
    for projection in PROJECTIONS:
        assert versions(root / "projections" / f"{projection.name}.db") == {
            "consumer_bookkeeping": CONSUMER_BOOKKEEPING.latest,
            projection.migrations.name: projection.migrations.latest,
            "read_model_progress": READ_MODEL_PROGRESS.latest,
        }
    # Tables the previous release had made are baselines; the relay's and the registry's were
    # never made (the demo ran without the bus), so they are new, as is each read model's
    # progress table (its freshness, added after that release). The key store's moved on
    # (its keys marked when another write finds them).
    assert baselines(root / "nervenbahn.db") == {
        "audit_checkpoints": True, "person_keys": False, "relay_positions": False,
        "schema_registry": False,
    }
    # A component taken as its baseline and then moved on notes its newest step instead.
    for path in [*root.glob("*/*.db"), root / "access-log.db"]:
        moved_on = {name for name, version in versions(path).items() if version > 1}
        made_later = ({"read_model_progress"} - moved_on if path.parent.name == "projections"
                      else set())
        found = baselines(path)
        assert {name for name, baseline in found.items()
                if not baseline and name not in moved_on} == made_later, path


def baselines(path: Path) -> dict[str, bool]:
    """Whether each component's version row records a baseline."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(f"SELECT component, note FROM {VERSIONS_TABLE}")
        return {str(name): str(note).startswith(f"{BASELINE_NOTE}: ") for name, note in rows}
    finally:
        db.close()


def test_a_second_open_changes_nothing(store: dict[str, str]) -> None:
    root = folder(store)
    open_every_store(root)
    assert cli(store, "audit", "verify").returncode == 0
    files = sorted(root.rglob("*.db"))
    before = {path: dump(path) for path in files}
    open_every_store(root)
    assert cli(store, "audit", "verify").returncode == 0
    assert cli(store, "--json", "--actor", EXPECTED["actor"], "case", "list").returncode == 0
    assert {path: dump(path) for path in files} == before


def test_the_previous_releases_rows_are_all_still_there(store: dict[str, str]) -> None:
    root = folder(store)
    counts = {path: _row_counts(path) for path in sorted(root.rglob("*.db"))}
    open_every_store(root)
    for path, tables in counts.items():
        after = _row_counts(path)
        assert {t: after[t] for t in tables} == tables, path.name
    assert tables_with_rows(counts, "stored_events") and tables_with_rows(counts, "access_log")


def tables_with_rows(counts: dict[Path, dict[str, int]], table: str) -> bool:
    return any(tables.get(table, 0) > 0 for tables in counts.values())


def _row_counts(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: db.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        db.close()


def test_the_previous_releases_payment_orders_read_as_version_2(store: dict[str, str]) -> None:
    """Its PaymentOrdered events (version 1, before `held_reason`) are upcast on reading: none
    was held, so none names a reason."""
    db = sqlite3.connect(folder(store) / "nervenbahn.db")
    try:
        (state,) = db.execute(
            "SELECT state FROM payments_events WHERE topic = 'domain.payments:PaymentOrdered' "
            "ORDER BY rowid LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    assert b"held_reason" not in state and b"class_version" not in state
    case_id = json.loads(state)["case_id"]["_data_"]
    done = cli(store, "--json", "--actor", EXPECTED["actor"], "payments", "orders", case_id)
    assert done.returncode == 0, done.stderr
    orders = json.loads(done.stdout)["orders"]
    assert orders and {(o["held"], o["held_reason"]) for o in orders} == {(False, None)}
