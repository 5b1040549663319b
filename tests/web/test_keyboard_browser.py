"""A whole journey with the keyboard alone (issue 16: every page usable with the keyboard): a
branch office signs in, opens "Neues Gesuch", fills the form in, is refused for a wrong AHV
number, reaches the refusal from the error summary, corrects it, records the application, checks
its completeness and forwards it — with Tab, Shift+Tab, Enter, Space, the arrow keys in selects
and typing; no click, no fill.

On the way: the skip link is the first Tab stop and moves the focus to the main content, the
focus order on the form is its visual order (each label above its field, the fields top to
bottom, the submit button last), and every element the focus lands on shows it (an outline).
"""

from __future__ import annotations

import json
import random
import re
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from nervenbahn.synthetic import synthetic_person
from tests.web.browser import Focus, focused, sign_in_form, tab_to
from tests.web.site import OLTEN, Site

pytestmark = pytest.mark.slow

OFFICE = "akso-olten"
NEW_APPLICATION = "Neues Gesuch"
RECORD = "Gesuch erfassen"
CHECK = "Vollständigkeitsprüfung erfassen"
FORWARD = "Gesuch weiterleiten"
WRONG_AHV = "756.1234.5678.90"
"""An AHV number whose check digit is wrong (…97 would be right)."""
_OUTLINE = """() => {
  const style = getComputedStyle(document.activeElement);
  return [style.outlineStyle, style.outlineWidth];
}"""
_ACTIVE = """() => {
  const e = document.activeElement;
  return e === null ? '' : e.id || e.tagName.toLowerCase();
}"""
_CONTROLS = """(action) => {
  const form = document.querySelector(`form[action="${action}"]`);
  const box = e => e.getBoundingClientRect();
  return Array.from(form.querySelectorAll('input:not([type=hidden]), select, button'), e => ({
    id: e.id || e.type, top: box(e).top,
    label: e.labels && e.labels.length ? box(e.labels[0]).bottom : null,
  }));
}"""


def _key(page: Page, key: str) -> Focus:
    """Press `key`; the element focused then, which must show its focus."""
    page.keyboard.press(key)
    now = focused(page)
    assert now is not None, f"{key}: the focus left the page's controls"
    _shows_focus(page, now)
    return now


def _shows_focus(page: Page, now: Focus) -> None:
    style, width = page.evaluate(_OUTLINE)
    assert style != "none" and width != "0px", f"{now} shows no focus (outline {style} {width})"


def _tab_to(page: Page, name: str, *, backwards: bool = False, most: int = 40) -> None:
    """Tab (Shift+Tab: `backwards`) to the control named `name`, each stop showing its focus."""
    for _ in range(most):
        now = _key(page, "Shift+Tab" if backwards else "Tab")
        if now.is_(name):
            return
    raise AssertionError(f"{name!r} not reached with {most} presses")


def _skip_to_main(page: Page) -> None:
    """The skip link is the first Tab stop; Enter moves the focus to <main>."""
    page.keyboard.press("Tab")
    first = focused(page)
    assert first is not None and first.label == "Zum Inhalt springen", first
    _shows_focus(page, first)
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def _choose(page: Page, value: str, most: int = 200) -> None:
    """Press ArrowDown in the focused select until `value` is chosen."""
    for _ in range(most):
        if page.evaluate("() => document.activeElement.value") == value:
            return
        page.keyboard.press("ArrowDown")
    raise AssertionError(f"{value!r} not among the options")


def _type_date(page: Page, iso: str, day_first: bool) -> None:
    """Type a date into the focused date field, its parts in the order the field shows them
    (a Swiss user's Chromium: day, month, year)."""
    year, month, day = iso.split("-")
    page.keyboard.type(day + month + year if day_first else month + day + year)
    assert page.evaluate("() => document.activeElement.value") == iso


def _next_field(page: Page) -> Focus:
    """Tab to the next control: out of the focused one, whose parts (a date's day, month and
    year) Tab may pass one by one first."""
    was = focused(page)
    for _ in range(4):
        now = _key(page, "Tab")
        if was is None or now.name != was.name or not was.name:
            return now
    raise AssertionError(f"Tab does not leave {was}")


def _day_first(context: BrowserContext) -> bool:
    """Whether this Chromium's date fields begin with the day. Headless Chromium lays them
    out in its own language (en-US: month first), whatever the page's locale (de-CH), the
    --lang flag or LANG say; tried on a blank page of the same browser, before the test's."""
    probe = context.new_page()
    try:
        probe.set_content('<input type="date" id="probe">')
        probe.focus("#probe")
        probe.keyboard.type("01022000")
        return bool(probe.evaluate("() => document.getElementById('probe').value") == "2000-02-01")
    finally:
        probe.close()


def _fill_in(page: Page, applicant: dict[str, Any], ahv: str, day_first: bool) -> None:
    """From the benefit select, each field in turn with Tab."""
    _choose(page, "el_ahv")
    _key(page, "Tab")
    _choose(page, str(OLTEN))
    for name in ("given_name", "family_name"):
        assert _key(page, "Tab").name == name
        page.keyboard.type(applicant[name])
    assert _key(page, "Tab").name == "ahvn13"
    page.keyboard.type(ahv)
    assert _key(page, "Tab").name == "birth_date"
    _type_date(page, applicant["birth_date"], day_first)
    for name in ("street", "postal_code", "town"):
        assert _next_field(page).name == name
        page.keyboard.type(str(applicant[name]))
    assert _key(page, "Tab").name == "received_on"
    _type_date(page, "2026-12-01", day_first)


