"""`nervenbahn import` as a migration step, and the identity every command records: an import
needs an administrator, is refused on a store in live use unless forced with a reason, and
every event it records carries the importer, the import time, the file and its SHA-256; a live
command records the operating-system user beside the declared actor (docs/import.md,
docs/audit.md)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_cli import CASE, legacy_records, open_assess_grant

LEGACY_CASE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ADMINISTRATOR = "admin-so:administrator:so-canton"
LEGACY_ACTOR = {"user_id": "legacy", "role": "caseworker", "organisation": "so-olten"}
OS_IDENTITY = f"os:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
"""What this test process is established as (its uid's user name, not $USER)."""


def legacy_file(folder: Path) -> Path:
    """Two records of one case from the previous system (recorded in 2025, a caseworker)."""
    records = legacy_records(LEGACY_CASE)
    path = folder / "legacy-olten.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def history(cli: Cli, case_id: str) -> list[dict[str, Any]]:
    shown = cli("--actor", ADMINISTRATOR, "--json", "case", "history", case_id)
    assert shown.code == 0, shown.err
    entries = shown.json()
    assert isinstance(entries, list)
    return entries


def error_line(err: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(("actor", "named"), [
    ("cw-olten-01:caseworker:so-olten", "actor.role: an import is a migration step for an "
     "administrator, not for a caseworker (cw-olten-01)"),
    ("sv-olten:supervisor:so-olten", "actor.role: an import is a migration step for an "
     "administrator, not for a supervisor"),
    ("admin-so:wizard:so-canton", "actor.role: "),
])
def test_an_import_without_administrator_identity_is_refused_and_records_nothing(
    cli: Cli, tmp_path: Path, actor: str, named: str
) -> None:
    path = legacy_file(tmp_path)

    refused = cli("--actor", actor, "import", str(path))

    assert refused.code == 1
    assert named in error_line(refused.err)
    assert cli("--actor", ADMINISTRATOR, "case", "history", LEGACY_CASE).code == 1  # not found


def test_an_import_without_any_declared_actor_is_refused_naming_the_actor(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NERVENBAHN_ACTOR")

    refused = cli("import", str(legacy_file(tmp_path)))

    assert refused.code == 1
    assert "actor: set --actor USER:ROLE:ORGANISATION" in error_line(refused.err)
    assert cli("--actor", ADMINISTRATOR, "case", "history", LEGACY_CASE).code == 1


def test_an_accepted_import_carries_importer_and_file_digest_on_every_event(
    cli: Cli, tmp_path: Path
) -> None:
    path = legacy_file(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    before = datetime.now(UTC)

    imported = cli("--actor", ADMINISTRATOR, "--json", "import", str(path))
    entries = history(cli, LEGACY_CASE)

    assert imported.code == 0, imported.err
    assert imported.json()["file_sha256"] == digest  # type: ignore[index]
    assert [e["event"] for e in entries] == ["CaseOpened", "AssessmentCompleted"]
    for entry in entries:
        origin = entry["import_origin"]
        assert entry["imported"] is True
        assert entry["actor"] == LEGACY_ACTOR  # the record's claim stays what it was
        assert entry["recorded_by"] == OS_IDENTITY
        assert origin["importer"] == {"user_id": "admin-so", "role": "administrator",
                                      "organisation": "so-canton"}
        assert (origin["file_name"], origin["file_sha256"]) == ("legacy-olten.jsonl", digest)
        assert before <= datetime.fromisoformat(origin["imported_at"]) <= datetime.now(UTC)
        assert origin["forced_reason"] is None
        assert entry["source"].startswith("imported ") and digest in entry["source"]


def test_the_audit_state_shows_who_imported_and_who_recorded(cli: Cli, tmp_path: Path) -> None:
    path = legacy_file(tmp_path)
    assert cli("--actor", ADMINISTRATOR, "import", str(path)).code == 0

    state = cli("--actor", ADMINISTRATOR, "--json", "audit", "state", LEGACY_CASE,
                "--as-of", "2025-12-31").json()
    shown = cli("--actor", ADMINISTRATOR, "audit", "state", LEGACY_CASE, "--as-of",
                "2025-12-31")

    assert isinstance(state, dict)
    assert [(r["version"], r["recorded_by"]) for r in state["recorded"]] == [
        (1, OS_IDENTITY), (2, OS_IDENTITY)]
    assert all("by admin-so/administrator/so-canton from legacy-olten.jsonl" in r["source"]
               for r in state["recorded"])
    assert shown.code == 0 and "Recorded by" in shown.out and OS_IDENTITY in shown.out


def test_an_import_into_a_store_with_live_events_is_refused_without_force(
    cli: Cli, tmp_path: Path
) -> None:
    open_assess_grant(cli)  # live use has begun
    path = legacy_file(tmp_path)

    refused = cli("--actor", ADMINISTRATOR, "import", str(path))

    assert refused.code == 1
    told = error_line(refused.err)
    assert "force: the store already holds live (not imported) events" in told
    assert "[rule: import-before-live-use]" in told
    assert cli("--actor", ADMINISTRATOR, "case", "history", LEGACY_CASE).code == 1


def test_a_forced_import_records_its_reason_on_every_event(cli: Cli, tmp_path: Path) -> None:
    open_assess_grant(cli)
    path = legacy_file(tmp_path)

    forced = cli("--actor", ADMINISTRATOR, "import", str(path), "--force", "--reason",
                 "late file of the Olten office (ticket 4711)")

    assert forced.code == 0, forced.err
    reasons = [e["import_origin"]["forced_reason"] for e in history(cli, LEGACY_CASE)]
    assert reasons == ["late file of the Olten office (ticket 4711)"] * 2


@pytest.mark.parametrize(("args", "field"), [
    (("--force",), "reason"),
    (("--reason", "why not"), "force"),
    (("--force", "--reason", "  "), "reason: a forced import needs a reason"),
])
def test_force_and_reason_go_together(
    cli: Cli, tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    refused = cli("--actor", ADMINISTRATOR, "import", str(legacy_file(tmp_path)), *args)

    assert refused.code == 1
    assert f"{field}" in error_line(refused.err)
    assert cli("--actor", ADMINISTRATOR, "case", "history", LEGACY_CASE).code == 1


def test_a_live_command_records_the_operating_system_user_beside_the_declared_actor(
    cli: Cli,
) -> None:
    open_assess_grant(cli)

    entries = history(cli, CASE)

    assert [e["recorded_by"] for e in entries] == [OS_IDENTITY] * 3
    assert {e["actor"]["user_id"] for e in entries} == {"cw-olten-01"}
    assert [e["source"] for e in entries] == ["live"] * 3
    assert all(e["import_origin"] is None for e in entries)
