"""Deleted checkpoints do not go unnoticed: a gap in their numbers is a rejected checkpoint,
and a store with no signed checkpoint at all is verified with a note saying what that proves."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from uuid import UUID

import pytest

from nervenbahn.config import Settings
from tests.audit.cli import Invoke, make_installation

Installation = tuple[Settings, Invoke, UUID]


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> Installation:
    return make_installation(tmp_path, monkeypatch, capsys)


def _verify(run: Invoke) -> tuple[int, dict[str, object]]:
    code, out, _ = run("audit", "verify", "--json")
    return code, json.loads(out)


def _delete_checkpoints(store: Path, where: str) -> int:
    with sqlite3.connect(store) as db:
        return db.execute(f"DELETE FROM audit_checkpoints WHERE {where}").rowcount


def test_a_checkpoint_deleted_between_others_is_rejected_naming_its_number(
    installation: Installation, tmp_path: Path,
) -> None:
    _, run, _ = installation
    for _ in range(3):
        assert run("audit", "checkpoint")[0] == 0
    assert _verify(run)[0] == 0
    assert _delete_checkpoints(tmp_path / "store.db", "sequence = 2") == 1

    code, report = _verify(run)

    assert code == 5, report
    assert [(p["sequence"], "missing" in str(p["reason"]))
            for p in report["checkpoint_problems"]] == [(2, True)]  # type: ignore[attr-defined]
    assert report["checkpoints"] == 2


def test_a_store_without_signed_checkpoints_says_what_its_verification_proves(
    installation: Installation, tmp_path: Path,
) -> None:
    _, run, _ = installation
    code, report = _verify(run)
    assert code == 0
    assert [n for n in report["notes"] if "no signed checkpoint" in n] != []  # type: ignore[attr-defined]

    assert run("audit", "checkpoint")[0] == 0
    assert [n for n in _verify(run)[1]["notes"]  # type: ignore[attr-defined]
            if "no signed checkpoint" in n] == []

    assert _delete_checkpoints(tmp_path / "store.db", "1 = 1") == 1
    code, report = _verify(run)
    assert code == 0  # consistent in itself: only the auditor's copy could tell more
    assert [n for n in report["notes"] if "no signed checkpoint" in n] != []  # type: ignore[attr-defined]
    code, out, _ = run("audit", "verify")
    assert "note: no signed checkpoint vouches for these chains" in " ".join(out.split())
