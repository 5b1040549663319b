"""Languages and Swiss formats of the web application.

Every text of a page goes through gettext: the templates' `{% trans %}` / `_()` take English
source text, and the catalogues `nervenbahn/web/locale/<language>/*.po` hold its German and
French (one catalogue file per area of the app, so areas do not edit the same file; they are
merged when loaded). German is the default, French the second language (Bern is bilingual);
each user chooses theirs.

Formats are Swiss whatever the language: dates `31.12.2026`, amounts `CHF 1'234.50` (CLDR's de_CH,
for French pages too).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from nervenbahn.accounts import LANGUAGES

__all__ = ["DEFAULT_LANGUAGE", "LOCALE_FOLDER", "N_", "chf", "day", "moment", "translations"]

LOCALE_FOLDER = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "de"
SWISS_TIME_FORMAT = "%d.%m.%Y %H:%M"


def N_(text: str) -> str:
    """Marks `text` for the catalogues where it is defined; it is translated where shown."""
    return text


@cache
def translations(language: str) -> Translations:
    """The merged catalogues of `language` (German for an unknown one)."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    merged: Translations | None = None
    for po in sorted((LOCALE_FOLDER / language).glob("*.po")):
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        part = Translations(buffer)
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    return merged or Translations()


def chf(amount: Decimal | float | int | str | None, *, currency: bool = True) -> str:
    """`CHF 1’234.50` (or without the currency); an empty string for None."""
    if amount is None or amount == "":
        return ""
    text = format_decimal(Decimal(str(amount)), format="#,##0.00", locale="de_CH")
    return f"CHF {text}" if currency else text


def day(value: date | datetime | str | None) -> str:
    """`31.12.2026`; an empty string for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return value.strftime("%d.%m.%Y")


def moment(value: datetime | None) -> str:
    """`31.12.2026 14:05`, Swiss time."""
    if value is None:
        return ""
    from domain.case import SWISS_TIME

    return value.astimezone(SWISS_TIME).strftime(SWISS_TIME_FORMAT)
