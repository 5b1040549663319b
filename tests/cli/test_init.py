"""`nervenbahn init`: the one step that creates a store's keys; every other command only reads
them and, when one is missing, says to run `init` in one line (exit 78)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from nervenbahn.cli import EXIT_NOT_INITIALISED
from tests.cli.conftest import Cli

pytestmark = pytest.mark.keys_not_created


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mode, b"" if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def test_a_command_needing_a_missing_key_says_to_run_init_and_creates_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    keys = Path(os.environ["NERVENBAHN_KEY_DIR"])
    before = _files(tmp_path)

    done = cli("case", "list")

    assert done.code == EXIT_NOT_INITIALISED == 78 and done.out == ""
    errors = [line for line in done.err.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("error: no master key for the store")
    assert "run `nervenbahn init`" in errors[0]
    assert _files(tmp_path) == before and not keys.exists()


def test_init_creates_private_keys_prints_them_and_a_second_run_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    keys = Path(os.environ["NERVENBAHN_KEY_DIR"])

    done = cli("init")

    assert done.code == 0, done.err
    made = sorted(keys.rglob("*"))
    assert sorted(p.name for p in made if p.is_file()) == [
        "master.key", "reporting.key", "signing.key", "store"]
    assert all(str(p) in done.out for p in made)
    assert {stat.S_IMODE(p.stat().st_mode) for p in made if p.is_dir()} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in made if p.is_file()} == {0o600}
    before = _files(keys)

    again = cli("init")

    assert again.code == 0 and "nothing to create" in again.out
    assert _files(keys) == before
    assert cli("case", "list").code == 0


def test_init_answers_in_json(cli: Cli) -> None:
    first = cli("--json", "init").json()
    second = cli("--json", "init").json()

    assert isinstance(first, dict) and len(first["created"]) == 5
    assert second == {"store": first["store"], "created": []}


def test_init_refuses_a_store_that_cannot_be_opened_and_leaves_no_key(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path}")

    done = cli("init")

    assert done.code == 3
    assert f"error: cannot open the store SQLite {tmp_path} (NERVENBAHN_STORE)" in done.err
    assert not Path(os.environ["NERVENBAHN_KEY_DIR"]).exists()


def test_init_on_postgresql_names_every_key_that_is_not_configured(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, master_key: str
) -> None:
    monkeypatch.setenv("NERVENBAHN_STORE", postgres_dsn)
    for variable in ("NERVENBAHN_MASTER_KEY", "NERVENBAHN_REPORTING_KEY",
                     "NERVENBAHN_AUDIT_SIGNING_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)

    refused = cli("init")

    assert refused.code == 3 and refused.out == ""
    line = refused.err.strip()
    assert line.startswith("error: NERVENBAHN_AUDIT_SIGNING_KEY, NERVENBAHN_REPORTING_KEY not set")
    assert "openssl rand -base64 32" in line and "NERVENBAHN_MASTER_KEY" not in line

    for variable in ("NERVENBAHN_REPORTING_KEY", "NERVENBAHN_AUDIT_SIGNING_KEY"):
        monkeypatch.setenv(variable, base64.b64encode(secrets.token_bytes(32)).decode())
    done = cli("init")

    assert done.code == 0 and "its keys are in place or configured" in done.out
