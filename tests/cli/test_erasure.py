"""`person erase`: unknown ids refused, and a key that a reader keeps in the write-ahead log
reported (exit 4) instead of claimed destroyed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, open_assess_grant

UNKNOWN = "0b5e1d2c-3f4a-4b5c-8d6e-7f8091a2b3c4"

READER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM person_keys").fetchone()
print("reading", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _applicant(cli: Cli) -> str:
    open_assess_grant(cli)
    view = cli("--json", "case", "show", CASE).json()
    assert isinstance(view, dict)
    return str(view["applicant"]["person_id"])


def test_erasing_an_unknown_person_is_refused_naming_the_id_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    _applicant(cli)
    before = _files(tmp_path)

    refused = cli("person", "erase", UNKNOWN, "--yes")

    assert refused.code == 1
    assert UNKNOWN in refused.err and "person_id" in refused.err
    assert _files(tmp_path) == before
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("SELECT count(*) FROM erased_persons").fetchone() == (0,)


def test_a_reader_holding_the_wal_makes_erase_exit_non_zero_until_the_key_is_gone_from_disk(
    cli: Cli, tmp_path: Path
) -> None:
    person = _applicant(cli)
    store = tmp_path / "store.db"
    with sqlite3.connect(store) as db:
        (wrapped,) = db.execute("SELECT wrapped_key FROM person_keys WHERE person_id = ?",
                                (person.replace("-", ""),)).fetchone()
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"

        held = cli("--json", "person", "erase", person, "--yes")

        assert reader.stdin is not None
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.wait(timeout=30) == 0
    finally:
        reader.kill()
    again = cli("--json", "person", "erase", person, "--yes")

    assert held.code == 4, held.out + held.err
    places = {p["place"]: p for p in held.json()["places"]}  # type: ignore[index]
    assert places["data key"]["outcome"] == "not reached"
    assert "write-ahead log" in places["data key"]["detail"]
    assert "incomplete" in held.err
    assert again.code == 0, again.out + again.err
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    assert bytes(wrapped) not in on_disk
    shown = cli("--json", "case", "show", CASE).json()
    assert isinstance(shown, dict) and shown["applicant"]["family_name"] == "[erased]"


def test_a_file_in_the_store_folder_still_holding_the_ahvn13_is_reported_not_reached(
    cli: Cli, tmp_path: Path
) -> None:
    person = _applicant(cli)
    legacy = tmp_path / "legacy-import.jsonl"  # an import file the operator left behind
    legacy.write_text('{"ahvn13": "7569217076985", "family_name": "Quellmatt"}\n')

    erased = cli("--json", "person", "erase", person, "--yes")

    assert erased.code == 4
    places = {p["place"]: p for p in erased.json()["places"]}  # type: ignore[index]
    assert places[str(legacy)]["outcome"] == "not reached"
    assert "AHVN13" in places[str(legacy)]["detail"]
    assert places["data key"]["outcome"] == "destroyed"
