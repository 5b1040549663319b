"""Fixtures of the web app's tests: in-process apps on the API tests' seeded store, with one
account per role (tests/web/client.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from nervenbahn.accounts import UserStore
from nervenbahn.api import create_app
from tests.api.conftest import NOW, Keys, ReadModels, make_context
from tests.api.conftest import keys as keys
from tests.api.conftest import seeded as seeded
from tests.web.client import USERS

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
