"""`person erase`: unknown ids refused, and a key that a reader keeps in the write-ahead log
reported (exit 4) instead of claimed destroyed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from uuid import UUID

from domain.personal_data import ErasureSubject
from nervenbahn.erasure import files_naming
from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, open_assess_grant

REPO = Path(__file__).resolve().parents[2]
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


AHVN13 = "756.9217.0769.85"
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
"""Root without the capabilities to read and list regardless of mode (util-linux)."""
SEARCH = """
import json, sys
from pathlib import Path
from uuid import UUID
from domain.personal_data import ErasureSubject
from nervenbahn.erasure import files_naming
subject = ErasureSubject(UUID(int=1), sys.argv[2])
print(json.dumps([vars(place) for place in files_naming(Path(sys.argv[1]), subject)]))
"""


def test_what_cannot_be_searched_is_not_reached_never_clean(tmp_path: Path) -> None:
    """Places the search cannot read, for root too: a FIFO (reading would block; nothing can
    be mapped) and a link to a folder outside (not followed). A file reached through a link is
    searched; a dangling link holds no bytes and is not listed."""
    folder, outside = tmp_path / "store", tmp_path / "elsewhere"
    (folder / "inbox").mkdir(parents=True)
    outside.mkdir()
    (folder / "clean.txt").write_text("nothing here\n")
    (folder / "inbox" / "left.xml").write_text(f"<vn>{AHVN13.replace('.', '')}</vn>\n")
    (outside / "export.csv").write_text(f"Quellmatt;{AHVN13}\n")
    os.mkfifo(folder / "pipe")
    (folder / "export.csv").symlink_to(outside / "export.csv")
    (folder / "drop").symlink_to(outside, target_is_directory=True)
    (folder / "gone.db").symlink_to(tmp_path / "deleted.db")

    places = {Path(p.path).name: (p.outcome, p.detail)
              for p in files_naming(folder, ErasureSubject(UUID(int=1), AHVN13))}

    assert places == {
        "left.xml": ("not reached", "still holds the person's AHVN13 in clear"),
        "export.csv": ("not reached", "still holds the person's AHVN13 in clear"),
        "pipe": ("not reached", "a FIFO, not a regular file: cannot be searched"),
        "drop": ("not reached", "a link to a folder: not followed, not searched (search its "
                                "target, or remove the link)"),
    }


def test_a_file_or_folder_the_search_cannot_read_is_not_reached(tmp_path: Path) -> None:
    """A file of mode 000 and a folder of mode 000. Root reads them anyway, so as root the
    search runs without the capabilities that override file modes (`setpriv`), as an operator
    account would. Before, the file counted as clean and the folder was skipped unreported."""
    folder = tmp_path / "store"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "delivery.xml").write_text(AHVN13)
    secret = folder / "secret.txt"
    secret.write_text(f"Quellmatt;{AHVN13}\n")
    (folder / "clean.txt").write_text("nothing here\n")
    os.chmod(secret, 0)
    os.chmod(folder / "locked", 0)
    search = [sys.executable, "-c", SEARCH, str(folder), AHVN13]
    if os.geteuid() == 0:
        search = [*WITHOUT_OVERRIDE, *search]
    try:
        searched = subprocess.run(search, capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        os.chmod(folder / "locked", 0o700)

    assert searched.returncode == 0, searched.stderr
    places = {Path(p["path"]).name: (p["outcome"], p["detail"])
              for p in json.loads(searched.stdout.splitlines()[-1])}  # after the log lines
    assert places == {
        "secret.txt": ("not reached", "cannot be read, not searched: Permission denied"),
        "locked": ("not reached", "folder cannot be listed: Permission denied"),
    }


def test_erase_exits_4_while_a_fifo_in_the_store_folder_cannot_be_searched(
    cli: Cli, tmp_path: Path
) -> None:
    person = _applicant(cli)
    os.mkfifo(tmp_path / "left-by-a-tool")

    erased = cli("--json", "person", "erase", person, "--yes")

    assert erased.code == 4
    places = {p["place"]: p for p in erased.json()["places"]}  # type: ignore[index]
    assert places[str(tmp_path / "left-by-a-tool")]["outcome"] == "not reached"
    assert "FIFO" in places[str(tmp_path / "left-by-a-tool")]["detail"]
    assert places["data key"]["outcome"] == "destroyed"
