"""Pages from Jinja2 templates, in the user's language, with the layout's navigation.

`render(request, "office/applications.html", session, title=…, …)`: the template gets
`user`, `csrf_token`, `language`, `nav` (the role's pages), the path, the Swiss formats as
filters (`|chf`, `|day`, `|moment`), a code's label and an event's field (`|label`,
`|shown`, with `field_labels` and `free_text`: `nervenbahn.web.labels`) and gettext (`_()`,
`{% trans %}`). One Jinja2 environment per language (gettext is installed per environment,
so two requests in two languages never share one).
"""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from nervenbahn.accounts import WebSession
from nervenbahn.web.i18n import DEFAULT_LANGUAGE, chf, day, moment, translations
from nervenbahn.web.labels import FIELDS, FREE_TEXT, label, shown
from nervenbahn.web.roles import navigation

__all__ = ["TEMPLATES", "environment", "render"]

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment(language: str) -> Environment:
    """The templates in `language`."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translated = translations(language)
    env.install_gettext_translations(translated, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(chf=chf, day=day, moment=moment,
                       label=partial(label, gettext=translated.gettext),
                       shown=partial(shown, gettext=translated.gettext))
    env.globals.update(language=language, field_labels=FIELDS, free_text=FREE_TEXT)
    return env


def render(
    request: Request, template: str, session: WebSession | None, *, status: int = 200,
    language: str | None = None, **values: Any,
) -> HTMLResponse:
    """The page `template` for this session's user (or signed-out, in `language`)."""
    lang = session.user.language if session is not None else (language or DEFAULT_LANGUAGE)
    env = environment(lang)
    page = env.get_template(template).render(
        request=request,
        path=request.url.path,
        user=session.user if session else None,
        csrf_token=session.csrf_token if session else "",
        nav=navigation(session.user) if session else [],
        **values,
    )
    return HTMLResponse(page, status_code=status)
