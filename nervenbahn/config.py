"""Configuration from the environment: where the store is, which keys, how to log."""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import tempfile
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import psycopg.conninfo
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr

from domain.errors import NervenbahnError
from nervenbahn.private import private_folder, write_private

__all__ = [
    "DEFAULT_STORE",
    "ConfigError",
    "Settings",
    "StoreConfig",
    "default_key_dir",
    "load_settings",
    "store_key_folder",
]

log = structlog.get_logger("nervenbahn.config")

DEFAULT_STORE = "sqlite:///.nervenbahn/nervenbahn.db"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Every stored event is hash-chained in its transaction (nervenbahn/audit/chain.py).
_CHAINED_SQLITE = "nervenbahn.audit.chain:ChainedSQLiteApplicationRecorder"
_CHAINED_POSTGRES = "nervenbahn.audit.chain:ChainedPostgresApplicationRecorder"


class ConfigError(NervenbahnError):
    """The configuration is incomplete or malformed."""


class StoreConfig(BaseModel):
    """Where events are stored: a SQLite file or a PostgreSQL database (and schema)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["sqlite", "postgres"]
    sqlite_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = ""
    user: str = ""
    password: SecretStr = SecretStr("")
    schema_name: str = ""

    @classmethod
    def parse(cls, url: str) -> StoreConfig:
        """Parse `sqlite:///path` or `postgresql://user:pw@host:port/db?schema=name`."""
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            # sqlite:///relative/path.db or sqlite:////absolute/path.db
            path = unquote(parts.netloc + parts.path)
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise ConfigError("NERVENBAHN_STORE: a sqlite URL needs a file path")
            return cls(kind="sqlite", sqlite_path=Path(path))
        if parts.scheme in ("postgres", "postgresql"):
            return cls._parse_postgres(parts)
        raise ConfigError(
            f"NERVENBAHN_STORE: unsupported scheme {parts.scheme!r}; "
            "use sqlite:///path/to/file.db or postgresql://user@host:5432/db?schema=name"
        )

    @classmethod
    def _parse_postgres(cls, parts: SplitResult) -> StoreConfig:
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ConfigError("NERVENBAHN_STORE: a PostgreSQL URL needs a database name")
        try:
            port = parts.port or 5432
        except ValueError:
            raise ConfigError(
                "NERVENBAHN_STORE: the port must be a number from 1 to 65535"
            ) from None
        schema = parse_qs(parts.query).get("schema", [""])[0]
        if schema and not _IDENTIFIER.fullmatch(schema):
            raise ConfigError(
                f"NERVENBAHN_STORE: schema {schema!r} must be a plain lower-case identifier "
                "(letters, digits, underscore; not starting with a digit; at most 63 characters)"
            )
        return cls(
            kind="postgres",
            host=parts.hostname or "127.0.0.1",
            port=port,
            dbname=dbname,
            user=unquote(parts.username or "postgres"),
            password=SecretStr(unquote(parts.password or "")),
            schema_name=schema,
        )

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment that configures the `eventsourcing` persistence module."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "APPLICATION_RECORDER_TOPIC": _CHAINED_SQLITE,
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": _CHAINED_POSTGRES,
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password.get_secret_value(),
            "POSTGRES_CONNECT_TIMEOUT": "5",
        }
        if self.schema_name:
            env["POSTGRES_SCHEMA"] = self.schema_name
        return env

    def conninfo(self) -> str:
        """The libpq connection string of a PostgreSQL store."""
        return str(
            psycopg.conninfo.make_conninfo(
                host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                password=self.password.get_secret_value() or None, connect_timeout=5,
            )
        )

    def describe(self) -> str:
        """A one-line description without secrets."""
        if self.kind == "sqlite":
            return f"SQLite {self.sqlite_path}"
        schema = f" schema {self.schema_name}" if self.schema_name else ""
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname}{schema}"


class Settings(BaseModel):
    """Everything the composition root needs, read once from the environment."""

    model_config = ConfigDict(frozen=True)

    store: StoreConfig
    master_key: SecretStr
    configured_reporting_key: SecretStr | None = None
    """NERVENBAHN_REPORTING_KEY, if set (use `reporting_key`)."""
    projections_store: StoreConfig | None = None
    """NERVENBAHN_PROJECTIONS_STORE: the PostgreSQL schema of every read model; None: a
    SQLite file per read model beside the store."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    configured_signing_key: SecretStr | None = None
    """NERVENBAHN_AUDIT_SIGNING_KEY (or _FILE), if set (use `signing_key`)."""
    checkpoint_interval_seconds: float = 300.0
    """NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: how often `serve` signs a checkpoint (if the
    chains moved)."""

    connectors_file: Path | None = None
    """NERVENBAHN_CONNECTORS: the connectors' configuration file (TOML); None: `connectors.toml`
    in the store folder (see `connectors.runtime`)."""
    key_dir: Path = Path(".nervenbahn-keys")
    """NERVENBAHN_KEY_DIR: where the key files of a SQLite store are kept, one folder per store
    (`store_key_folder`); default `$XDG_CONFIG_HOME/nervenbahn/keys` or
    `~/.config/nervenbahn/keys` — outside the store folder, so that a backup of the data does
    not hold the keys that open it."""

    @cached_property
    def signing_key(self) -> SecretStr:
        """The Ed25519 seed (base64 of 32 bytes) that signs audit checkpoints:
        NERVENBAHN_AUDIT_SIGNING_KEY or _FILE, else a key file `<store>.signing-key` beside a
        SQLite store, created on first use in the store's key folder (`store_key_folder`; an
        old `<store>.signing-key` beside the database is still used, with a warning);
        ConfigError for a PostgreSQL store without it."""
        if self.configured_signing_key is not None:
            return self.configured_signing_key
        path = self.store.sqlite_path
        if self.store.kind != "sqlite" or path is None:
            raise ConfigError(
                "NERVENBAHN_AUDIT_SIGNING_KEY or NERVENBAHN_AUDIT_SIGNING_KEY_FILE must be set "
                "for a PostgreSQL store (an Ed25519 seed: 32 random bytes, base64-encoded; keep "
                "it in your secret store and give auditors `nervenbahn audit public-key`)"
            )
        key = _store_key(path, self.key_dir, "signing")
        return SecretStr(base64.b64encode(key).decode())

    @cached_property
    def reporting_key(self) -> SecretStr | None:
        """The key that pseudonymises case ids on the reporting topic (base64 of 32 bytes):
        NERVENBAHN_REPORTING_KEY, else a key file in the store's key folder (an old
        `<store>.reporting-key` beside the database is still used, with a warning), created on
        first use; None for a PostgreSQL store without it.

        A key of its own, not derived from the master key: pseudonyms must stay stable when
        the master key is rotated, and the reporting key opens no personal data.
        """
        if self.configured_reporting_key is not None:
            return self.configured_reporting_key
        path = self.store.sqlite_path
        if self.store.kind != "sqlite" or path is None:
            return None
        key = _store_key(path, self.key_dir, "reporting")
        return SecretStr(base64.b64encode(key).decode())


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from `environ` (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    store = StoreConfig.parse(env.get("NERVENBAHN_STORE", DEFAULT_STORE))
    key_dir = _optional_path(env.get("NERVENBAHN_KEY_DIR", "")) or default_key_dir(env)
    log_format = env.get("NERVENBAHN_LOG_FORMAT", "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError("NERVENBAHN_LOG_FORMAT: use auto, json or console")
    return Settings(
        store=store,
        master_key=SecretStr(base64.b64encode(_master_key(env, store, key_dir)).decode()),
        key_dir=key_dir,
        configured_reporting_key=_configured_reporting_key(env),
        projections_store=_projections_store(env),
        log_format=log_format,  # type: ignore[arg-type]
        log_level=env.get("NERVENBAHN_LOG_LEVEL", "info"),
        connectors_file=_optional_path(env.get("NERVENBAHN_CONNECTORS", "")),
        configured_signing_key=_configured_signing_key(env),
        checkpoint_interval_seconds=_checkpoint_interval(env),
    )


def _configured_signing_key(env: dict[str, str]) -> SecretStr | None:
    """NERVENBAHN_AUDIT_SIGNING_KEY (base64 of a 32-byte seed) or a file holding it, if set."""
    name = "NERVENBAHN_AUDIT_SIGNING_KEY"
    if name in env:
        key = _decode_key(env[name], name, "signing key")
    elif f"{name}_FILE" in env:
        path = Path(env[f"{name}_FILE"])
        if not path.exists():
            raise ConfigError(f"{name}_FILE: {path} does not exist")
        key = _decode_key(path.read_text().strip(), str(path), "signing key")
    else:
        return None
    return SecretStr(base64.b64encode(key).decode())


def _checkpoint_interval(env: dict[str, str]) -> float:
    text = env.get("NERVENBAHN_AUDIT_CHECKPOINT_SECONDS", "300").strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(
            f"NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: {text!r} is not a positive number of seconds"
        )
    return seconds


def _optional_path(value: str) -> Path | None:
    return Path(value.strip()) if value.strip() else None


def _master_key(env: dict[str, str], store: StoreConfig, key_dir: Path) -> bytes:
    """The master key: NERVENBAHN_MASTER_KEY (base64), a key file, or the key folder of a
    SQLite store."""
    if "NERVENBAHN_MASTER_KEY" in env:
        return _decode_key(env["NERVENBAHN_MASTER_KEY"], "NERVENBAHN_MASTER_KEY")
    if "NERVENBAHN_MASTER_KEY_FILE" in env:
        path = Path(env["NERVENBAHN_MASTER_KEY_FILE"])
        if not path.exists():
            raise ConfigError(f"NERVENBAHN_MASTER_KEY_FILE: {path} does not exist")
        return _decode_key(path.read_text().strip(), str(path))
    if store.kind == "sqlite" and store.sqlite_path is not None:
        # The embedded default: a key file created in the store's key folder on first use.
        return _store_key(store.sqlite_path, key_dir, "master")
    raise ConfigError(
        "NERVENBAHN_MASTER_KEY or NERVENBAHN_MASTER_KEY_FILE must be set for a PostgreSQL store "
        "(32 random bytes, base64-encoded; keep it in your secret store)"
    )


def _projections_store(env: dict[str, str]) -> StoreConfig | None:
    """NERVENBAHN_PROJECTIONS_STORE: unset, SQLite files; else a PostgreSQL URL with a schema."""
    url = env.get("NERVENBAHN_PROJECTIONS_STORE", "").strip()
    if not url:
        return None
    problem = ConfigError(
        "NERVENBAHN_PROJECTIONS_STORE: use postgresql://user@host:5432/db?schema=name "
        "(or leave it unset for a SQLite file per read model)"
    )
    if not url.startswith(("postgres://", "postgresql://")):
        raise problem
    try:
        store = StoreConfig.parse(url)
    except ConfigError as exc:
        message = str(exc).replace("NERVENBAHN_STORE", "NERVENBAHN_PROJECTIONS_STORE")
        raise ConfigError(message) from None
    if not store.schema_name:
        raise problem
    return store


def _configured_reporting_key(env: dict[str, str]) -> SecretStr | None:
    """NERVENBAHN_REPORTING_KEY, checked (base64 of 32 bytes), if set."""
    if "NERVENBAHN_REPORTING_KEY" not in env:
        return None
    key = _decode_key(env["NERVENBAHN_REPORTING_KEY"], "NERVENBAHN_REPORTING_KEY", "reporting key")
    return SecretStr(base64.b64encode(key).decode())


_OLD_SUFFIXES = {"master": ".key", "signing": ".signing-key", "reporting": ".reporting-key"}
"""The key files of the old layout, beside the SQLite database: `<store>.key` and so on."""


def default_key_dir(env: dict[str, str]) -> Path:
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


_SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def _store_key(sqlite_path: Path, key_dir: Path, kind: str) -> bytes:
    """A key of a SQLite store: its old file beside the database if there is one (with a
    warning saying how to move it), else `<kind>.key` in the store's key folder. A key is
    only created for a store that can be opened (`_check_store`): a mistyped store leaves
    no key folder behind. ConfigError naming NERVENBAHN_KEY_DIR if the key folder cannot be
    made or read."""
    what = f"{kind} key"
    folder = store_key_folder(key_dir, sqlite_path)
    path = folder / f"{kind}.key"
    old = sqlite_path.with_suffix(sqlite_path.suffix + _OLD_SUFFIXES[kind])
    try:
        if old.exists() and not path.exists():
            log.warning(
                "key file beside the store (old layout): one backup of the store folder holds "
                "the data and the key that opens it; move it out of the store folder",
                key_file=str(old),
                move_to=str(path),
                how=f"stop nervenbahn, then: mkdir -p -m 700 '{folder}' && mv '{old}' '{path}'",
            )
            return _decode_key(old.read_text().strip(), str(old), what)
        if not path.exists():
            _check_store(sqlite_path)
            private_folder(folder)
            write_private(folder / "store", f"{sqlite_path.resolve()}\n")  # whose keys
        return _key_file(path, what)
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
    first missing one would go: nothing is left behind)."""
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
        with sqlite_path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    if header and header != _SQLITE_HEADER:
        raise refuse("the file is not a SQLite database")


def _key_file(path: Path, what: str) -> bytes:
    if path.exists():
        return _decode_key(path.read_text().strip(), str(path), what)
    private_folder(path.parent)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    return key


def _decode_key(text: str, where: str, what: str = "master key") -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{where}: the {what} is not valid base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: the {what} must be 32 bytes, found {len(key)}")
    return key
