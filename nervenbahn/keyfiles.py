"""The key files of a SQLite store: where they live, how they are read, and the explicit step
that creates them.

A SQLite store's master, signing and reporting keys live outside the store folder, in a key
folder of their own (`<key dir>/<file stem>-<hash of the store's absolute path>`, 0700), so that
one backup never holds both the data and the key that opens it. Reading a key never creates it
(`stored_key`: KeyMissingError telling the user to run `nervenbahn init`); `create_keys` is the
step `nervenbahn init` and `nervenbahn demo` take. The settings model (`nervenbahn.config`)
reads keys through this module; a configured key (NERVENBAHN_*_KEY / _FILE) is never a file
here.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import stat
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from nervenbahn.config import ConfigError, Environment, KeyMissingError, decode_key
from nervenbahn.private import create_private, private_folder, write_private

if TYPE_CHECKING:
    from nervenbahn.config import Settings

__all__ = [
    "create_keys",
    "create_store_keys",
    "default_key_dir",
    "store_key_folder",
    "stored_key",
]

log = structlog.get_logger("nervenbahn.keyfiles")

_KINDS = ("master", "signing", "reporting")
_OLD_SUFFIXES = {"master": ".key", "signing": ".signing-key", "reporting": ".reporting-key"}
"""The key files of the old layout, beside the SQLite database: `<store>.key` and so on."""


def default_key_dir(env: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/nervenbahn/keys`, else `$HOME/.config/nervenbahn/keys`."""
    config_home = env.get("XDG_CONFIG_HOME", "").strip()
    if config_home:
        return Path(config_home) / "nervenbahn" / "keys"
    home = env.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".config" / "nervenbahn" / "keys"


def store_key_folder(key_dir: Path, sqlite_path: Path) -> Path:
    """The key folder of one SQLite store: `<key dir>/<file stem>-<hash of its absolute
    path>`, so that two stores never share keys."""
    absolute = sqlite_path.resolve()
    digest = sha256(str(absolute).encode("utf-8")).hexdigest()[:16]
    return key_dir / f"{absolute.stem}-{digest}"


def create_keys(settings: Settings) -> list[Path]:
    """The explicit step that makes a SQLite store's missing key files (`nervenbahn init`,
    `nervenbahn demo`): its key folder (0700, with a `store` file naming whose keys they
    are) and a `<kind>.key` (0600, 32 random bytes) for each of the master, signing and
    reporting keys that is neither configured nor in the old layout beside the database.
    Idempotent; returns what it created. A PostgreSQL store has no key files: nothing is
    created, and ConfigError names each of its keys that is not configured. A store that
    cannot be opened gets no key (`_check_store`); ConfigError naming NERVENBAHN_KEY_DIR if
    the key folder cannot be made."""
    path = settings.store.sqlite_path
    configured = {"master": settings.keys.master_key, "signing": settings.audit.signing_key,
                  "reporting": settings.keys.reporting_key}
    if settings.store.kind != "sqlite" or path is None:
        _check_configured(configured)
        return []
    wanted = [kind for kind in _KINDS
              if configured[kind] is None and not _old_key_file(path, kind).exists()]
    return create_store_keys(path, settings.keys.key_dir, wanted)


_FIELDS = {"master": "master_key", "signing": "audit_signing_key",
           "reporting": "reporting_key"}
"""Each key's field of the environment (`Environment.variable` names its variable)."""


def _check_configured(configured: Mapping[str, object]) -> None:
    """A PostgreSQL store has no key files: each key must be configured. ConfigError naming
    every one that is not, and how to make it."""
    unset = [Environment.variable(_FIELDS[kind]) for kind in _KINDS if configured[kind] is None]
    if unset:
        raise ConfigError(
            f"{', '.join(unset)} not set: a PostgreSQL store takes its keys from the "
            "environment (or <VARIABLE>_FILE), never from key files; make each once with "
            "`openssl rand -base64 32`, keep it in your secret store and outside the database's "
            "backups (docs/operations.md)"
        )


def create_store_keys(sqlite_path: Path, key_dir: Path, kinds: Sequence[str]) -> list[Path]:
    """Make the key files `kinds` (of master, signing, reporting) of the SQLite store at
    `sqlite_path` that do not exist yet; see `create_keys`, which chooses the kinds."""
    path = sqlite_path
    folder = store_key_folder(key_dir, path)
    missing = [kind for kind in kinds if not (folder / f"{kind}.key").exists()]
    if not missing:
        return []
    _check_store(path)
    created: list[Path] = []
    try:
        if not folder.exists():
            private_folder(folder)
            created.append(folder)
        if not (folder / "store").exists():
            created.append(write_private(folder / "store", f"{path.resolve()}\n"))  # whose
        created.extend(_new_key_file(folder / f"{kind}.key") for kind in missing)
    except OSError as exc:
        raise ConfigError(
            f"NERVENBAHN_KEY_DIR: cannot make or read the {missing[0]} key in {folder}: "
            f"{exc.strerror or type(exc).__name__} (set NERVENBAHN_KEY_DIR to a folder "
            "nervenbahn may create and write)"
        ) from None
    return created


