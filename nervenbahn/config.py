"""The settings module: the one place that reads the `NERVENBAHN_*` environment variables.

`load_settings(environ)` reads every variable once (pydantic-settings, prefix `NERVENBAHN_`)
and builds one typed `Settings` with a section per concern — store, keys, kafka, registry,
api, audit, connectors, logging, cli. No other module reads the environment for our
variables (tests/test_settings_reader.py walks the code to keep it so).

Why two models: the variable names are the installation's public interface and stay flat
(`NERVENBAHN_KAFKA`, `NERVENBAHN_ACCESS_LOG`, …), so `Environment` lists them one field per
variable (docs/configuration.md is checked against it); `Settings` is what the code uses,
grouped by concern and typed, with each bad value reported as `VARIABLE: reason`.

Every secret also has a `*_FILE` variant naming a file that holds it (for container
secrets); setting both is refused naming both variables.

Reading settings has no side effects: nothing is created when a setting is read. The key
files of a SQLite store are made by the explicit step `create_keys` (`nervenbahn init`, and
`nervenbahn demo`); a command that needs a key that is not there fails with
`KeyMissingError`, telling the user to run `nervenbahn init`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bus.kafka_errors import KafkaConfigError
from bus.kafka_settings import PROFILE_DEFAULTS, KafkaSettings
from domain.errors import NervenbahnError
from nervenbahn.audit.access_log import MINIMUM_RETENTION_DAYS, check_retention
from nervenbahn.audit.errors import AccessLogRetentionError

__all__ = [
    "DEFAULT_API_THREADS",
    "DEFAULT_READY_MAX_LAG",
    "DEFAULT_RELAY_PREPARE_FROM_LAG",
    "DEFAULT_STORE",
    "ENV_PREFIX",
    "INSTANCE_NAME",
    "SECRETS",
    "SHARED_WITH_EVENTSOURCING",
    "TLS_ENV_PREFIX",
    "TLS_PARAMETERS",
    "ApiSettings",
    "AuditSettings",
    "BenefitsSettings",
    "CliSettings",
    "ConfigError",
    "ConnectorsSettings",
    "Environment",
    "KafkaSettingsError",
    "KeyMissingError",
    "KeySettings",
    "LogSettings",
    "MetricsAccess",
    "RegistrySettings",
    "RelaySettings",
    "ServeSettings",
    "Settings",
    "StoreConfig",
    "WebSettings",
    "decode_key",
    "load_kafka_settings",
    "load_log_settings",
    "load_registry_url",
    "load_settings",
]

log = structlog.get_logger("nervenbahn.config")

ENV_PREFIX = "NERVENBAHN_"
DEFAULT_STORE = "sqlite:///.nervenbahn/nervenbahn.db"
DEFAULT_READY_MAX_LAG = 10_000
DEFAULT_RELAY_PREPARE_FROM_LAG = 5_000
DEFAULT_API_THREADS = 8
"""NERVENBAHN_API_THREADS unset (see `ApiSettings.threads`)."""
MetricsAccess = Literal["open", "key"]
"""Who may read GET /metrics: anyone who reaches it, or holders of an API key."""
"""Events a relay may be behind the store while the process is still ready; a larger backlog
means the bus is stuck or far behind (a bulk import, such as the demo's ~29,000 events, goes
over it for a while: raise it where such imports are routine)."""
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_APPLICATION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TLS_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
TLS_PARAMETERS = ("sslmode", *_TLS_FILES)
"""libpq's TLS parameters a PostgreSQL store URL may carry."""
TLS_ENV_PREFIX = "POSTGRES_TLS_"
"""Before a TLS parameter's name (upper case) in the eventsourcing environment of the store
(`StoreConfig.eventsourcing_env`), which `nervenbahn.eventstore` gives its pool."""
SHARED_WITH_EVENTSOURCING = ("POSTGRES_POOL_SIZE", "POSTGRES_CONNECT_TIMEOUT")
"""Keys of the store's eventsourcing environment whose `NERVENBAHN_` variable is a setting of
ours too (NERVENBAHN_POSTGRES_POOL_SIZE, …): eventsourcing would read the variable as it is,
the environment holds its validated value (`nervenbahn.eventstore`)."""
_URL_PARAMETERS = ("schema", "application_name", *TLS_PARAMETERS)
"""What a PostgreSQL store URL may carry after `?`: anything else is refused by name (a
parameter left out silently, such as `sslmode=verify-full`, would leave its connections
unverified without anyone knowing)."""
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""NERVENBAHN_INSTANCE: fits a Kafka group name and a Prometheus label as it is."""
DEFAULT_APPLICATION_NAME = "nervenbahn"
DEFAULT_POOL_SIZE = 5
"""Connections the event store's pool keeps open: serve's API threads, relays and checkpointer
share them (eventsourcing's default is 1, which serialises every command and relay read)."""
DEFAULT_CONNECT_TIMEOUT = 5
"""Seconds to wait for a PostgreSQL connection before the command fails (503, exit 3)."""
DEFAULT_READ_TIMEOUT = 10
"""Seconds one statement of an API or web reader of a PostgreSQL read model may take, lock
waits included, before it is cancelled (the answer a 503): a reader queued behind a lock
(a migration's, a rebuild's swap) held its pooled connection and its server thread without
limit, and a few of them took every connection of the pool."""
# eventsourcing's PostgreSQL factory, naming its connections (nervenbahn/eventstore.py).
_NAMED_POSTGRES_FACTORY = "nervenbahn.eventstore:NamedPostgresFactory"
# Every stored event is hash-chained in its transaction (nervenbahn/audit/recorders.py).
_CHAINED_SQLITE = "nervenbahn.audit.recorders:ChainedSQLiteApplicationRecorder"
_CHAINED_POSTGRES = "nervenbahn.audit.recorders_postgres:ChainedPostgresApplicationRecorder"


class ConfigError(NervenbahnError):
    """The configuration is incomplete or malformed."""


class KeyMissingError(ConfigError):
    """A key the command needs has not been created yet: run `nervenbahn init`."""


class KafkaSettingsError(ConfigError, KafkaConfigError):
    """A Kafka variable is malformed (both a configuration error and the bus's own)."""
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
    application_name: str = ""
    """How the store's connections name themselves in `pg_stat_activity` (the URL's
    `application_name`; default `nervenbahn`)."""
    pool_size: int = DEFAULT_POOL_SIZE
    """Connections the event store's pool keeps (NERVENBAHN_POSTGRES_POOL_SIZE)."""
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    """Seconds to wait for a connection (NERVENBAHN_POSTGRES_CONNECT_TIMEOUT)."""
    read_timeout: int = DEFAULT_READ_TIMEOUT
    """Seconds a statement of the API's and web app's readers of PostgreSQL read models may
    take (NERVENBAHN_POSTGRES_READ_TIMEOUT, `DEFAULT_READ_TIMEOUT`)."""
    tls: tuple[tuple[str, str], ...] = ()
    """libpq's TLS parameters from the URL, (name, value) in `TLS_PARAMETERS` order
    (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`), given to every connection of
    the store: the event store's pool, the read models', the adapters'. Those not given are
    libpq's (its PGSSLMODE … variables, else `sslmode=prefer`)."""

    @classmethod
    def parse(cls, url: str) -> StoreConfig:
        """Parse `sqlite:///path` or `postgresql://user:pw@host:port/db?schema=name`."""
        parts = _split(url)
        _refuse_misplaced_parts(url, parts)
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
        query = _url_parameters(parts.query)
        schema = query.get("schema", "")
        application_name = query.get("application_name", "")
        if application_name and not _APPLICATION_NAME.fullmatch(application_name):
            raise ConfigError(
                f"NERVENBAHN_STORE: application_name {application_name!r} must be 1-63 "
                "letters, digits, '-', '_' or '.'"
            )
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
            application_name=application_name,
            tls=_tls_parameters(query),
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
            "PERSISTENCE_MODULE": _NAMED_POSTGRES_FACTORY,
            "APPLICATION_RECORDER_TOPIC": _CHAINED_POSTGRES,
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password.get_secret_value(),
            "POSTGRES_CONNECT_TIMEOUT": str(self.connect_timeout),
            # A pooled connection is checked before each use: one the server closed (a
            # restart) is replaced instead of failing the command (issue 12, finding 5).
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_APPLICATION_NAME": self.application_name or DEFAULT_APPLICATION_NAME,
        }
        if self.schema_name:
            env["POSTGRES_SCHEMA"] = self.schema_name
        # nervenbahn.eventstore gives them its pool; every one is set ("" where the URL
        # gives none), so that no variable of the process's environment stands in for it.
        given = dict(self.tls)
        for name in TLS_PARAMETERS:
            env[f"{TLS_ENV_PREFIX}{name.upper()}"] = given.get(name, "")
        return env

    def conninfo(self) -> str:
        """The libpq connection string of a PostgreSQL store."""
        import psycopg.conninfo  # here: every CLI start reads the settings, few need libpq

        from schemas.postgres import silent_server_limits

        return str(
            psycopg.conninfo.make_conninfo(
                "", host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                password=self.password.get_secret_value() or None,
                connect_timeout=self.connect_timeout,
                application_name=self.application_name or DEFAULT_APPLICATION_NAME,
                **silent_server_limits(),
                **dict(self.tls),
            )
        )

    @property
    def folder(self) -> Path:
        """The folder beside the store (read models, API files, connectors): the SQLite
        store's folder, else `.nervenbahn` in the working directory."""
        return self.sqlite_path.parent if self.sqlite_path else Path(".nervenbahn")

    def describe(self) -> str:
        """A one-line description without secrets."""
        if self.kind == "sqlite":
            return f"SQLite {self.sqlite_path}"
        schema = f" schema {self.schema_name}" if self.schema_name else ""
        mode = dict(self.tls).get("sslmode")
        tls = f" sslmode {mode}" if mode else ""
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname}{schema}{tls}"


