"""TLS towards PostgreSQL from the store URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
`sslcrl`): every connection of ours takes them, the event store's pool, the read models' and
every adapter's; a parameter the URL cannot carry is refused by name, never dropped (before,
`?sslmode=verify-full` was ignored without a word and the connections went unverified)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
import pytest
from eventsourcing.utils import Environment
from psycopg_pool import PoolTimeout
from structlog.testing import capture_logs

from nervenbahn.config import ConfigError, Settings, StoreConfig, load_settings
from nervenbahn.container import build_service, close_service
from nervenbahn.eventstore import NamedPostgresFactory
from nervenbahn.paths import read_model_target
from projections.read_connections import close_read_connections, reused_read_model
from projections.storage import PostgresReadModels
from tests.audit.test_chain import settings_for
from tests.bus.pipeline import open_supported_case

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
MY_SSL = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


# --- the URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "named"), [
    ("sslmod=require", "unknown URL parameter 'sslmod'"),
    ("schema=a&options=-c%20statement_timeout%3D5s", "unknown URL parameter 'options'"),
    ("sslmode=required", "sslmode 'required' is not one of disable, allow, prefer, require, "
                         "verify-ca, verify-full"),
    ("sslmode=require&sslmode=disable", "URL parameter 'sslmode' given more than once"),
    ("sslrootcert=/no/such/root.crt", "sslrootcert '/no/such/root.crt' is not a file"),
    ("sslkey=", "sslkey '' is not a file"),
    ("sslcert=/tmp/" + "a" * 300, "cannot be looked at (File name too long)"),
    ("sslrootcert=system&sslcrl=system", "sslcrl 'system' is not a file"),
])
def test_a_store_url_parameter_that_cannot_be_used_is_refused_by_name(
    query: str, named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        StoreConfig.parse(f"{SERVER}?{query}")
    assert named in str(refused.value)
    assert str(refused.value).startswith("NERVENBAHN_STORE: ")


def test_the_projections_store_url_is_refused_under_its_own_name() -> None:
    with pytest.raises(ConfigError, match=r"^NERVENBAHN_PROJECTIONS_STORE: unknown URL "
                                          r"parameter 'sslmod'"):
        load_settings({"NERVENBAHN_PROJECTIONS_STORE": f"{SERVER}?schema=rm&sslmod=require"})


def test_the_tls_parameters_go_into_every_connection_string(tmp_path: Path) -> None:
    root = tmp_path / "root.crt"
    root.write_text("not read here")
    store = StoreConfig.parse(f"{SERVER}?schema=a&sslmode=verify-full&sslrootcert={root}")
    assert store.tls == (("sslmode", "verify-full"), ("sslrootcert", str(root)))
    given = psycopg.conninfo.conninfo_to_dict(store.conninfo())
    assert (given["sslmode"], given["sslrootcert"]) == ("verify-full", str(root))
    env = store.eventsourcing_env()  # what the event store's pool is made from
    assert (env["POSTGRES_TLS_SSLMODE"], env["POSTGRES_TLS_SSLROOTCERT"]) == (
        "verify-full", str(root))
    assert env["POSTGRES_TLS_SSLKEY"] == ""  # set: no variable of the process stands in
    hash(store)  # a frozen settings value, as before
    plain = StoreConfig.parse(f"{SERVER}?schema=a")
    assert plain.tls == ()
    assert "sslmode" not in psycopg.conninfo.conninfo_to_dict(plain.conninfo())
    # The operating system's trusted roots (libpq 16+): a word, not a file.
    system = StoreConfig.parse(f"{SERVER}?schema=a&sslmode=verify-full&sslrootcert=system")
    assert dict(system.tls)["sslrootcert"] == "system"


# --- the connections (real PostgreSQL) -------------------------------------------------------


def _server_has_tls(server_url: str) -> bool:
    with psycopg.connect(server_url, autocommit=True) as admin:
        row = admin.execute("SHOW ssl").fetchone()
    assert row is not None
    return bool(row[0] == "on")


def _read_models(settings: Settings) -> Iterator[PostgresReadModels]:
    """The read models' schema of `settings` (its projections store), with one table."""
    target = read_model_target(settings, "region")
    assert isinstance(target, PostgresReadModels)
    with target.connect() as db:
        db.execute("CREATE TABLE IF NOT EXISTS tls_probe (n INT)")
    try:
        yield target
    finally:
        close_read_connections()


def _used(conn: psycopg.Connection[Any]) -> tuple[str | None, bool]:
    """The sslmode libpq used on `conn`, and whether the server sees it encrypted."""
    row = conn.cursor(row_factory=psycopg.rows.tuple_row).execute(MY_SSL).fetchone()
    assert row is not None
    return conn.info.get_parameters().get("sslmode"), bool(row[0])


