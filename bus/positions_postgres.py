"""Relay positions and leases in the event store's PostgreSQL schema
(`bus.positions.RelayPositionStore`): one row per relay, each save committed before it returns
(autocommit). A lease is read under a row lock (`FOR UPDATE`) in the transaction that changes
it, its times by the server's clock (`clock_timestamp()`), so instances on several hosts agree.
A connection lost under a statement is replaced (`schemas.postgres.PostgresConnection`): reads,
the renewal and the release run again; a transaction lost half-way fails with
`DatabaseUnavailableError` and the relay's next attempt connects again."""

from __future__ import annotations

from functools import partial
from typing import Any

from psycopg import sql

from bus.errors import LeaseLostError
from bus.positions import (
    RELAY_POSITIONS,
    InstanceRecord,
    Lease,
    RelayPosition,
    RelayPositionStore,
)
from schemas.postgres import PostgresConnection
from schemas.sql import migrate_postgres

__all__ = ["PostgresPositionStore"]

_UPSERT = (
    "INSERT INTO {positions} (relay, position, published, epoch) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (relay) DO UPDATE SET position = excluded.position, "
    "published = excluded.published, epoch = excluded.epoch, updated_at = now()"
)


class PostgresPositionStore(RelayPositionStore):
    """Relay positions and leases in the PostgreSQL database (and schema) of the event store."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._schema = schema or "public"
        self._db = PostgresConnection(
            conninfo, prepare=partial(migrate_postgres, schema=self._schema,
                                      component=RELAY_POSITIONS)
        )
        self._db.connection()  # the tables exist once the store is opened

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(
            positions=sql.Identifier(self._schema, "relay_positions"),
            leases=sql.Identifier(self._schema, "relay_leases"),
            instances=sql.Identifier(self._schema, "serve_instances"),
        )

    def load(self, relay: str) -> RelayPosition:
        query = self._sql("SELECT position, published, epoch FROM {positions} WHERE relay = %s")
        row = self._db.run(lambda db: db.execute(query, (relay,)).fetchone(), idempotent=True)
        return RelayPosition(*row) if row else RelayPosition()

    def save(self, relay: str, position: RelayPosition, lease: Lease | None = None) -> None:
        values = (relay, position.position, position.published, position.epoch)
        with self._db.transaction() as db:
            if lease is not None and not self._held(db, lease):
                raise LeaseLostError(lease.relay, lease.holder, lease.token)
            db.execute(self._sql(_UPSERT), values)

    def acquire(self, relay: str, holder: str, seconds: float) -> Lease | None:
        with self._db.transaction() as db:
            db.execute(
                self._sql(
                    "INSERT INTO {leases} (relay, holder, token, expires_at) "
                    "VALUES (%s, '', 0, '-infinity') ON CONFLICT (relay) DO NOTHING"
                ),
                (relay,),
            )
            row = db.execute(
                self._sql(
                    "SELECT holder, token, expires_at > clock_timestamp() FROM {leases} "
                    "WHERE relay = %s FOR UPDATE"
                ),
                (relay,),
            ).fetchone()
            assert row is not None  # the row was inserted just before, in this transaction
            current, token, valid = row
            if valid and current != holder:
                return None  # another instance holds it
            token = token if valid else token + 1
            db.execute(
                self._sql(
                    "UPDATE {leases} SET holder = %s, token = %s, expires_at = "
                    "clock_timestamp() + make_interval(secs => %s), "
                    "acquired_at = clock_timestamp() "
                    "WHERE relay = %s"
                ),
                (holder, token, seconds, relay),
            )
        return Lease(relay, holder, int(token))

    def renew(self, lease: Lease, seconds: float) -> bool:
        statement = self._sql(
            "UPDATE {leases} SET expires_at = clock_timestamp() + make_interval(secs => %s) "
            "WHERE relay = %s AND holder = %s AND token = %s AND expires_at > clock_timestamp()"
        )
        values = (seconds, lease.relay, lease.holder, lease.token)
        cursor = self._db.run(lambda db: db.execute(statement, values), idempotent=True)
        return cursor.rowcount == 1

    def release(self, lease: Lease) -> None:
        statement = self._sql(
            "UPDATE {leases} SET expires_at = clock_timestamp() "
            "WHERE relay = %s AND holder = %s AND token = %s"
        )
        values = (lease.relay, lease.holder, lease.token)
        self._db.run(lambda db: db.execute(statement, values), idempotent=True)

    def holder(self, relay: str) -> Lease | None:
        query = self._sql(
            "SELECT holder, token FROM {leases} WHERE relay = %s AND expires_at > clock_timestamp()"
        )
        row = self._db.run(lambda db: db.execute(query, (relay,)).fetchone(), idempotent=True)
        return Lease(relay, row[0], int(row[1])) if row else None

    def announce(self, record: InstanceRecord, seconds: float) -> list[InstanceRecord]:
        with self._db.transaction() as db:
            db.execute(self._sql("DELETE FROM {instances} WHERE expires_at < "
                                 "clock_timestamp() - interval '1 day'"))
            db.execute(
                self._sql(
                    "INSERT INTO {instances} (holder, instance, host, pid, read_models, "
                    "group_suffix, expires_at, started_at) VALUES (%s, %s, %s, %s, %s, %s, "
                    "clock_timestamp() + make_interval(secs => %s), clock_timestamp()) "
                    "ON CONFLICT (holder) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                (record.holder, record.instance, record.host, record.pid, record.read_models,
                 record.group_suffix, seconds),
            )
            rows = db.execute(
                self._sql(
                    "SELECT holder, instance, host, pid, read_models, group_suffix "
                    "FROM {instances} WHERE holder != %s AND expires_at > clock_timestamp() "
                    "ORDER BY started_at"
                ),
                (record.holder,),
            ).fetchall()
        return [InstanceRecord(*row) for row in rows]

    def live_instances(self) -> list[InstanceRecord]:
        query = self._sql(
            "SELECT holder, instance, host, pid, read_models, group_suffix FROM {instances} "
            "WHERE expires_at > clock_timestamp() ORDER BY started_at"
        )
        rows = self._db.run(lambda db: db.execute(query).fetchall(), idempotent=True)
        return [InstanceRecord(*row) for row in rows]

    def withdraw(self, holder: str) -> None:
        statement = self._sql("DELETE FROM {instances} WHERE holder = %s")
        self._db.run(lambda db: db.execute(statement, (holder,)), idempotent=True)

    def close(self) -> None:
        self._db.close()

    def _held(self, db: Any, lease: Lease) -> bool:
        """Inside a transaction: the lease is held unexpired (row locked until it ends)."""
        row = db.execute(
            self._sql(
                "SELECT 1 FROM {leases} WHERE relay = %s AND holder = %s AND token = %s "
                "AND expires_at > clock_timestamp() FOR SHARE"
            ),
            (lease.relay, lease.holder, lease.token),
        ).fetchone()
        return row is not None
