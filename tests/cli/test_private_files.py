"""Everything nervenbahn creates is private to its owner: folders 0700, files 0600, with the
common umask 022 — through the CLI (a demo-like run touching every kind of file) and through
the library alone (no CLI umask to lean on)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from connectors.host import ConnectorHost, ConnectorSpec
from domain.commands import swiss_today
from nervenbahn.config import load_settings
from nervenbahn.container import build_payment_service, build_service, close_service, private_files
from nervenbahn.private import private_file, private_folder, write_private
from tests.cli.conftest import Cli
from tests.connectors.test_population_register_source import DATA, DIES, _open


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask most shells start with; restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _too_open(*folders: Path) -> list[str]:
    """Every path under `folders` that its group or others may read, write or enter."""
    found = []
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink() and mode & 0o077:
                found.append(f"{path} {mode:o}")
    return found


def _key_dir() -> Path:
    return Path(os.environ["NERVENBAHN_KEY_DIR"])


@pytest.mark.slow
@pytest.mark.usefixtures("umask_022")
def test_a_demo_run_creates_no_file_or_folder_others_can_read(cli: Cli, tmp_path: Path) -> None:
    quarter = f"{swiss_today().year}Q{(swiss_today().month - 1) // 3 + 1}"
    assert cli("demo", "--households", "30", "--reset").code == 0
    assert cli("projections", "rebuild", "reporting").code == 0
    assert cli("report", "quarterly", quarter, "--out", str(tmp_path / "reports")).code == 0
    assert cli("connectors", "status").code == 0

    assert os.umask(0o022) == 0o022  # the CLI restores the caller's umask
    assert (tmp_path / "outbox" / "payments").is_dir() and (tmp_path / "broker").is_dir()
    assert list((tmp_path / "projections").glob("*.db"))
    assert list(_key_dir().rglob("master.key"))
    assert _too_open(tmp_path, _key_dir()) == []


@pytest.mark.usefixtures("umask_022")
def test_the_library_alone_creates_private_stores_keys_and_connector_files(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store" / "cases.db"
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{store}",
                              "NERVENBAHN_KEY_DIR": str(tmp_path / "keys")})
    service = build_service(settings)
    inbox = tmp_path / "store" / "inbox"
    inbox.mkdir(mode=0o700)  # the register's drop folder, the operator's to set up
    write_private(inbox / "0002-death.xml", (DATA / "0002-death.xml").read_bytes())
    try:
        _open(service, DIES, 2581)
        build_payment_service(settings, service)
        assert settings.signing_key and settings.reporting_key
        spec = ConnectorSpec("register", "source",
                             "connectors.population_register:RegisterSource",
                             {"inbox": str(inbox)}, base=tmp_path)
        host = ConnectorHost({"register": spec}, service, tmp_path / "store" / "connectors",
                                files=private_files())
        assert host.run("register", until_idle=True).items == 1
        host.close()
    finally:
        close_service(service)

    assert {p.name for p in store.parent.iterdir()} >= {"cases.db", "connectors", "inbox"}
    assert list((tmp_path / "keys").rglob("signing.key"))
    assert _too_open(tmp_path / "store", tmp_path / "keys") == []


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_helpers_set_the_mode_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        folder = private_folder(tmp_path / "a" / "b")
        database = private_file(folder / "c.db")
        written = write_private(tmp_path / "a" / "d.txt", "text")
        loose = tmp_path / "loose.db"
        loose.write_bytes(b"old")
        os.chmod(loose, 0o644)
        private_file(loose)
    finally:
        os.umask(previous)

    assert _too_open(tmp_path / "a") == []
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600 and loose.read_bytes() == b"old"
    assert database.read_bytes() == b"" and written.read_text() == "text"


def test_an_existing_store_folder_others_can_read_is_warned_about_and_left_as_is(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "old-release"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)  # as an earlier release made it under umask 022
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{folder / 'cases.db'}",
                              "NERVENBAHN_KEY_DIR": str(tmp_path / "keys")})
    with structlog.testing.capture_logs() as logs:
        close_service(build_service(settings))

    warned = [e for e in logs if e.get("folder") == str(folder)]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert warned[0]["fix"] == f"chmod -R go-rwx {folder}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # the operator decides
    assert stat.S_IMODE((folder / "cases.db").stat().st_mode) == 0o600


def test_a_private_store_folder_is_not_warned_about(tmp_path: Path) -> None:
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{tmp_path / 's' / 'cases.db'}",
                              "NERVENBAHN_KEY_DIR": str(tmp_path / "keys")})
    private_folder(tmp_path / "s")
    with structlog.testing.capture_logs() as logs:
        close_service(build_service(settings))

    assert [e for e in logs if "fix" in e] == []


_TAKE_EXCLUSIVE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    db.execute("BEGIN EXCLUSIVE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("taken")
"""


def test_making_an_open_database_private_keeps_this_process_s_locks_on_it(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it; SQLite's
    locks are such locks. `private_file` on a database this process reads must not let another
    process take the write lock under that read."""
    path = tmp_path / "store.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = DELETE")  # its locks on the file itself
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM t").fetchone()  # a read: the SHARED lock is held

    private_file(path)
    other = subprocess.run([sys.executable, "-c", _TAKE_EXCLUSIVE, str(path)],
                           capture_output=True, text=True, timeout=60, check=True)

    assert other.stdout.strip() == "database is locked"
    db.execute("COMMIT")
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