def _split(url: str) -> SplitResult:
    """`urlsplit(url)`; ConfigError if it fails. urlsplit's own message quotes the host part,
    where a password may stand (`[…]` in a password is read as an IPv6 address): it is not
    kept, not even as the error's context."""
    try:
        return urlsplit(url)
    except ValueError:
        pass
    raise ConfigError(
        "NERVENBAHN_STORE: the URL cannot be read (not shown: it may hold a password); in a "
        "user name or password write '[' as %5B, ']' as %5D and any character beyond ASCII "
        "percent-encoded"
    )


def _refuse_misplaced_parts(url: str, parts: SplitResult) -> None:
    """ConfigError for the parts of a store URL that would be dropped or misread, without
    showing any of it: where a password holds an unencoded '/', '?', '#' or '@', its rest
    lands in the path, the query or the fragment, and an error quoting those (an "unknown
    parameter", a wrong schema name) would print a piece of the password into the log."""
    if parts.scheme != "sqlite" and "@" in parts.path + parts.query + parts.fragment:
        raise ConfigError(
            "NERVENBAHN_STORE: the URL holds an '@' after its host part (not shown: it may "
            "hold a password); in a user name, password or path write '/' as %2F, '?' as %3F, "
            "'#' as %23 and '@' as %40"
        )
    if "#" in url:
        raise ConfigError(
            "NERVENBAHN_STORE: the URL has a '#' part (not shown), which a store URL does not "
            "take; a '#' in a password or path is written %23"
        )
    if parts.scheme == "sqlite" and parts.query:
        raise ConfigError(
            "NERVENBAHN_STORE: a sqlite URL takes no parameters ('?…'); a '?' in the file's "
            "path is written %3F"
        )


