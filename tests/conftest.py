"""Fixtures shared by every test package: a master key and a PostgreSQL schema of one's own.

Kept generic on purpose: a fixture belongs here only if more than one test package needs it.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
import structlog
from playwright.sync_api import Browser, sync_playwright
from psycopg import sql

from bus.broker import EmbeddedBroker
from nervenbahn import config, keyfiles
from nervenbahn.testing import BROKER_DEADLINE_S, TEST_KAFKA
from tests.web.browser import CHROMIUM_ARGS, chromium_path

__all__ = ["BROKER_DEADLINE_S", "TEST_KAFKA"]

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


@pytest.fixture(autouse=True)
def _keys_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files of every test in a tmp folder, never in $HOME: NERVENBAHN_KEY_DIR for the
    process environment, HOME for settings read from a dict of the test's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NERVENBAHN_KEY_DIR", str(home / "keys"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


@pytest.fixture(autouse=True)
def _keys_created_on_first_need(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Take the step `nervenbahn init` takes, for tests: a SQLite store's key that is missing
    when first needed is created then (as `create_keys` would), so that the many tests that
    open a store of their own need not run `init` first. Reading settings itself creates
    nothing; tests of that and of `init` opt out with `@pytest.mark.keys_not_created`."""
    if request.node.get_closest_marker("keys_not_created"):
        return
    read = config._stored_key

    def read_or_create(sqlite_path: Path, key_dir: Path, kind: str) -> bytes:
        try:
            return read(sqlite_path, key_dir, kind)
        except config.KeyMissingError:
            keyfiles.create_store_keys(sqlite_path, key_dir, [kind])
            return read(sqlite_path, key_dir, kind)

    monkeypatch.setattr(config, "_stored_key", read_or_create)


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


# --- broker fixtures ---
# One Kafka broker per test session (so per pytest-xdist worker); tests are isolated by topic
# names, each test getting a topic prefix of its own from `kafka_settings`. `kafka_broker` and
# `kafka_settings` come from the connector test harness (nervenbahn/testing.py, loaded as a
# plugin by pyproject.toml), which connector packages outside this repository use too.


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker of this test's own, free to be stopped and restarted."""
    with EmbeddedBroker(tmp_path / "private-broker", start_timeout=BROKER_DEADLINE_S) as broker:
        yield broker



INSTALL_CHROMIUM = "make .chromium.installed (apt-get install -y chromium)"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (headless), driven by Playwright, for the whole session: one for the
    web app's tests and the audit report's printing alike (a second `sync_playwright` in the
    same process fails: "Playwright Sync API inside the asyncio loop")."""
    path = chromium_path()
    if path is None:
        reason = "no chromium: neither NERVENBAHN_CHROMIUM nor `chromium` on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}. CI=true requires it; install it with: {INSTALL_CHROMIUM}",
                        pytrace=False)
        pytest.skip(f"{reason}; install it with: {INSTALL_CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS),
                                              headless=True)
        yield launched
        launched.close()
