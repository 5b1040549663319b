"""Helpers of the browser tests: Debian's Chromium driven by Playwright, axe-core, screenshots,
and the steps every page test takes (sign in, tab to a control).

Playwright cannot download a browser of its own on our machines: it launches Debian's
`chromium` (installed by `make`, see the Makefile) by its path, NERVENBAHN_CHROMIUM or the one
on PATH. The flags are those that let Chromium run as root without a screen and without
reaching for Google's hosts, which this machine's closed network refuses.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.site import WebUser

__all__ = [
    "AXE_SCRIPT",
    "CHROMIUM_ARGS",
    "SCREENSHOTS",
    "Focus",
    "Violation",
    "answered_as_missing",
    "axe_check",
    "axe_violations",
    "chromium_path",
    "focused",
    "screenshot",
    "sign_in",
    "sign_in_form",
    "tab_to",
]

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core from package.json (`make node_modules/.installed`)."""
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--lang=de-CH",  # date inputs show 31.12.2026, as a Swiss desk's browser does
)
BLOCKING_IMPACTS = ("serious", "critical")
"""axe-core impacts that fail a test (issue 16: no serious or critical violation)."""
SIGN_IN = "/web/sign-in"


def chromium_path() -> str | None:
    """The Chromium to launch: NERVENBAHN_CHROMIUM, else `chromium` on PATH, else None."""
    return os.environ.get("NERVENBAHN_CHROMIUM") or shutil.which("chromium")


def axe_violations(page: Page) -> list[Violation]:
    """Run axe-core on the page as it stands: its serious and critical violations, each
    element at fault once (rule, impact, help and the element's selector)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated by the browser's debugging protocol, not as a <script> the page's
        # Content-Security-Policy would refuse: the pages are checked under their real policy.
        page.evaluate(_axe_source())
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [Violation(v["id"], v["impact"], v["help"],
                      tuple(" ".join(node["target"]) for node in v["nodes"]))
            for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def axe_check(page: Page) -> None:
    """Run axe-core on the page as it stands; fail on any serious or critical violation,
    naming each rule, its impact and the selectors of the elements at fault."""
    blocking = axe_violations(page)
    assert not blocking, f"axe-core on {page.url}:\n" + "\n".join(
        f"- {v}" for v in blocking)


@dataclass(frozen=True)
class Violation:
    """A serious or critical violation axe-core found on a page."""

    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]
    """The CSS selectors of the elements at fault."""

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} at {', '.join(self.targets)}"


@functools.cache
def _axe_source() -> str:
    return AXE_SCRIPT.read_text(encoding="utf-8") + "\n;undefined"


def screenshot(page: Page, name: str) -> Path | None:
    """Write docs/screenshots/NAME.png of the whole page, only when NERVENBAHN_SCREENSHOTS=1
    (`make screenshots`); the path written, or None."""
    if os.environ.get("NERVENBAHN_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_form(page: Page, base_url: str) -> None:
    """Open the sign-in page (waits for its form)."""
    page.goto(f"{base_url}{SIGN_IN}")
    expect(page.locator("input[name=username]")).to_be_visible()


def sign_in(page: Page, base_url: str, user: WebUser, password: str | None = None) -> None:
    """Sign `user` in through the sign-in form (with `password` instead of theirs, if given);
    returns once the answer to the form has loaded."""
    sign_in_form(page, base_url)
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", user.password if password is None else password)
    with page.expect_navigation():
        page.locator("form:has(input[name=username]) [type=submit]").click()


def answered_as_missing(page: Page, url: str, missing: str) -> None:
    """Open `url` (something out of the signed-in user's scope) and `missing` (an address of
    the same shape naming nothing): both must answer 404 with the same page (issue 16: out of
    scope looks exactly like missing)."""
    answers = []
    for address in (url, missing):
        response = page.goto(address)
        assert response is not None, address
        answers.append((response.status, page.locator("main").inner_text()))
    assert answers[0][0] == 404, f"{url} answered {answers[0][0]}"
    assert answers[0] == answers[1], f"{url} answers {answers[0]}, {missing} {answers[1]}"


@dataclass(frozen=True)
class Focus:
    """The element that has the keyboard focus, as a test names it."""

    tag: str
    name: str
    """Its `name` attribute (form controls), else ''."""
    type: str
    label: str
    """Its label's text, aria-label or own text, whitespace collapsed."""

    def is_(self, name: str) -> bool:
        """Whether `name` is its name attribute, its label or its text."""
        return name in (self.name, self.label)


_FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const text = (e.labels && e.labels.length ? e.labels[0].innerText
                : e.getAttribute('aria-label') || e.innerText || e.value || '');
  return {tag: e.tagName.toLowerCase(), name: e.getAttribute('name') || '',
          type: e.getAttribute('type') || '', label: text.replace(/\\s+/g, ' ').trim()};
}"""


def focused(page: Page) -> Focus | None:
    """The element that has the focus (None: the document itself)."""
    found = page.evaluate(_FOCUSED)
    return None if found is None else Focus(**found)


def tab_to(page: Page, name: str, *, most: int = 40) -> list[Focus]:
    """Press Tab until the element named `name` (see `Focus.is_`) has the focus (no press if
    it has it already, e.g. by `autofocus`); the elements focused on the way, that one last.
    Fails after `most` presses."""
    now = focused(page)
    if now is not None and now.is_(name):
        return [now]
    passed: list[Focus] = []
    for _ in range(most):
        page.keyboard.press("Tab")
        now = focused(page)
        if now is not None:
            passed.append(now)
            if now.is_(name):
                return passed
    raise AssertionError(f"{name!r} not reached with {most} Tab presses; passed: "
                         + ", ".join(f.name or f.label or f.tag for f in passed))

