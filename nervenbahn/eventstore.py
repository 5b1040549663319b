"""eventsourcing's PostgreSQL infrastructure, with a pool that recovers from a server restart
at once and connections that say whose they are.

The store's settings (`StoreConfig.eventsourcing_env`) select this factory through
eventsourcing's `PERSISTENCE_MODULE` (a class topic). It is eventsourcing's own
`PostgresFactory`; only its connection pool (not yet open when the factory is built) is made
again with two changes eventsourcing 9.5 offers no setting for:

- **the connections carry the store URL's `application_name`** (`POSTGRES_APPLICATION_NAME`)
  and its TLS parameters (`sslmode`, `sslrootcert`, …; `POSTGRES_TLS_<NAME>`):
  an operator sees nervenbahn's connections in `pg_stat_activity`, and a test ends exactly its
  own (a restart, simulated: `tests/storage/test_postgres_recovery.py`);
- **one failed check sweeps the pool.** With `POSTGRES_PRE_PING` each connection is checked
  before use, and one the server closed is replaced instead of failing the command (pinged
  only if its socket has something to read: a server that closes a connection says so on
  it, and a ping per checkout was a round trip of each command's five). But
  psycopg_pool backs off between failed checks (1 s, 2 s, 4 s, …) and after a restart every
  idle connection is dead: with 5 of them the first `open_case` took 6.3 s. So a failed check
  also checks every idle connection of the pool at once (`ConnectionPool.check`), and the next
  attempt finds fresh ones: 0.14 s (5 connections lost; measured with the case service).

A store whose tables are known to be made (`CREATE_TABLE` off: `nervenbahn.store_opening`
found them recorded in `schema_versions`) opens without any DDL: eventsourcing's
`CREATE TABLE/INDEX … IF NOT EXISTS` still locks the events table (CREATE INDEX takes a SHARE
lock, which waits behind every writer's EXCLUSIVE lock), so an everyday start would queue
behind the writes of running processes. The chain's opening check (reads only) still runs.
"""

from __future__ import annotations

from typing import Any

import structlog
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import ConnectionPool, PostgresDatastore, PostgresFactory

from nervenbahn.audit.recorders_postgres import ChainedPostgresApplicationRecorder
from nervenbahn.config import (
    ENV_PREFIX,
    SHARED_WITH_EVENTSOURCING,
    TLS_ENV_PREFIX,
    TLS_PARAMETERS,
)
from schemas.postgres import check_pooled, silent_server_limits

__all__ = ["APPLICATION_NAME", "NamedPostgresFactory"]

log = structlog.get_logger("nervenbahn.eventstore")

APPLICATION_NAME = "POSTGRES_APPLICATION_NAME"
"""The eventsourcing environment key of the connections' application name."""


class NamedPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory: named connections, a pool swept on a failed check,
    no DDL when the tables are made."""

    def __init__(self, env: Any) -> None:
        _store_settings_only(env)
        super().__init__(env)
        # The keys the store's settings set ("" where the URL gives none); no prefixed
        # variant is left to stand in for them (`_store_settings_only`).
        tls = {name: value for name in TLS_PARAMETERS
               if (value := self.env.get(TLS_ENV_PREFIX + name.upper()))}
        self.datastore.pool = _sweeping_pool(self.datastore, self.env.get(APPLICATION_NAME),
                                             tls)

    def application_recorder(self) -> ApplicationRecorder:
        """eventsourcing's recorder; without `create_table`, its chain is still checked."""
        recorder = super().application_recorder()
        if not self.env_create_table() and isinstance(
            recorder, ChainedPostgresApplicationRecorder
        ):
            recorder.check_chain()
        return recorder


def _store_settings_only(env: Any) -> None:
    """Drop from the application's eventsourcing environment every variable of the process
    that would stand in for a PostgreSQL setting of the store's own: eventsourcing looks up
    `<APPLICATION>_<KEY>` before `<KEY>`, so `NERVENBAHN_POSTGRES_HOST` or
    `NERVENBAHN_POSTGRES_TLS_SSLMODE` in the process's environment used to take the event
    store's connections somewhere else than the store URL says (another host, TLS off)
    while every other connection followed the URL. One that differs is logged."""
    name = getattr(env, "name", "")
    if not name:
        return
    prefix = f"{name.upper()}_"
    for key in [key for key in env if key.startswith(f"{prefix}POSTGRES_")]:
        own = key.removeprefix(prefix)
        if own in env:
            # The pool size and connect timeout are settings of ours too (the same variable
            # names): what they say is in `own` already, as validated (" 08" as "8").
            ours = key == f"{ENV_PREFIX}{own}" and own in SHARED_WITH_EVENTSOURCING
            if env[key] != env[own] and not ours:
                log.warning("environment variable ignored: the store's settings say otherwise",
                            variable=key, setting=own)
            del env[key]


def _sweeping_pool(datastore: PostgresDatastore, name: str | None, tls: dict[str, str]
                   ) -> ConnectionPool[Any]:
    """The datastore's (unopened) pool made again: named connections with the store URL's TLS
    parameters, and a check that sweeps every idle connection when one fails
    (`schemas.postgres.check_pooled`)."""
    old = datastore.pool
    kwargs = dict(old.kwargs) if isinstance(old.kwargs, dict) else {}
    if name:
        kwargs["application_name"] = name
    kwargs |= silent_server_limits()  # a command never waits on a silent server
    kwargs |= tls
    pool: ConnectionPool[Any]

    def check(conn: Any) -> None:
        check_pooled(pool, conn)

    pool = ConnectionPool(
        connection_class=old.connection_class, kwargs=kwargs, min_size=old.min_size,
        max_size=old.max_size, open=False, configure=datastore.after_connect_func(),
        timeout=old.timeout, max_waiting=old.max_waiting, max_lifetime=old.max_lifetime,
        check=check if datastore.pre_ping else None,
        get_password_func=old.get_password_func,
    )
    old.close()  # never opened: releases nothing but its bookkeeping
    return pool
