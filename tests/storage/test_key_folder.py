"""Keys of a SQLite store live outside its folder: one key folder per store (made by
`create_keys`, the step of `nervenbahn init`) under
NERVENBAHN_KEY_DIR (default `$XDG_CONFIG_HOME/nervenbahn/keys`, `~/.config/nervenbahn/keys`);
an old installation's key files beside the database keep working, with a warning."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from nervenbahn.config import ConfigError, load_settings
from nervenbahn.keyfiles import create_keys, create_store_keys, store_key_folder

KINDS = {"master": ".key", "signing": ".signing-key", "reporting": ".reporting-key"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_gets_its_keys_in_a_private_folder_outside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "data" / "cases.db"
    env = {"NERVENBAHN_STORE": f"sqlite:///{store}", "NERVENBAHN_KEY_DIR": str(tmp_path / "k")}

    settings = load_settings(env)
    keys = (settings.master_key, settings.signing_key, settings.reporting_key)

    folder = store_key_folder(tmp_path / "k", store)
    assert folder.parent == tmp_path / "k"
    assert {p.name for p in folder.iterdir()} == {"master.key", "signing.key", "reporting.key",
                                                   "store"}
    assert (folder / "store").read_text().strip() == str(store.resolve())
    assert _mode(folder) == 0o700 and all(_mode(p) == 0o600 for p in folder.iterdir())
    assert not store.parent.exists() or list(store.parent.iterdir()) == []
    again = load_settings(env)
    assert keys == (again.master_key, again.signing_key, again.reporting_key)
    assert len({key.get_secret_value() for key in keys if key}) == 3


def test_two_stores_never_share_a_key_folder(tmp_path: Path) -> None:
    first = store_key_folder(tmp_path, tmp_path / "a" / "cases.db")
    second = store_key_folder(tmp_path, tmp_path / "b" / "cases.db")

    assert first != second
    assert first.name.startswith("cases-") and second.name.startswith("cases-")


def test_the_default_key_dir_is_in_the_users_configuration_folder(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cases.db'}"

    xdg = load_settings({"NERVENBAHN_STORE": store, "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    home = load_settings({"NERVENBAHN_STORE": store, "HOME": str(tmp_path / "home")})

    assert xdg.key_dir == tmp_path / "xdg" / "nervenbahn" / "keys"
    assert home.key_dir == tmp_path / "home" / ".config" / "nervenbahn" / "keys"
    create_keys(xdg), create_keys(home)
    assert list(xdg.key_dir.rglob("master.key")) and list(home.key_dir.rglob("master.key"))


def test_key_files_beside_an_old_store_keep_working_with_a_warning_naming_them(
    tmp_path: Path,
) -> None:
    store = tmp_path / "cases.db"
    old = {kind: store.with_suffix(".db" + suffix) for kind, suffix in KINDS.items()}
    for path in old.values():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    env = {"NERVENBAHN_STORE": f"sqlite:///{store}", "NERVENBAHN_KEY_DIR": str(tmp_path / "k")}

    with capture_logs() as logs:
        settings = load_settings(env)
        used = {"master": settings.master_key, "signing": settings.signing_key,
                "reporting": settings.reporting_key}

    for kind, path in old.items():
        key = used[kind]
        assert key is not None and key.get_secret_value() == path.read_text().strip()
    warned = {entry["key_file"]: entry for entry in logs if entry["log_level"] == "warning"}
    assert set(warned) == {str(path) for path in old.values()}
    folder = store_key_folder(tmp_path / "k", store)
    assert warned[str(old["master"])]["move_to"] == str(folder / "master.key")
    assert "mv" in warned[str(old["master"])]["how"]
    assert not (tmp_path / "k").exists()  # nothing new is created beside the old keys


def _not_a_database(tmp: Path) -> Path:
    (tmp / "notes.db").write_text("not a database\n")
    return tmp / "notes.db"


def _under_a_file(tmp: Path) -> Path:
    (tmp / "plain").write_text("x")
    return tmp / "plain" / "cases.db"


BAD_STORES = [
    ("a folder", lambda tmp: tmp, "it is a folder"),
    ("a file that is not a database", _not_a_database, "not a SQLite database"),
    ("a path below a file", _under_a_file, "is not a folder"),
    ("a path where nothing can be created", lambda tmp: Path("/proc/nope/cases.db"),
     "No such file or directory"),
]


@pytest.mark.parametrize(("what", "store", "reason"), BAD_STORES, ids=[b[0] for b in BAD_STORES])
def test_a_store_that_cannot_be_opened_gets_no_key_folder(
    tmp_path: Path, what: str, store: object, reason: str
) -> None:
    path = store(tmp_path)  # type: ignore[operator]
    keys = tmp_path / "keys"

    with pytest.raises(ConfigError) as refused:
        create_keys(load_settings({"NERVENBAHN_STORE": f"sqlite:///{path}",
                                   "NERVENBAHN_KEY_DIR": str(keys)}))

    assert str(refused.value).startswith(f"cannot open the store SQLite {path} (NERVENBAHN_STORE)")
    assert reason in str(refused.value) and "no key was created" in str(refused.value)
    assert not keys.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nervenbahn-probe")] == []


def test_an_empty_file_is_a_new_store_and_gets_its_keys(tmp_path: Path) -> None:
    (tmp_path / "cases.db").touch()
    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'cases.db'}",
           "NERVENBAHN_KEY_DIR": str(tmp_path / "keys")}

    create_keys(load_settings(env))

    assert list((tmp_path / "keys").rglob("master.key"))


@pytest.mark.parametrize("key_dir", ["/proc/nope", "{tmp}/file"])
def test_a_key_dir_that_cannot_be_made_is_a_configuration_error_naming_it(
    tmp_path: Path, key_dir: str
) -> None:
    (tmp_path / "file").write_text("x")
    env = {"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'data' / 'cases.db'}",
           "NERVENBAHN_KEY_DIR": key_dir.format(tmp=tmp_path)}

    refused = r"^NERVENBAHN_KEY_DIR: cannot make or read the master key in .+: (No such|Not a)"
    with pytest.raises(ConfigError, match=refused):
        create_keys(load_settings(env))

    assert not (tmp_path / "data").exists()


_READ_AND_CLOSE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
db.close()
"""
"""A CLI command in a process of its own: opens the store, reads, closes it."""


