"""`nervenbahn audit public-key | checkpoint | checkpoints | verify` in-process: exit codes and
messages naming what does not hold."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nervenbahn.cli import main


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("NERVENBAHN_ACTOR", "cw-olten-01:caseworker:so-olten")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("NERVENBAHN_ACCESS_LOG", str(tmp_path / "no-access-log.db"))
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, _, err = invoke(
        "case", "open", "--municipality", "2581", "--household-size", "1", "--given-name",
        "Anna", "--family-name", "Muster", "--ahvn13", "756.9217.0769.85", "--birth-date",
        "1980-02-03", "--street", "Hauptgasse 1", "--postal-code", "4600", "--town", "Olten",
    )
    assert code == 0, err
    return invoke


def test_verify_passes_on_an_untouched_store_with_the_auditors_copy(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("audit", "public-key", "--out", str(tmp_path / "pk.txt"))[0] == 0
    assert run("audit", "checkpoint")[0] == 0
    assert run("audit", "checkpoints", "export", str(tmp_path / "copy.jsonl"))[0] == 0
    code, out, _ = run("audit", "verify", "--checkpoints", str(tmp_path / "copy.jsonl"),
                       "--public-key", str(tmp_path / "pk.txt"), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["chains"][0]["records"] == 1 and report["checkpoints"] == 1


def test_verify_exits_4_naming_the_altered_position(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE stored_events SET topic = topic || 'x' WHERE rowid = 1")
    code, out, _ = run("audit", "verify")
    assert code == 4
    assert "first bad position 1" in out


def test_verify_exits_5_on_a_forged_checkpoint(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("audit", "checkpoint")[0] == 0
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE audit_checkpoints SET signature = ?", ("A" * 86 + "==",))
    code, out, _ = run("audit", "verify")
    assert code == 5
    assert "checkpoint #1 (store)" in out and "forged or altered" in out


def test_a_bad_public_key_file_is_refused_naming_it(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pk.txt").write_text("c2hvcnQ=\n")
    code, _, err = run("audit", "verify", "--public-key", str(tmp_path / "pk.txt"))
    assert code == 1
    assert "pk.txt" in err and "32 bytes" in err
