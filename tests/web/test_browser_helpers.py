"""The browser-test helpers themselves, on pages of the test's own (no server): axe-core fails
on serious violations and says where, Tab walks the focus order, screenshots only on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.web import browser as helpers
from tests.web.browser import axe_check, focused, screenshot, tab_to

LABELLED = """<!doctype html><html lang="de"><head><title>Anmelden</title></head><body>
<main><h1>Anmelden</h1><form method="post">
<label for="u">Benutzername</label><input id="u" name="username" autocomplete="username">
<label for="p">Passwort</label><input id="p" name="password" type="password">
<button type="submit">Anmelden</button></form></main></body></html>"""


def test_axe_check_passes_a_labelled_form(page: Page) -> None:
    page.set_content(LABELLED)
    axe_check(page)
    axe_check(page)  # axe-core injected once, run again


def test_axe_check_names_rule_impact_and_target_of_a_serious_violation(page: Page) -> None:
    page.set_content(LABELLED.replace('<label for="p">Passwort</label>', "")
                     .replace('id="p"', 'id="nameless"'))
    with pytest.raises(AssertionError) as refused:
        axe_check(page)
    assert "- label (critical): " in str(refused.value)
    assert "#nameless" in str(refused.value)


def test_tab_to_walks_the_focus_order_and_names_what_it_passed(page: Page) -> None:
    page.set_content(LABELLED)
    passed = tab_to(page, "password")
    assert [f.name for f in passed] == ["username", "password"]
    assert passed[0].label == "Benutzername"
    page.keyboard.press("Tab")
    assert (now := focused(page)) is not None and now.type == "submit" and now.is_("Anmelden")
    with pytest.raises(AssertionError, match="'Abmelden' not reached with 5 Tab presses"):
        tab_to(page, "Abmelden", most=5)


def test_screenshot_is_written_only_when_asked(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "SCREENSHOTS", tmp_path / "screenshots")
    page.set_content(LABELLED)
    monkeypatch.delenv("NERVENBAHN_SCREENSHOTS", raising=False)
    assert screenshot(page, "sign-in") is None
    assert not (tmp_path / "screenshots").exists()
    monkeypatch.setenv("NERVENBAHN_SCREENSHOTS", "1")
    written = screenshot(page, "sign-in")
    assert written == tmp_path / "screenshots" / "sign-in.png"
    assert written.read_bytes().startswith(b"\x89PNG")
