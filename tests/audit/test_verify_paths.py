"""The quick path of verification (one joined read) and the careful walk agree on an intact
store, and the quick path never vouches for a store the careful walk finds broken."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from pathlib import Path

import pytest

from nervenbahn.audit import verify, verify_ranges
from nervenbahn.audit.checkpoints import CheckpointStore, SigningKey
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.hashing import ChainVerification
from nervenbahn.config import Settings, load_settings
from tests.audit.test_tamper import build_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })


@pytest.fixture(params=[False, True], ids=["one-range", "in-ranges"])
def cut(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Verified in one range, or cut into three (4-event Merkle blocks; two of the ranges in
    other processes where this process is single-threaded), as a long chain is on every
    core."""
    if request.param:
        monkeypatch.setattr(verify_ranges, "BLOCK", 4)
        monkeypatch.setattr(verify_ranges, "PARALLEL_FROM", 0)
        monkeypatch.setattr(verify_ranges, "PROCESSES", 3)
    return bool(request.param)


def both_paths(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[
        ChainVerification, ChainVerification]:
    public = SigningKey.from_seed(settings.signing_key.get_secret_value()).public
    db = open_audit_database(settings.store)
    try:
        quick = verify.verify_store(db, public).chains[0]
        with monkeypatch.context() as patched:
            patched.setattr(verify, "_verify_quickly", lambda *_: None)
            careful = verify.verify_store(db, public).chains[0]
    finally:
        db.close()
    return quick, careful


def test_both_paths_give_the_same_answer_on_an_intact_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    _, checkpoints = build_store(settings, cases_per_batch=4)

    quick, careful = both_paths(settings, monkeypatch)

    assert quick.ok and quick == careful
    assert the_quick_path_answered(settings)
    assert quick.records == checkpoints[-1] and quick.checkpoints_checked == 3


def the_quick_path_answered(settings: Settings) -> bool:
    """Whether the quick path gave a verdict itself (rather than leaving it to the walk)."""
    db = open_audit_database(settings.store)
    try:
        (table,) = db.chained_tables()
        checkpoints = CheckpointStore(db).all()
        heads = [(cp.sequence, cp.chains[table.chain], cp.created_at) for cp in checkpoints]
        trees = [(cp.sequence, cp.chains[table.chain], cp.trees[table.chain])
                 for cp in checkpoints]
        assert trees
        return verify._verify_quickly(db, table, heads, trees) is not None
    finally:
        db.close()


def test_the_quick_path_does_not_vouch_for_an_altered_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    _, checkpoints = build_store(settings, cases_per_batch=4)
    assert settings.store.sqlite_path is not None
    with sqlite3.connect(settings.store.sqlite_path) as db:
        db.execute("UPDATE stored_events SET state = state || x'00' WHERE rowid = 5")

    quick, careful = both_paths(settings, monkeypatch)

    assert not quick.ok and quick == careful
    assert quick.first_break is not None and quick.first_break.position == 5
    assert checkpoints[-1] > 5
