"""Where append.py's two sides store their events, and a nervenbahn service on a store.

SQLite: a file each in the run's directory. PostgreSQL: a schema each, `bench_nb_<token>`,
`bench_raw_<token>` and `bench_rawc_<token>` (plain eventsourcing with its aggregate cache),
dropped by the store's `cleanup`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg

from domain.application.cases import CaseService
from nervenbahn.config import load_settings
from nervenbahn.container import Container


@dataclass
class Store:
    backend: str
    nb_url: str
    raw_env: dict[str, str]
    cleanup: Callable[[], None]
    raw_cached_env: dict[str, str]
    """Where plain eventsourcing with its aggregate cache stores its events: a store of its
    own, as large as the others."""


def sqlite_store(directory: str, label: str) -> Store:
    nb_path = os.path.join(directory, f"{label}-nervenbahn.db")
    raw_path = os.path.join(directory, f"{label}-raw.db")
    cached_path = os.path.join(directory, f"{label}-raw-cached.db")
    return Store("sqlite", f"sqlite:///{nb_path}",
                 {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": raw_path},
                 lambda: None,
                 {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": cached_path})


def postgres_store(url: str) -> Store:
    parts = urlsplit(url)
    token = f"{os.getpid()}_{secrets.token_hex(4)}"
    nb_schema, raw_schema = f"bench_nb_{token}", f"bench_raw_{token}"
    cached_schema = f"bench_rawc_{token}"
    conninfo = _pg_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for schema in (raw_schema, cached_schema):
            conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for schema in (nb_schema, raw_schema, cached_schema):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    raw_env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"), "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432), "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "", "POSTGRES_SCHEMA": raw_schema,
    }
    return Store("postgres", f"{url}?schema={nb_schema}", raw_env, drop,
                 {**raw_env, "POSTGRES_SCHEMA": cached_schema})


def _pg_conninfo(url: str) -> str:
    parts = urlsplit(url)
    return psycopg.conninfo.make_conninfo(
        host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
        dbname=parts.path.lstrip("/"), user=parts.username or "postgres",
        password=parts.password or None, connect_timeout=3,
    )


def postgres_unreachable(url: str) -> str | None:
    try:
        with psycopg.connect(_pg_conninfo(url)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        return f"PostgreSQL unreachable at {urlsplit(url).hostname}:{urlsplit(url).port}: {reason}"
    return None


@contextlib.contextmanager
def nervenbahn_service(url: str, master_key: str, clock: Any = None) -> Iterator[CaseService]:
    settings = load_settings({"NERVENBAHN_STORE": url, "NERVENBAHN_MASTER_KEY": master_key})
    container = Container(settings) if clock is None else Container(settings, clock=clock)
    try:
        yield container.service
    finally:
        container.close()
