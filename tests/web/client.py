"""The web app in-process (a TestClient over HTTPS, so the Secure cookie is sent), signed in
as one user: for fast page tests. The browser tests (Playwright) run against `serve`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

__all__ = ["USERS", "WebUser", "csrf_of", "form_values", "sign_in"]

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class WebUser:
    """A test account: its name, role and organisation."""

    username: str
    role: str
    organisation: str
    password: str = PASSWORD


USERS = (
    WebUser("cw.olten", "caseworker", "so-olten"),
    WebUser("cw.solothurn", "caseworker", "so-solothurn"),
    WebUser("office.olten", "branch_office", "akso-olten"),
    WebUser("office.grenchen", "branch_office", "akso-grenchen"),
    WebUser("fund", "fund_officer", "akso"),
    WebUser("canton", "canton", "so"),
    WebUser("auditor", "auditor", "finanzkontrolle"),
)
"""One account per role (two offices, two regions, to try the other's pages)."""

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: Response) -> str:
    """The CSRF token of the first form of a page."""
    found = _TOKEN.search(page.text)
    assert found, f"no csrf_token in the page {page.url}"
    return found[1]


def sign_in(client: TestClient, user: WebUser, password: str | None = None) -> Response:
    """Sign in through the form (following the redirect to the home page)."""
    form = client.get("/web/sign-in")
    assert form.status_code == 200, form.text
    return client.post("/web/sign-in", data={
        "csrf_token": csrf_of(form), "username": user.username,
        "password": user.password if password is None else password, "next": "/web/",
    })


class _FormValues(HTMLParser):
    """What a browser would send of the page's last form as loaded: its inputs' values, the
    selected options, the checked boxes."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self._select = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.values = {}
        elif tag == "input" and a.get("type") == "checkbox":
            if "checked" in a:
                self.values.setdefault(str(a["name"]), []).append(a["value"])
        elif tag == "input" and a.get("value"):
            self.values[str(a["name"])] = a["value"]
        elif tag == "select":
            self._select = str(a["name"])
        elif tag == "option" and "selected" in a and a.get("value"):
            self.values[self._select] = a["value"]


def form_values(page: str) -> dict[str, Any]:
    """What a browser would send of the page's last form as loaded (its inputs' values, the
    selected options, the checked boxes), to post it with some fields changed."""
    parser = _FormValues()
    parser.feed(page)
    return parser.values
