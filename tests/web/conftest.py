"""Fixtures of the browser tests: a Chromium per session, a fresh page per test, and the web app
served on the session's broker (tests/web/site.py).

Without a Chromium the browser tests skip, saying how to install it; with CI=true they fail
instead (as the PostgreSQL tests do, tests/conftest.py): CI's set-up installs it.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from nervenbahn.testing import broker_settings
from tests.web.browser import CHROMIUM_ARGS, chromium_path
from tests.web.site import Site, served_site

INSTALL_CHROMIUM = "make .chromium.installed (apt-get install -y chromium)"
LOCALE = "de-CH"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}. CI=true requires it; install it with: {INSTALL_CHROMIUM}",
                    pytrace=False)
    pytest.skip(f"{reason}; install it with: {INSTALL_CHROMIUM}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (headless), driven by Playwright, for the whole session."""
    path = chromium_path()
    if path is None:
        _unavailable("no chromium: neither NERVENBAHN_CHROMIUM nor `chromium` on PATH")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS),
                                              headless=True)
        yield launched
        launched.close()


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
