"""`nervenbahn users add | list | disable | reset` through the real command line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nervenbahn.accounts import UserStore
from tests.cli.conftest import Cli

PASSWORD = "a long enough password"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))


def test_add_with_a_password_from_stdin_stores_only_its_argon2_hash(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, PASSWORD)
    added = cli("users", "add", "anna.meier", "--role", "caseworker", "--organisation",
                "so-olten", "--name", "Anna Meier", "--password-stdin")
    assert added.code == 0, added.err
    assert PASSWORD not in added.out
    raw = (tmp_path / "web-users.db").read_bytes()
    assert PASSWORD.encode() not in raw and b"$argon2id$" in raw
    store = UserStore(tmp_path / "web-users.db")
    assert store.sign_in("anna.meier", PASSWORD, now=datetime.now(UTC)).outcome == "ok"
    assert store.get("anna.meier").created_by.startswith("os:")
    store.close()


def test_add_without_a_password_makes_one_up_and_shows_it_once(cli: Cli, tmp_path: Path) -> None:
    added = cli("--json", "users", "add", "desk.olten", "--role", "branch_office",
                "--organisation", "akso-olten", "--language", "fr")
    assert added.code == 0, added.err
    shown = json.loads(added.out)
    assert shown["language"] == "fr" and len(shown["password"]) >= 20
    listed = cli("--json", "users", "list")
    assert "password" not in listed.out
    assert json.loads(listed.out)[0]["state"] == "active"


@pytest.mark.parametrize(("args", "field"), [
    (["--role", "caseworker", "--organisation", "so-nowhere"], "organisation"),
    (["--role", "branch_office", "--organisation", "so-olten"], "organisation"),
    (["--role", "fund_officer", "--organisation", "somewhere"], "organisation"),
    (["--role", "janitor", "--organisation", "so"], "role"),
    (["--role", "canton", "--organisation", "so", "--language", "it"], "language"),
])
def test_bad_input_is_refused_naming_the_field(cli: Cli, args: list[str], field: str) -> None:
    refused = cli("users", "add", "someone", *args)
    assert refused.code != 0
    assert field in refused.err


def test_a_short_password_and_a_taken_name_are_refused(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "short")
    short = cli("users", "add", "anna", "--role", "canton", "--organisation", "so",
                "--password-stdin")
    assert short.code != 0 and "password" in short.err and "12" in short.err
    assert cli("users", "add", "anna", "--role", "canton", "--organisation", "so").code == 0
    taken = cli("users", "add", "anna", "--role", "canton", "--organisation", "so")
    assert taken.code != 0 and "exists already" in taken.err


def test_disable_ends_sessions_and_only_reset_with_enable_brings_the_account_back(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, PASSWORD)
    cli("users", "add", "anna", "--role", "auditor", "--organisation", "finanzkontrolle",
        "--password-stdin")
    store = UserStore(tmp_path / "web-users.db", lockout_attempts=2)
    now = datetime.now(UTC)
    signed = store.sign_in("anna", PASSWORD, now=now)
    assert signed.token and store.session(signed.token, now=now) is not None
    assert cli("users", "disable", "anna").code == 0
    assert store.session(signed.token, now=now) is None
    assert store.sign_in("anna", PASSWORD, now=now).outcome == "disabled"
    _stdin(monkeypatch, "another long password")
    assert cli("users", "reset", "anna", "--password-stdin").code == 0
    assert store.sign_in("anna", "another long password", now=now).outcome == "disabled"
    _stdin(monkeypatch, "another long password")
    assert cli("users", "reset", "anna", "--password-stdin", "--enable").code == 0
    assert store.sign_in("anna", PASSWORD, now=now).outcome == "refused"
    assert store.sign_in("anna", "another long password", now=now).outcome == "ok"
    store.close()
