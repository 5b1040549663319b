"""The demo's last step: one web account per role, and where to sign in.

`make demo` ends by creating these accounts in the store folder's accounts file
(NERVENBAHN_WEB_USERS) with passwords made up now, printing them once, and saying how to open
the web application (`nervenbahn serve`, then the URL). A demo run with `--reset` starts a new
accounts file.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from nervenbahn.accounts import UserStore
from nervenbahn.demo_session import DemoSession

__all__ = ["DEMO_URL", "DEMO_USERS", "create_web_users", "reset_web_users"]

DEMO_URL = "http://127.0.0.1:8000/"
"""Where `nervenbahn serve` (default host and port) serves the web application."""

DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    ("sozialdienst.olten", "caseworker", "so-olten", "Sozialdienst Olten (Fallführung)"),
    ("teamleitung.olten", "supervisor", "so-olten", "Sozialdienst Olten (Teamleitung)"),
    ("zweigstelle.olten", "branch_office", "akso-olten", "AHV-Zweigstelle Olten"),
    ("ausgleichskasse", "fund_officer", "akso", "Ausgleichskasse AKSO"),
    ("kanton", "canton", "so", "Kanton Solothurn (ASO)"),
    ("revision", "auditor", "finanzkontrolle", "Finanzkontrolle"),
)
"""(user name, role, organisation, name shown) of each demo account."""


def reset_web_users(path: Path) -> None:
    """Delete the accounts file of an earlier demo run."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def create_web_users(rt: DemoSession) -> dict[str, str]:
    """One account per role with a new password; print them and how to sign in."""
    web = rt.settings.web
    store = UserStore(web.users, session_minutes=web.session_minutes,
                      lockout_attempts=web.lockout_attempts, lockout_minutes=web.lockout_minutes)
    passwords: dict[str, str] = {}
    now = datetime.now(UTC)
    try:
        existing = {user.username for user in store.users()}
        for username, role, organisation, name in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            if username in existing:
                store.reset(username, password, now=now, by="demo", enable=True)
            else:
                store.add(username, role=role, organisation=organisation, password=password,
                          now=now, by="demo", display_name=name)
            passwords[username] = password
    finally:
        store.close()
    table = Table(title="Web application: one account per role (passwords shown this once)",
                  title_justify="left")
    for column in ("role", "organisation", "user", "password"):
        table.add_column(column)
    for username, role, organisation, _name in DEMO_USERS:
        table.add_row(role, organisation, username, passwords[username])
    rt.console.print(table)
    rt.console.print(
        f"Web application: run `nervenbahn serve`, then open {DEMO_URL} and sign in as one of "
        "them (German first; the header switches to French). Its first start relays the "
        "demo's events to its own broker and rebuilds the read models from them: about two "
        f"minutes until {DEMO_URL}health/ready answers 200, and pages are slow until then.",
        soft_wrap=True)
    return passwords
