"""docs/evolution.md holds: every code block it quotes from a file is in that file as quoted,
its `run` commands run and answer as it says, the release step it describes rebuilds the
committed v2 schema, the refusal it promises happens, and every file it names exists.

The one substitution: `schemas release` and the refusal run on a copy of `schemas/`
(`--schema-dir`), so that the test never writes into the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "evolution.md"
OPENED = "ch.nervenbahn.casework.CaseOpened"
BLOCK = re.compile(r"^```(\w+) evolution(?: source=(\S+)| (run))?\n(.*?)^```\n", re.M | re.S)
NAMED_FILE = re.compile(r"`((?:[\w.-]+/)+[\w.<>-]+\.(?:py|avsc|md|json))`")
NERVENBAHN = str(Path(sys.executable).parent / "nervenbahn")


def blocks() -> list[tuple[str, str | None, bool, str]]:
    """(language, quoted file or None, whether to run it, text) of each evolution block."""
    return [(m[1], m[2], m[3] == "run", m[4]) for m in BLOCK.finditer(DOC.read_text())]


def nervenbahn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NERVENBAHN, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    """A copy of the schema tree, for commands that write."""
    return Path(shutil.copytree(ROOT / "schemas", tmp_path / "schemas"))


def test_every_quoted_block_is_in_its_file_as_quoted() -> None:
    quoted = [(source, text) for _, source, _, text in blocks() if source]
    assert {source for source, _ in quoted} == {
        "domain/events.py", "domain/commands.py", "schemas/case/CaseOpened.avsc"}
    for source, text in quoted:
        assert text in (ROOT / source).read_text(), f"{source} no longer holds:\n{text}"


def test_the_run_blocks_are_the_check_and_the_release() -> None:
    runs = [text.strip() for _, _, run, text in blocks() if run]
    assert runs == ["nervenbahn schemas check", "nervenbahn schemas release"]


def test_the_check_passes_and_the_release_has_nothing_left(schema_copy: Path) -> None:
    checked = nervenbahn("schemas", "check")
    released = nervenbahn("schemas", "release", "--schema-dir", str(schema_copy))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "schemas compatible" in checked.stdout and "not released yet" not in checked.stdout
    assert released.returncode == 0, released.stdout + released.stderr
    assert "nothing to release" in released.stdout


def test_releasing_the_change_again_writes_the_committed_v2_and_the_committed_ids(
    schema_copy: Path,
) -> None:
    # The tree as it was before CaseOpened v2 was released: that release and every later one
    # (versions and catalogue entries) undone; releasing again writes the committed v2 and
    # takes exactly the committed ids. Which record gets which of them follows the release
    # order (case events by name first): event types added since (AdvanceStarted and
    # AdvanceEnded sort before CaseOpened) are released again in the same run, so the ids
    # are compared as a set, each record's entry by record, version and fingerprint.
    catalogue = schema_copy / "catalogue.json"
    document = json.loads(catalogue.read_text())
    undone = load_catalogue().entry(OPENED, 2)
    assert undone is not None
    first = undone.schema_id
    for entry in document["entries"]:
        if entry["id"] >= first:
            name = entry["record"].rpartition(".")[2]
            (schema_copy / "versions" / name / f"v{entry['version']}.avsc").unlink()
    document["entries"] = [e for e in document["entries"] if e["id"] < first]
    catalogue.write_text(json.dumps(document))

    checked = nervenbahn("schemas", "check", "--schema-dir", str(schema_copy))
    released = nervenbahn("schemas", "release", "--schema-dir", str(schema_copy))

    assert "CaseOpened" in checked.stdout.partition("not released yet: ")[2]
    assert "released CaseOpened v2" in released.stdout
    assert (schema_copy / "versions" / "CaseOpened" / "v2.avsc").read_text() == (
        ROOT / "schemas" / "versions" / "CaseOpened" / "v2.avsc").read_text()
    again, committed = load_catalogue(schema_copy), load_catalogue()
    assert {e.schema_id for e in again.entries} == {e.schema_id for e in committed.entries}
    assert ({(e.record, e.version, e.fingerprint) for e in again.entries}
            == {(e.record, e.version, e.fingerprint) for e in committed.entries})


def test_a_new_field_without_default_is_refused_naming_it(schema_copy: Path) -> None:
    path = schema_copy / "case" / "CaseOpened.avsc"
    schema = json.loads(path.read_text())
    field = next(f for f in schema["fields"] if f["name"] == "household_structure")
    del field["default"]
    field["type"] = field["type"][1]
    path.write_text(json.dumps(schema))

    checked = nervenbahn("schemas", "check", "--schema-dir", str(schema_copy))

    assert checked.returncode == 1
    assert "ch.nervenbahn.casework.CaseOpened: household_structure" in checked.stdout


def test_every_file_the_doc_names_exists() -> None:
    named = set(NAMED_FILE.findall(DOC.read_text()))
    commands = {text for _, _, _, text in blocks() if text.startswith("pytest")}
    named |= {word for text in commands for word in text.split() if word.endswith(".py")}
    assert len(named) >= 10
    missing = {name for name in named if "<" not in name
               and not (ROOT / name).exists()}
    assert not missing


def test_the_doc_is_linked_from_the_bus_doc_and_the_readme() -> None:
    for page in (ROOT / "docs" / "bus.md", ROOT / "README.md"):
        assert "evolution.md" in page.read_text(), page