def _other_process_reads(store: Path) -> str:
    done = subprocess.run([sys.executable, "-c", _READ_AND_CLOSE, str(store)],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_making_a_key_keeps_the_locks_of_a_process_that_has_the_store_open(
    tmp_path: Path,
) -> None:
    """A key made when first needed in a process that has the store open (the tests' `serve`)
    must leave SQLite's locks of that process held: closing any descriptor of the file drops
    them, and a CLI process closing the store then deleted the -wal and -shm files under the
    server, whose later writes no other process saw and whose reads failed with "disk I/O
    error" (tests/bus/test_benefits_pathway.py with serve's announcement)."""
    store = tmp_path / "store.db"
    serve = sqlite3.connect(store, isolation_level=None)
    serve.execute("PRAGMA journal_mode = WAL")  # its SHARED lock is held while it is open
    serve.execute("CREATE TABLE t (x)")
    serve.execute("INSERT INTO t VALUES (1)")

    create_store_keys(store, tmp_path / "keys", ["signing"])
    assert _other_process_reads(store) == "1"  # a CLI command, closing the store at its end

    assert Path(f"{store}-wal").exists() and Path(f"{store}-shm").exists()  # still the server's
    serve.execute("INSERT INTO t VALUES (2)")
    assert _other_process_reads(store) == "2"  # what the server writes, every process reads
    serve.close()
    assert (store_key_folder(tmp_path / "keys", store) / "signing.key").exists()
