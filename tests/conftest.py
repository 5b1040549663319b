"""Fixtures shared by every test package: a master key and a PostgreSQL schema of one's own.

Kept generic on purpose: a fixture belongs here only if more than one test package needs it.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
import structlog
from psycopg import sql

POSTGRES_URL = os.environ.get(
    "NERVENBAHN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The test server (trust auth); override with NERVENBAHN_TEST_POSTGRES (a URL, no query)."""

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(autouse=True)
def _restore_logging_config() -> Iterator[None]:
    """A test's structlog set-up ends with it (the CLI binds logging to a captured stream)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def master_key() -> str:
    """A fresh master key as NERVENBAHN_MASTER_KEY expects it: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The URL of the reachable test server; skips without it, or fails when CI=true."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        info = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}"
        reason = f"PostgreSQL is not reachable at {where} ({str(exc).splitlines()[0]})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}. CI=true requires it; start it with: {START_POSTGRES}",
                        pytrace=False)
        pytest.skip(f"{reason}; start it with: {START_POSTGRES}")
    return POSTGRES_URL


@pytest.fixture
def postgres_dsn(postgres_server_url: str) -> Iterator[str]:
    """A NERVENBAHN_STORE URL naming a schema of this test's own, dropped afterwards.

    The schema does not exist yet: whatever opens the store has to create it.
    """
    schema = f"t_{uuid4().hex[:12]}"
    yield f"{postgres_server_url}?schema={schema}"
    with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
