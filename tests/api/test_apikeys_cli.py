"""`nervenbahn apikeys add | list | revoke` through the real command line."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.cli import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:
    """`nervenbahn ARGS…` with a store in tmp_path (keys in its folder unless overridden)."""
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.delenv("NERVENBAHN_API_KEYS", raising=False)
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def test_add_prints_the_key_once_and_the_file_holds_only_its_hash(
    cli: Cli, tmp_path: Path
) -> None:
    added = cli("apikeys", "add", "--consumer", "olten-desk", "--scope",
                "branch_office:akso-olten")
    key = added.out.strip().splitlines()[-1]
    listed = cli("apikeys", "list")
    stored = (tmp_path / "api-keys.json").read_text()

    assert added.code == 0, added.err
    assert len(key) >= 43
    assert key not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    assert listed.code == 0
    assert "olten-desk" in listed.out and "branch_office:akso-olten" in listed.out
    assert key not in listed.out and hashlib.sha256(key.encode()).hexdigest() not in listed.out


def test_json_output_and_the_key_file_from_the_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_API_KEYS", str(tmp_path / "elsewhere" / "keys.json"))

    added = json.loads(cli("--json", "apikeys", "add", "--consumer", "statistik",
                           "--scope", "canton").out)
    listed = json.loads(cli("--json", "apikeys", "list").out)

    assert (added["consumer"], added["scope"]) == ("statistik", "canton")
    assert [(c["consumer"], c["scope"]) for c in listed] == [("statistik", "canton")]
    assert "key" not in listed[0]
    assert (tmp_path / "elsewhere" / "keys.json").exists()


def test_revoke_removes_the_consumer(cli: Cli, tmp_path: Path) -> None:
    cli("apikeys", "add", "--consumer", "olten", "--scope", "region:so-olten")
    cli("apikeys", "add", "--consumer", "audit", "--scope", "auditor")

    revoked = cli("apikeys", "revoke", "olten")
    listed = json.loads(cli("--json", "apikeys", "list").out)

    assert revoked.code == 0 and "revoked" in revoked.out
    assert [c["consumer"] for c in listed] == ["audit"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("add", "--consumer", "x", "--scope", "branch_office:akso-atlantis"),
         "branch office 'akso-atlantis' does not exist"),
        (("add", "--consumer", "x", "--scope", "region:so-atlantis"),
         "social region 'so-atlantis' does not exist"),
        (("add", "--consumer", "x", "--scope", "mayor"), "unknown scope kind 'mayor'"),
        (("revoke", "nobody"), "no consumer 'nobody' has a key"),
    ],
)
def test_refusals_are_one_line_with_exit_code_1(
    cli: Cli, tmp_path: Path, args: tuple[str, ...], complaint: str
) -> None:
    refused = cli("apikeys", *args)

    assert refused.code == 1
    assert complaint in refused.err
    assert not (tmp_path / "api-keys.json").exists()


def test_a_second_key_for_the_same_consumer_is_refused(cli: Cli) -> None:
    cli("apikeys", "add", "--consumer", "olten", "--scope", "canton")

    again = cli("apikeys", "add", "--consumer", "olten", "--scope", "auditor")

    assert again.code == 1 and "already has a key" in again.err


def test_add_gives_a_bus_reader_key_whose_scope_takes_no_id(cli: Cli, tmp_path: Path) -> None:
    added = json.loads(cli("--json", "apikeys", "add", "--consumer", "vendor-app",
                           "--scope", "bus_reader").out)
    refused = cli("apikeys", "add", "--consumer", "other", "--scope", "bus_reader:x")

    assert added["scope"] == "bus_reader"
    registry = ApiKeyRegistry(tmp_path / "api-keys.json")
    consumer = registry.authenticate(added["key"])
    assert consumer is not None and consumer.scope == Scope("bus_reader")
    assert refused.code == 1 and "takes no id" in refused.err


def test_who_added_and_revoked_a_key_is_listed_and_kept_in_the_history(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = f"os:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    monkeypatch.setenv("USER", "someone-else")  # claimed by the environment: not taken
    cli("--actor", "admin-so:administrator:so-canton", "apikeys", "add", "--consumer", "olten",
        "--scope", "region:so-olten")
    cli("apikeys", "add", "--consumer", "audit", "--scope", "auditor")  # no actor declared

    listed = json.loads(cli("--json", "apikeys", "list").out)
    revoked = cli("--actor", "it-ops:administrator:so-canton", "apikeys", "revoke", "olten")
    history = json.loads(cli("--json", "apikeys", "history").out)
    shown = cli("apikeys", "history")

    assert revoked.code == 0, revoked.err
    assert [(c["consumer"], c["created_by"]) for c in listed] == [
        ("olten", f"{identity} as admin-so:administrator:so-canton"), ("audit", identity)]
    assert [(h["action"], h["consumer"], h["scope"], h["identity"], h["actor"])
            for h in history] == [
        ("added", "olten", "region:so-olten", identity, "admin-so:administrator:so-canton"),
        ("added", "audit", "auditor", identity, None),
        ("revoked", "olten", "region:so-olten", identity, "it-ops:administrator:so-canton"),
    ]
    assert shown.code == 0 and "revoked" in shown.out and "it-ops" in shown.out
