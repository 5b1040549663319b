"""Every text of the web app is in German and in French: the messages extracted from the
templates and the code (Babel's extractors, as `pybabel extract` would) each have a
translation in both catalogues, and no catalogue keeps a message nothing uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from nervenbahn.web.i18n import LOCALE_FOLDER, translations

WEB = LOCALE_FOLDER.parent
REPORT = WEB.parent / "audit"
"""The audit report (`nervenbahn/audit/report.py`) speaks through the same catalogues."""
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}


def _used() -> dict[str, str]:
    found: dict[str, str] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(WEB), METHODS, options_map=OPTIONS
    ):
        text = message if isinstance(message, str) else message[0]
        found.setdefault(text, f"{filename}:{line}")
    for filename, line, message, _comments, _context in extract_from_dir(
        str(REPORT), [("report.py", "python")]
    ):
        text = message if isinstance(message, str) else message[0]
        found.setdefault(text, f"audit/{filename}:{line}")
    return found


def _catalogue(language: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for po in sorted((LOCALE_FOLDER / language).glob("*.po")):
        with po.open("rb") as handle:
            for message in read_po(handle):
                if message.id:
                    messages[str(message.id)] = str(message.string)
    return messages


def test_the_extraction_finds_the_layouts_texts() -> None:
    used = _used()
    assert "Sign out" in used and "Work list" in used and "caseworker" in used


@pytest.mark.parametrize("language", ["de", "fr"])
def test_every_text_has_a_translation(language: str) -> None:
    catalogue = _catalogue(language)
    missing = {text: where for text, where in _used().items() if not catalogue.get(text)}
    assert not missing, "\n".join(
        f'#: {where}\nmsgid "{text}"\nmsgstr ""\n' for text, where in missing.items())


@pytest.mark.parametrize("language", ["de", "fr"])
def test_no_catalogue_keeps_a_message_nothing_uses(language: str) -> None:
    unused = sorted(set(_catalogue(language)) - set(_used()))
    assert not unused


def test_the_catalogues_translate_at_run_time() -> None:
    assert translations("de").gettext("Sign out") == "Abmelden"
    assert translations("fr").gettext("Sign out") == "Se déconnecter"
    assert Path(LOCALE_FOLDER / "de").is_dir()


@pytest.mark.parametrize("language", ["de", "fr"])
def test_a_text_has_one_translation_across_the_areas_catalogues(language: str) -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in sorted((LOCALE_FOLDER / language).glob("*.po")):
        with po.open("rb") as handle:
            for message in read_po(handle):
                if not message.id:
                    continue
                text, translated = str(message.id), str(message.string)
                earlier = seen.setdefault(text, (po.name, translated))
                if earlier[1] != translated:
                    clashes.append(f"{text!r}: {earlier[0]} {earlier[1]!r}, {po.name} "
                                   f"{translated!r}")
    assert not clashes, "\n".join(clashes)