def _url_parameters(query: str) -> dict[str, str]:
    """A PostgreSQL store URL's parameters, each given once and known (`_URL_PARAMETERS`)."""
    values = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(values) - set(_URL_PARAMETERS))
    if unknown:
        raise ConfigError(
            f"NERVENBAHN_STORE: unknown URL parameter {', '.join(map(repr, unknown))}; a "
            f"PostgreSQL URL takes {', '.join(_URL_PARAMETERS)} (other libpq settings: its "
            "PG* environment variables)"
        )
    repeated = sorted(name for name, given in values.items() if len(given) > 1)
    if repeated:
        raise ConfigError(
            f"NERVENBAHN_STORE: URL parameter {', '.join(map(repr, repeated))} given more "
            "than once; give it once"
        )
    return {name: given[0] for name, given in values.items()}


def _tls_parameters(query: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The URL's TLS parameters, checked: a known `sslmode`, and files that exist
    (`sslrootcert` may also be `system`: the operating system's trusted roots, libpq 16+)."""
    tls = []
    if "sslmode" in query:
        if query["sslmode"] not in _SSLMODES:
            raise ConfigError(
                f"NERVENBAHN_STORE: sslmode {query['sslmode']!r} is not one of "
                f"{', '.join(_SSLMODES)}"
            )
        tls.append(("sslmode", query["sslmode"]))
    for name in _TLS_FILES:
        if name in query:
            if not (name == "sslrootcert" and query[name] == "system"):
                _check_file(name, query[name])
            tls.append((name, query[name]))
    return tuple(tls)


def _check_file(name: str, path: str) -> None:
    """ConfigError naming `name` unless `path` is a file this process can look at."""
    try:
        found = Path(path).is_file()
    except OSError as exc:  # is_file() answers False only for a missing path
        raise ConfigError(
            f"NERVENBAHN_STORE: {name} {path!r} cannot be looked at ({exc.strerror})"
        ) from None
    if not found:
        raise ConfigError(
            f"NERVENBAHN_STORE: {name} {path!r} is not a file (a path as the process sees "
            "it: absolute, or relative to its working directory)"
        )


# --- the variables ------------------------------------------------------------------------------

SECRETS = ("store", "projections_store", "master_key", "reporting_key", "audit_signing_key",
           "kafka_ssl_key_password", "kafka_sasl_password")
"""Variables that may hold a secret (keys; a database URL with its password): each also has a
`*_FILE` variant naming a file that holds the value."""


class Environment(BaseSettings):
    """Every `NERVENBAHN_*` variable, as the text it was set to (None: not set).

    One field per variable, named as the variable without its prefix; read only through
    `Environment.read`, which takes the environment as a mapping (tests pass a dict) and
    resolves the `*_FILE` variants of `SECRETS`. Meaning and checks are `load_settings`'s.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # store
    store: str | None = None
    key_dir: str | None = None
    projections_store: str | None = None
    postgres_pool_size: str | None = None
    postgres_connect_timeout: str | None = None
    postgres_read_timeout: str | None = None
    # keys
    master_key: str | None = None
    reporting_key: str | None = None
    # kafka
    kafka: str | None = None
    kafka_profile: str | None = None
    topic_prefix: str | None = None
    kafka_partitions: str | None = None
    kafka_replication_factor: str | None = None
    kafka_max_poll_interval_ms: str | None = None
    kafka_join_wait_ms: str | None = None
    kafka_security_protocol: str | None = None
    kafka_ssl_ca_file: str | None = None
    kafka_ssl_cert_file: str | None = None
    kafka_ssl_key_file: str | None = None
    kafka_ssl_key_password: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # registry
    schema_registry: str | None = None
    # relay
    relay_lease_seconds: str | None = None
    relay_renew_seconds: str | None = None
    relay_prepare_from_lag: str | None = None
    # api
    api_keys: str | None = None
    access_log: str | None = None
    access_log_retention_days: str | None = None
    ready_max_lag: str | None = None
    metrics_access: str | None = None
    api_threads: str | None = None
    # web
    web_users: str | None = None
    web_session_minutes: str | None = None
    web_lockout_attempts: str | None = None
    web_lockout_minutes: str | None = None
    web_secure_cookies: str | None = None
    # benefits
    benefits_target_months: str | None = None
    # payments
    payment_approval_threshold: str | None = None
    # serve
    instance: str | None = None
    worker_backoff_seconds: str | None = None
    worker_backoff_max_seconds: str | None = None
    worker_max_restarts: str | None = None
    worker_restart_window_seconds: str | None = None
    incident_check_seconds: str | None = None
    advance_claims_seconds: str | None = None
    # audit
    audit_signing_key: str | None = None
    audit_checkpoint_seconds: str | None = None
    # connectors
    connectors: str | None = None
    # logging
    log_format: str | None = None
    log_level: str | None = None
    # cli
    actor: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values `read` passes (from its `_MappingSource`): never the process
        environment behind its back, nor a dotenv or secrets folder."""
        return (init_settings,)

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> tuple[Environment, dict[str, str]]:
        """The variables of `environ`, and for each value where it came from (the variable,
        or the file a `*_FILE` variable named), for messages."""
        values, origins = _with_files(environ)
        return cls(**_MappingSource(cls, values)()), origins

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of `field`: `NERVENBAHN_<FIELD>`."""
        return f"{ENV_PREFIX}{field.upper()}"

    @classmethod
    def variables(cls) -> list[str]:
        """Every variable, `*_FILE` variants included, in the order of the fields."""
        names = []
        for field in cls.model_fields:
            names.append(cls.variable(field))
            if field in SECRETS:
                names.append(f"{cls.variable(field)}_FILE")
        return names


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}


def _with_files(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """`environ` with each secret's `*_FILE` variant replaced by the file's content; both set
    is refused naming both. Returns the values and their origins."""
    values = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    origins = {name: name for name in values}
    for field in SECRETS:
        name = Environment.variable(field)
        file_name = f"{name}_FILE"
        if file_name not in values:
            continue
        if name in values:
            raise ConfigError(f"{name} and {file_name} are both set: set only one of them")
        path = Path(values.pop(file_name))
        try:
            values[name] = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"{file_name}: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{file_name}: cannot read {path}: {reason}") from None
        origins[name] = str(path)
    return values, origins


# --- the sections -------------------------------------------------------------------------------


class KeySettings(BaseModel):
    """Where keys come from: configured values, or the key folder of a SQLite store."""

    model_config = ConfigDict(frozen=True)

    key_dir: Path
    """NERVENBAHN_KEY_DIR: where the key files of SQLite stores are kept, one folder per store
    (`nervenbahn.keyfiles.store_key_folder`); default `$XDG_CONFIG_HOME/nervenbahn/keys` or
    `~/.config/nervenbahn/keys` — outside the store folder, so that a backup of the data does
    not hold the keys that open it."""
    master_key: SecretStr | None = None
    """NERVENBAHN_MASTER_KEY (or _FILE), checked, if set."""
    reporting_key: SecretStr | None = None
    """NERVENBAHN_REPORTING_KEY (or _FILE), checked, if set."""


class RegistrySettings(BaseModel):
    """The schema registry: an external Confluent-compatible one, else the embedded one."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    """NERVENBAHN_SCHEMA_REGISTRY; None: the embedded registry in the store's database."""


class RelaySettings(BaseModel):
    """The relays' lease: one active instance per relay name, the others hot standbys
    (`bus.relay`)."""

    model_config = ConfigDict(frozen=True)

    lease_seconds: float = 15.0
    """NERVENBAHN_RELAY_LEASE_SECONDS: how long a relay's lease runs unless renewed; a
    standby takes over at most this long (plus a second) after the active instance died."""
    renew_seconds: float = 5.0
    """NERVENBAHN_RELAY_RENEW_SECONDS: how often the active instance renews it (default a
    third of the lease, at most 5 s; less than the lease)."""
    prepare_from_lag: int = DEFAULT_RELAY_PREPARE_FROM_LAG
    """NERVENBAHN_RELAY_PREPARE_FROM_LAG: how many events behind a relay has its batches
    prepared by a process of its own, until caught up (`bus.relay_batches`); 0: never."""


class ApiSettings(BaseModel):
    """The API's own files: the API-key registry and the access log, and how long the access
    log keeps its entries (NERVENBAHN_API_KEYS, NERVENBAHN_ACCESS_LOG,
    NERVENBAHN_ACCESS_LOG_RETENTION_DAYS; the files default to the store folder)."""

    model_config = ConfigDict(frozen=True)

    api_keys: Path
    access_log: Path
    access_log_retention_days: int = MINIMUM_RETENTION_DAYS
    ready_max_lag: int = DEFAULT_READY_MAX_LAG
    """NERVENBAHN_READY_MAX_LAG: how many recorded events a relay may be behind the store
    before `GET /health/ready` answers 503."""
    metrics_access: MetricsAccess = "open"
    """NERVENBAHN_METRICS_ACCESS: `open` (GET /metrics needs no key: it holds no personal
    data, and a scraper usually reaches an internal address only) or `key` (any valid API
    key, for an API exposed where scraping figures is not wanted)."""
    threads: int = DEFAULT_API_THREADS
    """NERVENBAHN_API_THREADS (1 to 256): how many requests' work (database reads, the
    access log) runs at once, each in a worker thread; further requests wait their turn.
    The threads share one interpreter lock, and each database call gives it away and must
    take it back behind the others: under 16 concurrent clients on SQLite, 40 threads
    (Starlette's default) gave the longest tail (p99 36 ms for the case detail), 8 about
    26 ms, 4 about 20 ms, at the same throughput (benchmarks/read_models.py). Raise it when
    requests wait on a remote database (read models in PostgreSQL)."""


class ServeSettings(BaseModel):
    """How `nervenbahn serve` supervises its workers and watches for incidents
    (`nervenbahn.supervision`, `nervenbahn.incidents`)."""

    model_config = ConfigDict(frozen=True)

    instance: str | None = None
    """NERVENBAHN_INSTANCE: this instance's name among several `serve` on one store
    (lowercase letters, digits and hyphens, at most 32); None: unnamed. With read models in
    SQLite files of its own (no NERVENBAHN_PROJECTIONS_STORE), the name is added to each read
    model's consumer group (`projection-<read model>.<instance>`), so that the instance reads
    every partition; with shared read models in PostgreSQL it only names the instance
    (`nervenbahn.instances`, docs/operations.md "Several instances")."""
    worker_backoff_seconds: float = 1.0
    """NERVENBAHN_WORKER_BACKOFF_SECONDS: the wait before a failed worker's first restart;
    doubled for each further failure."""
    worker_backoff_max_seconds: float = 60.0
    """NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS: the longest wait before a restart."""
    worker_max_restarts: int = 5
    """NERVENBAHN_WORKER_MAX_RESTARTS: a worker that fails more often than this within the
    window stops `serve` (exit 3), so that a process manager restarts the process."""
    worker_restart_window_seconds: float = 300.0
    """NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS: the window of NERVENBAHN_WORKER_MAX_RESTARTS."""
    incident_check_seconds: float = 10.0
    """NERVENBAHN_INCIDENT_CHECK_SECONDS: how often the incident monitor looks."""
    advance_claims_seconds: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """NERVENBAHN_ADVANCE_CLAIMS_SECONDS: how often serve's `advance-claims` worker looks
    whether the benefits or payments store moved, and if so records the claims of decided
    advances (`nervenbahn.claims_worker`). A few seconds: a claim reaches the fund that much
    after the decision; a look that finds nothing moved reads two numbers."""


class AuditSettings(BaseModel):
    """Signing audit checkpoints."""

    model_config = ConfigDict(frozen=True)

    signing_key: SecretStr | None = None
    """NERVENBAHN_AUDIT_SIGNING_KEY (or _FILE), checked, if set."""
    checkpoint_interval_seconds: float = 300.0
    """NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: how often `serve` signs a checkpoint (if the
    chains moved)."""


class ConnectorsSettings(BaseModel):
    """The connectors' configuration."""

    model_config = ConfigDict(frozen=True)

    file: Path | None = None
    """NERVENBAHN_CONNECTORS: the connectors' file (TOML); None: `connectors.toml` in the
    store folder (see `connectors.host`)."""


class LogSettings(BaseModel):
    """How the process logs (structlog, on stderr)."""

    model_config = ConfigDict(frozen=True)

    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"


class BenefitsSettings(BaseModel):
    """The benefit applications' processing target (NERVENBAHN_BENEFITS_TARGET_MONTHS): the
    backlog figures count applications pending longer than it, and report it by name."""

    model_config = ConfigDict(frozen=True)

    target_months: int = 3
    """Whole calendar months from receipt to decision (docs/benefits.md, "Backlog figures")."""


class PaymentsSettings(BaseModel):
    """The four-eyes approval of payment runs (NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD): a case
    back-paid more than this in one run is listed for the run's approval and acknowledged
    explicitly by the approver (docs/payments.md, "Four-eyes")."""

    model_config = ConfigDict(frozen=True)

    approval_threshold: Decimal = Decimal("5000.00")
    """CHF, at most two decimals, not negative."""


class WebSettings(BaseModel):
    """The web application's users and sessions (`nervenbahn.web`): where the accounts live
    (NERVENBAHN_WEB_USERS, default `<store folder>/web-users.db`), how long a session lives
    without a request (NERVENBAHN_WEB_SESSION_MINUTES), after how many failed sign-ins an
    account is locked and for how long (NERVENBAHN_WEB_LOCKOUT_ATTEMPTS, _MINUTES), and whether
    the session cookie is sent over HTTPS only (NERVENBAHN_WEB_SECURE_COOKIES)."""

    model_config = ConfigDict(frozen=True)

    users: Path
    session_minutes: int = 30
    lockout_attempts: int = 5
    lockout_minutes: int = 15
    secure_cookies: bool = True
    """`Secure` on the session cookie: a browser sends it over HTTPS only (and to
    http://localhost, which browsers treat as secure). Off only behind a proxy that speaks
    plain HTTP to a browser, which no installation should."""


class CliSettings(BaseModel):
    """What the command line takes from the environment."""

    model_config = ConfigDict(frozen=True)

    actor: str | None = None
    """NERVENBAHN_ACTOR: the acting user, `USER:ROLE:ORGANISATION` (`--actor` overrides it)."""


class Settings(BaseModel):
    """Everything the composition root needs, read once from the environment.

    Reading any attribute has no side effects: the keys of a SQLite store are read from its
    key folder (once; an old-layout key file is warned about once), and `KeyMissingError`
    says to run `nervenbahn init` if one is not there.
    """

    model_config = ConfigDict(frozen=True)

    store: StoreConfig
    projections_store: StoreConfig | None = None
    """NERVENBAHN_PROJECTIONS_STORE: the PostgreSQL schema of every read model; None: a
    SQLite file per read model beside the store."""
    keys: KeySettings
    kafka: KafkaSettings
    registry: RegistrySettings = RegistrySettings()
    relay: RelaySettings = RelaySettings()
    api: ApiSettings
    audit: AuditSettings = AuditSettings()
    serve: ServeSettings = ServeSettings()
    connectors: ConnectorsSettings = ConnectorsSettings()
    logging: LogSettings = LogSettings()
    cli: CliSettings = CliSettings()
    benefits: BenefitsSettings = BenefitsSettings()
    payments: PaymentsSettings = PaymentsSettings()
    web: WebSettings

    # --- the names the code used before the sections (kept working) -------------------------

    @property
    def key_dir(self) -> Path:
        """NERVENBAHN_KEY_DIR (see `KeySettings.key_dir`)."""
        return self.keys.key_dir

    @property
    def configured_reporting_key(self) -> SecretStr | None:
        """NERVENBAHN_REPORTING_KEY, if set (use `reporting_key`)."""
        return self.keys.reporting_key

    @property
    def configured_signing_key(self) -> SecretStr | None:
        """NERVENBAHN_AUDIT_SIGNING_KEY (or _FILE), if set (use `signing_key`)."""
        return self.audit.signing_key

    @property
    def checkpoint_interval_seconds(self) -> float:
        """NERVENBAHN_AUDIT_CHECKPOINT_SECONDS."""
        return self.audit.checkpoint_interval_seconds

    @property
    def connectors_file(self) -> Path | None:
        """NERVENBAHN_CONNECTORS, if set."""
        return self.connectors.file

    @property
    def log_format(self) -> Literal["auto", "json", "console"]:
        """NERVENBAHN_LOG_FORMAT."""
        return self.logging.format

    @property
    def log_level(self) -> str:
        """NERVENBAHN_LOG_LEVEL."""
        return self.logging.level

    # --- keys (read, never created) -----------------------------------------------------------

    @cached_property
    def master_key(self) -> SecretStr:
        """The master key (base64 of 32 bytes) that wraps the per-person data keys:
        NERVENBAHN_MASTER_KEY or _FILE, else the key file of a SQLite store (see
        `create_keys`); ConfigError for a PostgreSQL store without it."""
        if self.keys.master_key is not None:
            return self.keys.master_key
        path = self._sqlite_path(
            "NERVENBAHN_MASTER_KEY or NERVENBAHN_MASTER_KEY_FILE must be set for a PostgreSQL "
            "store (32 random bytes, base64-encoded; keep it in your secret store)"
        )
        return _encoded(_stored_key(path, self.keys.key_dir, "master"))

    @cached_property
    def signing_key(self) -> SecretStr:
        """The Ed25519 seed (base64 of 32 bytes) that signs audit checkpoints:
        NERVENBAHN_AUDIT_SIGNING_KEY or _FILE, else the key file of a SQLite store (an old
        `<store>.signing-key` beside the database is still used, with a warning);
        ConfigError for a PostgreSQL store without it."""
        if self.audit.signing_key is not None:
            return self.audit.signing_key
        path = self._sqlite_path(
            "NERVENBAHN_AUDIT_SIGNING_KEY or NERVENBAHN_AUDIT_SIGNING_KEY_FILE must be set "
            "for a PostgreSQL store (an Ed25519 seed: 32 random bytes, base64-encoded; keep "
            "it in your secret store and give auditors `nervenbahn audit public-key`)"
        )
        return _encoded(_stored_key(path, self.keys.key_dir, "signing"))

    @cached_property
    def reporting_key(self) -> SecretStr | None:
        """The key that pseudonymises case ids on the reporting topic (base64 of 32 bytes):
        NERVENBAHN_REPORTING_KEY or _FILE, else the key file of a SQLite store (an old
        `<store>.reporting-key` beside the database is still used, with a warning); None for
        a PostgreSQL store without it.

        A key of its own, not derived from the master key: pseudonyms must stay stable when
        the master key is rotated, and the reporting key opens no personal data.
        """
        if self.keys.reporting_key is not None:
            return self.keys.reporting_key
        path = self.store.sqlite_path
        if self.store.kind != "sqlite" or path is None:
            return None
        return _encoded(_stored_key(path, self.keys.key_dir, "reporting"))

    def _sqlite_path(self, postgres_needs: str) -> Path:
        path = self.store.sqlite_path
        if self.store.kind != "sqlite" or path is None:
            raise ConfigError(postgres_needs)
        return path


# --- reading ------------------------------------------------------------------------------------


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (default: the process environment); ConfigError
    naming the variable of the first value that is malformed. Creates nothing."""
    env = dict(os.environ if environ is None else environ)
    variables, origins = Environment.read(env)
    connections = _postgres_connections(variables)
    store = StoreConfig.parse(_store_url(variables.store)).model_copy(update=connections)
    projections_store = _projections_store(variables.projections_store)
    return Settings(
        store=store,
        projections_store=projections_store and projections_store.model_copy(update=connections),
        keys=KeySettings(
            key_dir=_optional_path(variables.key_dir) or _default_key_dir(env),
            master_key=_checked_key(variables.master_key, origins, "NERVENBAHN_MASTER_KEY",
                                    "master key"),
            reporting_key=_checked_key(variables.reporting_key, origins,
                                       "NERVENBAHN_REPORTING_KEY", "reporting key"),
        ),
        kafka=_kafka(variables),
        registry=RegistrySettings(url=variables.schema_registry or None),
        relay=_relay(variables),
        api=_api(variables, store),
        audit=AuditSettings(
            signing_key=_checked_key(variables.audit_signing_key, origins,
                                     "NERVENBAHN_AUDIT_SIGNING_KEY", "signing key"),
            checkpoint_interval_seconds=_checkpoint_interval(variables.audit_checkpoint_seconds),
        ),
        serve=_serve(variables),
        connectors=ConnectorsSettings(file=_optional_path(variables.connectors)),
        logging=_log_settings(variables, strict=True),
        cli=CliSettings(actor=variables.actor or None),
        web=_web(variables, store),
        benefits=BenefitsSettings(target_months=_bounded(
            variables.benefits_target_months, "NERVENBAHN_BENEFITS_TARGET_MONTHS", 3, 1, 60,
            "months")),
        payments=PaymentsSettings(approval_threshold=_chf(
            variables.payment_approval_threshold, "NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD",
            Decimal("5000.00"))),
    )


def load_kafka_settings(environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """The Kafka section alone (`nervenbahn topics`, the broker): KafkaSettingsError naming
    the variable that is malformed; other sections are not checked."""
    variables, _ = Environment.read(os.environ if environ is None else environ)
    return _kafka(variables)


def load_registry_url(environ: Mapping[str, str] | None = None) -> str | None:
    """NERVENBAHN_SCHEMA_REGISTRY alone (`nervenbahn asyncapi`), None when it is not set (the
    embedded registry); other sections are not checked."""
    variables, _ = Environment.read(os.environ if environ is None else environ)
    return (variables.schema_registry or "").strip() or None


def load_log_settings(environ: Mapping[str, str] | None = None) -> LogSettings:
    """The logging section, leniently: a value that is not valid falls back to its default
    (for setting up logging before anything else; `load_settings` reports it)."""
    variables, _ = Environment.read(os.environ if environ is None else environ)
    return _log_settings(variables, strict=False)


def _stored_key(sqlite_path: Path, key_dir: Path, kind: str) -> bytes:
    """A SQLite store's key file, read (never created) by `nervenbahn.keyfiles`."""
    # imported here: nervenbahn.keyfiles imports this module's errors
    from nervenbahn.keyfiles import stored_key

    return stored_key(sqlite_path, key_dir, kind)


def _default_key_dir(env: Mapping[str, str]) -> Path:
    from nervenbahn.keyfiles import default_key_dir  # see _stored_key

    return default_key_dir(env)


def _or(value: str | None, default: str) -> str:
    return default if value is None else value


def _optional_path(value: str | None) -> Path | None:
    return Path(value.strip()) if value and value.strip() else None


def _encoded(key: bytes) -> SecretStr:
    return SecretStr(base64.b64encode(key).decode())


def _checked_key(value: str | None, origins: Mapping[str, str], name: str,
                 what: str) -> SecretStr | None:
    """A configured key, checked (base64 of 32 bytes), if set; errors name its variable, or
    the file its `*_FILE` variable named."""
    if value is None:
        return None
    return _encoded(decode_key(value, origins.get(name, name), what))


def _checkpoint_interval(value: str | None) -> float:
    text = _or(value, "300").strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(
            f"NERVENBAHN_AUDIT_CHECKPOINT_SECONDS: {text!r} is not a positive number of seconds"
        )
    return seconds


def _relay(variables: Environment) -> RelaySettings:
    """The relay lease's duration and renewal interval (renewed more often than it runs out)."""
    lease = _positive_seconds("NERVENBAHN_RELAY_LEASE_SECONDS", variables.relay_lease_seconds,
                              15.0)
    renew = _positive_seconds("NERVENBAHN_RELAY_RENEW_SECONDS", variables.relay_renew_seconds,
                              min(lease / 3, 5.0))
    if renew >= lease:
        raise ConfigError(
            f"NERVENBAHN_RELAY_RENEW_SECONDS: {renew:g} s is not less than the lease "
            f"(NERVENBAHN_RELAY_LEASE_SECONDS, {lease:g} s): the lease would run out first"
        )
    prepare_from_lag = _bounded(
        variables.relay_prepare_from_lag, "NERVENBAHN_RELAY_PREPARE_FROM_LAG",
        DEFAULT_RELAY_PREPARE_FROM_LAG, 0, 100_000_000, "events",
    )
    return RelaySettings(lease_seconds=lease, renew_seconds=renew,
                         prepare_from_lag=prepare_from_lag)


def _serve(variables: Environment) -> ServeSettings:
    """The supervision of serve's workers, the incident monitor's and the claims worker's
    intervals."""
    defaults = ServeSettings()
    base = _positive_seconds("NERVENBAHN_WORKER_BACKOFF_SECONDS",
                             variables.worker_backoff_seconds, defaults.worker_backoff_seconds)
    cap = _positive_seconds("NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS",
                            variables.worker_backoff_max_seconds,
                            defaults.worker_backoff_max_seconds)
    if cap < base:
        raise ConfigError(
            f"NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS: {cap:g} is shorter than "
            f"NERVENBAHN_WORKER_BACKOFF_SECONDS ({base:g})"
        )
    restarts = (variables.worker_max_restarts or "").strip()
    if restarts and (not restarts.isdigit() or int(restarts) < 1):
        raise ConfigError(
            f"NERVENBAHN_WORKER_MAX_RESTARTS: {restarts!r} is not a whole number of at least 1"
        )
    instance = (variables.instance or "").strip()
    if instance and not INSTANCE_NAME.fullmatch(instance):
        raise ConfigError(
            f"NERVENBAHN_INSTANCE: {instance!r} is not a name of lowercase letters, digits and "
            "hyphens (starting with a letter or digit, at most 32)"
        )
    return ServeSettings(
        instance=instance or None,
        worker_backoff_seconds=base,
        worker_backoff_max_seconds=cap,
        worker_max_restarts=int(restarts) if restarts else defaults.worker_max_restarts,
        worker_restart_window_seconds=_positive_seconds(
            "NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS", variables.worker_restart_window_seconds,
            defaults.worker_restart_window_seconds),
        incident_check_seconds=_positive_seconds(
            "NERVENBAHN_INCIDENT_CHECK_SECONDS", variables.incident_check_seconds,
            defaults.incident_check_seconds),
        advance_claims_seconds=_positive_seconds(
            "NERVENBAHN_ADVANCE_CLAIMS_SECONDS", variables.advance_claims_seconds,
            defaults.advance_claims_seconds),
    )


def _positive_seconds(variable: str, value: str | None, default: float) -> float:
    """A positive number of seconds (finite), or the default if unset; ConfigError naming
    the variable otherwise."""
    text = (value or "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"{variable}: {text!r} is not a positive number of seconds")
    return seconds


def _store_url(value: str | None) -> str:
    """NERVENBAHN_STORE without the spaces around it (as its `_FILE` variant is read: a
    trailing space became part of a SQLite file's name), `DEFAULT_STORE` if unset; set but
    empty is refused: a deployment whose URL came out empty must not fall back to a local
    file."""
    if value is None:
        return DEFAULT_STORE
    url = value.strip()
    if not url:
        raise ConfigError(
            "NERVENBAHN_STORE: set but empty; give the store's URL, or unset it for the "
            f"default {DEFAULT_STORE}"
        )
    return url


def _projections_store(value: str | None) -> StoreConfig | None:
    """NERVENBAHN_PROJECTIONS_STORE: unset, SQLite files; else a PostgreSQL URL with a schema."""
    url = (value or "").strip()
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


def _postgres_connections(variables: Environment) -> dict[str, int]:
    """NERVENBAHN_POSTGRES_POOL_SIZE (1-100), NERVENBAHN_POSTGRES_CONNECT_TIMEOUT (seconds,
    1-300) and NERVENBAHN_POSTGRES_READ_TIMEOUT (seconds, 1-3600), for both stores'
    StoreConfig."""
    return {
        "pool_size": _bounded(variables.postgres_pool_size, "NERVENBAHN_POSTGRES_POOL_SIZE",
                              DEFAULT_POOL_SIZE, 1, 100, "connections"),
        "connect_timeout": _bounded(variables.postgres_connect_timeout,
                                    "NERVENBAHN_POSTGRES_CONNECT_TIMEOUT",
                                    DEFAULT_CONNECT_TIMEOUT, 1, 300, "seconds"),
        "read_timeout": _bounded(variables.postgres_read_timeout,
                                 "NERVENBAHN_POSTGRES_READ_TIMEOUT",
                                 DEFAULT_READ_TIMEOUT, 1, 3600, "seconds"),
    }


def _bounded(value: str | None, name: str, default: int, low: int, high: int, unit: str) -> int:
    """A whole number from `low` to `high` (default if unset); ConfigError naming `name`."""
    text = (value or "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{name}: {text!r} is not a whole number of {unit} from {low} to {high}")
    return int(text)


def _chf(value: str | None, name: str, default: Decimal) -> Decimal:
    """An amount in CHF, not negative, at most two decimals (default if unset); ConfigError
    naming `name`."""
    text = (value or "").strip()
    if not text:
        return default
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ConfigError(f"{name}: {text!r} is not an amount in CHF (0 or more, at most two "
                          "decimals)")
    return amount.quantize(Decimal("0.01"))


def _log_settings(variables: Environment, *, strict: bool) -> LogSettings:
    fmt = _or(variables.log_format, "auto")
    level = _or(variables.log_level, "info")
    if fmt not in ("auto", "json", "console"):
        if strict:
            raise ConfigError("NERVENBAHN_LOG_FORMAT: use auto, json or console")
        fmt = "auto"
    if not strict and not _is_log_level(level):
        level = "info"
    return LogSettings(format=fmt, level=level)  # type: ignore[arg-type]


def _is_log_level(level: str) -> bool:
    return level.upper() in logging.getLevelNamesMapping()


def _api(variables: Environment, store: StoreConfig) -> ApiSettings:
    """The API's files (default: in the store folder) and the access log's retention."""
    return ApiSettings(
        api_keys=Path(variables.api_keys or store.folder / "api-keys.json"),
        access_log=Path(variables.access_log or store.folder / "access-log.db"),
        access_log_retention_days=_retention_days(variables.access_log_retention_days),
        ready_max_lag=_ready_max_lag(variables.ready_max_lag),
        metrics_access=_metrics_access(variables.metrics_access),
        threads=_bounded(variables.api_threads, "NERVENBAHN_API_THREADS", DEFAULT_API_THREADS,
                         1, 256, "threads"),
    )


def _web(variables: Environment, store: StoreConfig) -> WebSettings:
    """The web application's accounts file (default: in the store folder), session and lockout
    limits, and whether its cookie is HTTPS-only."""
    secure = _or(variables.web_secure_cookies, "true").lower()
    if secure not in ("true", "false"):
        raise ConfigError(f"NERVENBAHN_WEB_SECURE_COOKIES: {secure!r} is not true or false")
    return WebSettings(
        users=Path(variables.web_users or store.folder / "web-users.db"),
        session_minutes=_bounded(variables.web_session_minutes,
                                 "NERVENBAHN_WEB_SESSION_MINUTES", 30, 1, 24 * 60, "minutes"),
        lockout_attempts=_bounded(variables.web_lockout_attempts,
                                  "NERVENBAHN_WEB_LOCKOUT_ATTEMPTS", 5, 1, 100, "attempts"),
        lockout_minutes=_bounded(variables.web_lockout_minutes,
                                 "NERVENBAHN_WEB_LOCKOUT_MINUTES", 15, 1, 24 * 60, "minutes"),
        secure_cookies=secure == "true",
    )


def _metrics_access(value: str | None) -> MetricsAccess:
    """NERVENBAHN_METRICS_ACCESS: `open` (default) or `key`."""
    text = (value or "").strip().lower() or "open"
    if text not in get_args(MetricsAccess):
        raise ConfigError(f"NERVENBAHN_METRICS_ACCESS: {value!r} is not one of open, key")
    return text  # type: ignore[return-value]


def _ready_max_lag(value: str | None) -> int:
    """NERVENBAHN_READY_MAX_LAG: a whole number of events, at least 1 (default 10000)."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_READY_MAX_LAG
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"NERVENBAHN_READY_MAX_LAG: {text!r} is not a whole number of events of at least 1"
        )
    return int(text)


_RETENTION = "NERVENBAHN_ACCESS_LOG_RETENTION_DAYS"


def _retention_days(value: str | None) -> int:
    """The retention in days (default one year); ConfigError if malformed or too short."""
    text = value or ""
    if not text.strip():
        return MINIMUM_RETENTION_DAYS
    try:
        days = int(text.strip())
    except ValueError:
        raise ConfigError(f"{_RETENTION}: {text!r} is not a whole number of days") from None
    try:
        return check_retention(days, _RETENTION)
    except AccessLogRetentionError as exc:
        raise ConfigError(str(exc)) from None


# --- the Kafka section ------------------------------------------------------------------------

_KAFKA_FIELDS = {
    "topic_prefix": "topic_prefix",
    "kafka_partitions": "partitions",
    "kafka_replication_factor": "replication_factor",
    "kafka_max_poll_interval_ms": "max_poll_interval_ms",
    "kafka_join_wait_ms": "join_wait_ms",
    "kafka_security_protocol": "security_protocol",
    "kafka_ssl_ca_file": "ssl_cafile",
    "kafka_ssl_cert_file": "ssl_certfile",
    "kafka_ssl_key_file": "ssl_keyfile",
    "kafka_ssl_key_password": "ssl_password",
    "kafka_sasl_mechanism": "sasl_mechanism",
    "kafka_sasl_username": "sasl_username",
    "kafka_sasl_password": "sasl_password",
}
"""Environment field → KafkaSettings field, for the variables that set one directly."""
_KAFKA_NUMBERS = {"kafka_partitions", "kafka_replication_factor", "kafka_max_poll_interval_ms",
                  "kafka_join_wait_ms"}


def _kafka(variables: Environment) -> KafkaSettings:
    """`bus.kafka_settings.KafkaSettings` from the variables; KafkaSettingsError naming the
    variable that is malformed."""
    servers = tuple(part.strip() for part in (variables.kafka or "").split(",") if part.strip())
    profile = variables.kafka_profile or ("production" if servers else "embedded")
    if profile not in PROFILE_DEFAULTS:
        raise KafkaSettingsError("NERVENBAHN_KAFKA_PROFILE: use production or embedded")
    fields: dict[str, Any] = {"bootstrap_servers": servers, "profile": profile}
    for name, field in _KAFKA_FIELDS.items():
        text = (getattr(variables, name) or "").strip()
        if not text:
            continue
        if name in _KAFKA_NUMBERS and not text.isdigit():
            raise KafkaSettingsError(
                f"{Environment.variable(name)}: {text!r} is not a whole number"
            )
        fields[field] = int(text) if name in _KAFKA_NUMBERS else text
    try:
        return KafkaSettings(**fields)
    except ValidationError as exc:
        raise KafkaSettingsError(_explain(exc)) from None


_KAFKA_VARIABLE_OF = {"bootstrap_servers": "NERVENBAHN_KAFKA"} | {
    field: Environment.variable(name) for name, field in _KAFKA_FIELDS.items()
}


_KAFKA_FIELD_NAME = re.compile(r"\b(" + "|".join(_KAFKA_VARIABLE_OF) + r")\b")


def _explain(exc: ValidationError) -> str:
    """The first validation problem, named by its environment variable (a problem of several
    fields together names each field as its variable)."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = error["msg"].removeprefix("Value error, ")
    if not field:
        return _KAFKA_FIELD_NAME.sub(lambda match: _KAFKA_VARIABLE_OF[match[1]], message)
    return f"{_KAFKA_VARIABLE_OF.get(field, field)}: {message}"


def decode_key(text: str, where: str, what: str = "master key") -> bytes:
    """The 32-byte key that `text` holds in base64; ConfigError naming `where` if not."""
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{where}: the {what} is not valid base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: the {what} must be 32 bytes, found {len(key)}")
    return key