@pytest.mark.postgres
def test_every_connection_uses_the_store_urls_sslmode(postgres_dsn: str) -> None:
    # A mode this server accepts whether or not it has TLS; the default (prefer) is not
    # reported, so a connection showing "disable" got it from the URL.
    url = f"{postgres_dsn}&sslmode=disable"
    settings = settings_for(url).model_copy(
        update={"projections_store": StoreConfig.parse(url)})
    service = build_service(settings)
    try:
        open_supported_case(service, 1)
        with service.recorder.datastore.pool.connection() as conn:  # type: ignore[attr-defined]
            pooled = _used(conn)
    finally:
        close_service(service)
    for target in _read_models(settings):
        with reused_read_model(target, "tls_probe") as db:
            assert isinstance(db, psycopg.Connection)
            reader = _used(db)
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        adapter = _used(conn)
    assert pooled == reader == adapter == ("disable", False)


@pytest.mark.postgres
def test_the_process_environment_cannot_turn_the_event_stores_tls_off(
    postgres_server_url: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # eventsourcing looks up <APPLICATION>_<KEY> before <KEY>: these stood in for the URL's
    # sslmode on the event store's connections only (and an empty one for none at all).
    monkeypatch.setenv("NERVENBAHN_POSTGRES_TLS_SSLMODE", "disable")
    monkeypatch.setenv("POSTGRES_TLS_SSLMODE", "disable")
    monkeypatch.setenv("PAYMENTS_POSTGRES_TLS_SSLMODE", "")
    monkeypatch.setenv("NERVENBAHN_POSTGRES_TLS_SSLROOTCERT", "/nowhere")
    monkeypatch.setenv("NERVENBAHN_POSTGRES_DBNAME", "elsewhere")  # nor any other setting
    store = StoreConfig.parse(f"{postgres_dsn}&sslmode=require")
    for application in ("NERVENBAHN", "PAYMENTS"):
        env = Environment(application, {**os.environ, **store.eventsourcing_env(),
                                        "CREATE_TABLE": "n"})
        factory = NamedPostgresFactory(env)
        pool = factory.datastore.pool
        try:
            assert pool.kwargs is not None
            assert pool.kwargs.get("sslmode") == "require"
            assert "sslrootcert" not in pool.kwargs
            assert pool.kwargs["dbname"] == "test"
            if not _server_has_tls(postgres_server_url):  # refused, not answered in the clear
                pool.open(wait=False)
                with pytest.raises(PoolTimeout):
                    pool.getconn(timeout=2)
        finally:
            factory.close()


@pytest.mark.postgres
def test_a_store_that_requires_tls_never_connects_in_the_clear(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    # This machine's server has no TLS: `sslmode=require` must then fail every connection
    # (before, the parameter was dropped and they connected in the clear). A server with
    # TLS must see every connection encrypted.
    url = f"{postgres_dsn}&sslmode=require"
    settings = settings_for(url)
    if not _server_has_tls(postgres_server_url):
        with pytest.raises(Exception, match="SSL") as refused:
            build_service(settings)
        assert "server does not support SSL" in str(refused.value)
        assert "sslmode require" in str(refused.value)  # the store as it is described
        with pytest.raises(psycopg.OperationalError, match="server does not support SSL"):
            psycopg.connect(settings.store.conninfo())
        target = PostgresReadModels(settings.store.conninfo(), "public", 1)
        with pytest.raises(psycopg.OperationalError, match="server does not support SSL"):
            target.connect()
        return
    service = build_service(settings)
    try:
        open_supported_case(service, 1)
        with service.recorder.datastore.pool.connection() as conn:  # type: ignore[attr-defined]
            assert _used(conn) == ("require", True)
    finally:
        close_service(service)
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        assert _used(conn) == ("require", True)


def test_a_setting_of_ours_that_eventsourcing_reads_too_is_taken_as_validated_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NERVENBAHN_POSTGRES_POOL_SIZE", " 07")
    monkeypatch.setenv("NERVENBAHN_POSTGRES_HOST", "db.elsewhere")
    settings = load_settings({"NERVENBAHN_STORE": f"{SERVER}?schema=a",
                              "NERVENBAHN_POSTGRES_POOL_SIZE": " 07"})
    env = Environment("NERVENBAHN", {**os.environ, **settings.store.eventsourcing_env(),
                                     "CREATE_TABLE": "n"})
    with capture_logs() as logs:
        factory = NamedPostgresFactory(env)
    try:
        assert factory.datastore.pool.min_size == 7  # the pool size (max: + overflow)
        assert factory.datastore.pool.kwargs["host"] == "127.0.0.1"
    finally:
        factory.close()
    ignored = [entry["variable"] for entry in logs if entry["log_level"] == "warning"]
    assert ignored == ["NERVENBAHN_POSTGRES_HOST"]
