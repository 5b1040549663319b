"""The store contract on a PostgreSQL schema of this test's own."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from domain.application.cases import CaseService
from nervenbahn.config import load_settings
from nervenbahn.container import build_service

from .contract import Clock, StoreContract


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    """The case service on PostgreSQL, in a schema that only this test uses."""

    @pytest.fixture
    def store(self, postgres_server_url: str, postgres_dsn: str, master_key: str) -> None:
        self.server_url = postgres_server_url
        self.settings = load_settings(
            {"NERVENBAHN_STORE": postgres_dsn, "NERVENBAHN_MASTER_KEY": master_key}
        )

    def make_service(self, clock: Clock) -> CaseService:
        return self.keep(build_service(self.settings, clock))

    def stored_bytes(self) -> bytes:
        # Every row of every table of the schema. bytea comes back raw: a row cast to text
        # would show event payloads as hex, where no clear name could ever be found.
        schema = self.settings.store.schema_name
        chunks: list[bytes] = []
        with psycopg.connect(self.server_url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                query = sql.SQL("SELECT * FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table))
                for row in conn.execute(query):
                    chunks.extend(v if isinstance(v, bytes) else str(v).encode() for v in row)
        return b"\n".join(chunks)

    def wrapped_keys(self) -> dict[str, bytes]:
        query = sql.SQL("SELECT person_id, wrapped_key FROM {}.person_keys").format(
            sql.Identifier(self.settings.store.schema_name))
        with psycopg.connect(self.server_url) as conn:
            return {person_id.hex: bytes(key) for person_id, key in conn.execute(query)}

    def test_erased_key_leaves_no_copy_at_rest(self) -> None:
        pytest.skip("PostgreSQL keeps deleted rows in its data files until VACUUM; "
                    "a client cannot see them (the contract checks the live rows elsewhere)")


del StoreContract