def _old_key_file(sqlite_path: Path, kind: str) -> Path:
    return sqlite_path.with_suffix(sqlite_path.suffix + _OLD_SUFFIXES[kind])


def stored_key(sqlite_path: Path, key_dir: Path, kind: str) -> bytes:
    """A key of a SQLite store, read, never created: its old file beside the database if
    there is one (with a warning saying how to move it), else `<kind>.key` in the store's key
    folder; KeyMissingError if neither exists, ConfigError naming NERVENBAHN_KEY_DIR if the
    key folder cannot be read."""
    what = f"{kind} key"
    folder = store_key_folder(key_dir, sqlite_path)
    path = folder / f"{kind}.key"
    old = _old_key_file(sqlite_path, kind)
    try:
        if old.exists() and not path.exists():
            log.warning(
                "key file beside the store (old layout): one backup of the store folder holds "
                "the data and the key that opens it; move it out of the store folder",
                key_file=str(old),
                move_to=str(path),
                how=f"stop nervenbahn, then: mkdir -p -m 700 '{folder}' && mv '{old}' '{path}'",
            )
            return decode_key(old.read_text().strip(), str(old), what)
        if not path.exists():
            raise KeyMissingError(
                f"no {what} for the store SQLite {sqlite_path} in {folder}: run "
                "`nervenbahn init` to create the store's keys (or set NERVENBAHN_KEY_DIR to "
                "where they are)"
            )
        return decode_key(path.read_text().strip(), str(path), what)
    except OSError as exc:
        raise ConfigError(
            f"NERVENBAHN_KEY_DIR: cannot make or read the {what} in {folder}: "
            f"{exc.strerror or type(exc).__name__} (set NERVENBAHN_KEY_DIR to a folder "
            "nervenbahn may create and write)"
        ) from None


def _check_store(sqlite_path: Path) -> None:
    """Refuse a SQLite store that cannot be opened before any key is made for it: a folder,
    something other than a regular file, a file that is not a SQLite database, or a path
    where the database cannot be created (probed by making and removing a folder where the
    first missing one would go: nothing is left behind). An existing file is read through
    SQLite, never with a descriptor of our own (`_read_as_database`)."""
    def refuse(reason: str) -> ConfigError:
        return ConfigError(
            f"cannot open the store SQLite {sqlite_path} (NERVENBAHN_STORE): {reason}; "
            "no key was created"
        )

    try:
        if not sqlite_path.exists():
            existing = next(folder for folder in sqlite_path.absolute().parents
                            if folder.exists())
            if not existing.is_dir():
                raise refuse(f"{existing} is not a folder")
            os.rmdir(tempfile.mkdtemp(prefix=".nervenbahn-probe-", dir=existing))
            return
        mode = sqlite_path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise refuse("it is a folder, not a database file")
        if not stat.S_ISREG(mode):
            raise refuse("it is not a regular file")
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    try:
        _read_as_database(sqlite_path)
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise refuse("the file is not a SQLite database") from None
        raise refuse(str(exc)) from None


def _read_as_database(sqlite_path: Path) -> None:
    """Read the header of the database at `sqlite_path` through a read-only SQLite connection
    (an empty file is an empty database); sqlite3.Error (SQLITE_NOTADB) if it is none.

    A key is also made when first needed in a process that has the store open (a test's
    `serve`: tests/conftest.py makes a missing key then). Closing any descriptor of a file
    releases every POSIX lock the process holds on it, and SQLite's locks are such locks:
    reading the first 16 bytes with `open()` there dropped them, another process (a CLI
    command) then took the exclusive lock at its close, checkpointed and deleted the -wal and
    -shm files under the running server, whose later reads failed with "disk I/O error" and
    whose writes went to the deleted files. SQLite's own connection keeps its descriptor open
    until the process holds no lock on the file any more, so this read leaves them held."""
    uri = f"{sqlite_path.absolute().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        db.execute("PRAGMA schema_version").fetchone()


def _new_key_file(path: Path) -> Path:
    """Write 32 random bytes, base64, to the new file `path` (mode 0600; never overwritten),
    all or nothing (`create_private`): a full disk leaves no empty key file that would break
    every later command."""
    return create_private(path, base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
