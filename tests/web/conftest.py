"""Fixtures of the web app's tests: in-process apps on the API tests' seeded store, with one
account per role (tests/web/client.py); and for the browser tests a Chromium per session, a
fresh page per test, and the web app served on the session's broker (tests/web/site.py).

Without a Chromium the browser tests skip, saying how to install it; with CI=true they fail
instead (as the PostgreSQL tests do, tests/conftest.py): CI's set-up installs it.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from nervenbahn.accounts import UserStore
from nervenbahn.api import create_app
from nervenbahn.testing import broker_settings
from tests.api.conftest import NOW, Keys, ReadModels, make_context
from tests.api.conftest import keys as keys
from tests.api.conftest import seeded as seeded
from tests.web.client import USERS
from tests.web.site import Site, served_site

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
"""argon2id at a test's cost (the accounts' default cost is argon2-cffi's, RFC 9106)."""

WebOn = Callable[..., TestClient]
"""`web_on(models, **overrides)`: a client of the app (API and web) on `models`."""


@pytest.fixture
def web_on(tmp_path: Path, keys: Keys) -> Iterator[WebOn]:
    """Start the app on given read models with the test accounts; context fields replaced."""
    opened: list[tuple[TestClient, Any]] = []

    def start(models: ReadModels, **overrides: Any) -> TestClient:
        folder = tmp_path / f"web-{len(opened)}"
        users = UserStore(folder / "web-users.db", lockout_attempts=5, lockout_minutes=15,
                          hasher=FAST_HASHER)
        for user in USERS:
            users.add(user.username, role=user.role, organisation=user.organisation,
                      password=user.password, now=NOW, by="test")
        context = dataclasses.replace(make_context(models, keys, folder), users=users,
                                      **overrides)
        client = TestClient(create_app(context), base_url="https://testserver",
                            raise_server_exceptions=False, follow_redirects=True)
        opened.append((client.__enter__(), context))
        return client

    yield start
    for client, context in opened:
        client.__exit__(None, None, None)
        context.close()


@pytest.fixture
def web(web_on: WebOn, seeded: ReadModels) -> TestClient:
    """The app on the seeded read models."""
    return web_on(seeded)


# --- browser tests ---

LOCALE = "de-CH"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook runs first otherwise)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test with a browser in the xdist group `browser` (`make test` runs `--dist
    loadgroup`): one worker runs them all, so the session builds one Chromium and one served
    site (`served_web`, about a minute of set-up) instead of one per worker."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies of another test), German-Swiss locale."""
    context = browser.new_context(locale=LOCALE)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def served_web(tmp_path_factory: pytest.TempPathFactory, kafka_broker: str) -> Iterator[Site]:
    """`nervenbahn serve` on a seeded store and the session's broker, ready; its URL, users
    (one per role) and the ids of the seeded cases and applications."""
    folder = tmp_path_factory.mktemp("web")
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    with served_site(folder, broker_settings(kafka_broker), master_key) as site:
        yield site