def _in_visual_order(page: Page, action: str, tabbed: list[str]) -> None:
    """The controls of the form at `action`, in the order Tab reached them, stand top to
    bottom, each under its label."""
    controls = {c["id"]: c for c in page.evaluate(_CONTROLS, action)}
    assert tabbed == list(controls), f"Tab order {tabbed}, document order {list(controls)}"
    tops = [controls[name]["top"] for name in tabbed]
    assert tops == sorted(tops), f"not top to bottom: {list(zip(tabbed, tops, strict=True))}"
    for name in tabbed:
        label = controls[name]["label"]
        assert label is None or label <= controls[name]["top"] + 1, f"{name}: label below it"


def _applications(site: Site) -> dict[str, str]:
    """The office's applications in the store (`nervenbahn benefits list`): stage by id."""
    rows = json.loads(site.nervenbahn("--json", "--actor", f"test:branch_office:{OFFICE}",
                                      "benefits", "list"))["applications"]
    return {str(r["application_id"]): str(r["stage"]) for r in rows}


def _press_enter_for_a_page(page: Page) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_a_branch_office_records_checks_and_forwards_an_application_by_keyboard(
    page: Page, served_web: Site
) -> None:
    day_first = _day_first(page.context)
    page.bring_to_front()
    _sign_in_by_keyboard(page, served_web)
    # the skip link, then back up into the navigation for "Neues Gesuch"
    _skip_to_main(page)
    _tab_to(page, NEW_APPLICATION, backwards=True)
    _press_enter_for_a_page(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(NEW_APPLICATION)
    application_id = _record_after_a_refusal(page, served_web, _applicant(), day_first)
    assert _applications(served_web)[application_id] == "received"
    # the completeness check: every document handed in (Space on each checkbox)
    _skip_to_main(page)
    _tab_to(page, "documents_present")
    while (now := focused(page)) is not None and now.name == "documents_present":
        if not page.evaluate("() => document.activeElement.checked"):
            page.keyboard.press("Space")
        _key(page, "Tab")
    assert now is not None and now.label == CHECK, now
    _press_enter_for_a_page(page)
    expect(page.get_by_role("status")).to_contain_text("Erfasst")
    # forwarded, nothing missing: no reason needed
    _skip_to_main(page)
    _tab_to(page, FORWARD)
    _press_enter_for_a_page(page)
    expect(page.get_by_role("status")).to_contain_text("Erfasst")
    assert _applications(served_web)[application_id] == "forwarded"


def _sign_in_by_keyboard(page: Page, site: Site) -> None:
    user = site.user("branch_office")
    sign_in_form(page, site.url)
    tab_to(page, "username")
    page.keyboard.type(user.username)
    _key(page, "Tab")
    page.keyboard.type(user.password)
    _press_enter_for_a_page(page)


def _record_after_a_refusal(
    page: Page, site: Site, applicant: dict[str, Any], day_first: bool
) -> str:
    """Fill the new application in, field by field in its visual order, with a wrong AHV
    number; refused, reach the field from the error summary, correct it and record. The
    recorded application's id."""
    before = _applications(site)
    _skip_to_main(page)
    _key(page, "Tab")
    _fill_in(page, applicant, WRONG_AHV, day_first)
    assert _next_field(page).label == RECORD
    action = f"/web/office/{OFFICE}/applications/new"
    _in_visual_order(page, action, _order_of(page, action))
    _press_enter_for_a_page(page)
    # refused, nothing recorded: the error summary's link is the first stop in main
    expect(page.locator("#error-summary")).to_be_visible()
    assert _applications(site) == before
    _skip_to_main(page)
    link = _key(page, "Tab")
    assert link.tag == "a" and "AHV" in link.label, link
    page.keyboard.press("Enter")
    expect(page.locator("#f-ahvn13")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(applicant["ahvn13"])
    _tab_to(page, RECORD)
    _press_enter_for_a_page(page)
    # recorded: the notice names it, on the application's page
    expect(page.get_by_role("status")).to_contain_text("Erfasst")
    found = re.search(r"applications/([0-9a-f-]{36})", page.url)
    assert found is not None, page.url
    return found[1]


def _order_of(page: Page, action: str) -> list[str]:
    """The ids of the form's controls in Tab order: from its submit button (focused) back
    to its first control with Shift+Tab, then forward to the button again."""
    inside = f"() => document.activeElement.closest('form[action=\"{action}\"]') !== null"
    order: list[str] = []
    for _ in range(40):
        if not page.evaluate(inside):
            break
        active = page.evaluate(_ACTIVE)
        if not order or order[-1] != active:  # a date's parts, one field
            order.append(active)
        _key(page, "Shift+Tab")
    _tab_to(page, RECORD)
    return [name if name != "button" else "submit" for name in reversed(order)]


def _applicant() -> dict[str, Any]:
    """An invented person of Olten of pension age, with a valid AHV number."""
    return synthetic_person(random.Random(1616), "Olten", date(1950, 1, 1), 5)
