"""Who is signed in, what they may reach, and the CSRF check of every form.

- `signed_in`: the session of the request's cookie, or a redirect to the sign-in page (which
  comes back to the page asked for).
- `office_in_scope` / `region_in_scope` / `role_in`: a page under `/web/office/{office_id}/…`
  or `/web/region/{region_id}/…` is reachable by that office's or region's users only; to
  anyone else it is the very page a missing one is (404), as in the API (`nervenbahn.api.guard`).
- `form_of`: a POST's form, after its `csrf_token` matched the session's (403 otherwise). The
  session cookie is also `SameSite=Lax`; the token is what makes the check independent of the
  browser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from domain.commands import Actor
from domain.errors import NervenbahnError
from nervenbahn.accounts import User, UserStore, WebSession, same
from nervenbahn.api.context import ApiContext
from nervenbahn.web.memo import Memo

__all__ = [
    "SESSION_COOKIE",
    "CsrfRefused",
    "Form",
    "PageNotFound",
    "SignInRequired",
    "Web",
    "WebError",
    "WebState",
    "actor_of",
    "form_of",
    "office_in_scope",
    "region_in_scope",
    "role_in",
    "signed_in",
    "state",
]

SESSION_COOKIE = "nb_session"


class WebError(NervenbahnError):
    """Something the web app answers with a page of its own (404, sign-in, 403)."""


class PageNotFound(WebError):
    """Answer with the 404 page: nothing here, or nothing this user may see (the same)."""


class SignInRequired(WebError):
    """No live session: redirect to the sign-in page, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path
        super().__init__(next_path)


class CsrfRefused(WebError):
    """A form came without the session's CSRF token: answer 403, record nothing."""


class WebState:
    """What the web pages need beside the API's context: the accounts, the cookie policy."""

    def __init__(self, context: ApiContext, users: UserStore, *, secure_cookies: bool) -> None:
        self.context = context
        self.users = users
        self.secure_cookies = secure_cookies
        self.memo = Memo()
        """Derived figures without personal data, kept while their source has not moved."""

    def now(self) -> datetime:
        """The context's clock."""
        return self.context.clock()


def state(request: Request) -> WebState:
    """The web state the app was created with."""
    found = request.app.state.web
    assert isinstance(found, WebState)
    return found


State = Annotated[WebState, Depends(state)]


def signed_in(request: Request, web: State) -> WebSession:
    """The request's live session; SignInRequired without one."""
    token = request.cookies.get(SESSION_COOKIE)
    session = web.users.session(token, now=web.now()) if token else None
    if session is None:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(wanted if request.method == "GET" else "/web/")
    request.state.web_session = session
    return session


SignedIn = Annotated[WebSession, Depends(signed_in)]


def role_in(*roles: str) -> Callable[[WebSession], WebSession]:
    """A dependency: the session, if its user has one of `roles`; else the 404 page."""

    def check(session: SignedIn) -> WebSession:
        if session.user.role not in roles:
            raise PageNotFound
        return session

    return check


def office_in_scope(office_id: str, session: SignedIn) -> WebSession:
    """The session, if it is a user of the branch office the path names."""
    if session.user.role != "branch_office" or session.user.organisation != office_id:
        raise PageNotFound
    return session


def region_in_scope(region_id: str, session: SignedIn) -> WebSession:
    """The session, if it is a caseworker or supervisor of the social region the path
    names."""
    if (session.user.role not in ("caseworker", "supervisor")
            or session.user.organisation != region_id):
        raise PageNotFound
    return session


async def form_of(request: Request, session: SignedIn) -> FormData:
    """The POST's form, once its CSRF token matched the session's; CsrfRefused otherwise."""
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not same(token, session.csrf_token):
        raise CsrfRefused
    return form


def actor_of(user: User) -> dict[str, Any]:
    """The acting user of a command recorded from the web: the account's name, role and
    organisation (the domain's rules decide what that role may do)."""
    return {"user_id": user.username, "role": user.role, "organisation": user.organisation}


def domain_actor(user: User) -> Actor:
    """The same as an `Actor`."""
    return Actor(**actor_of(user))


Web = Annotated[WebState, Depends(state)]
"""A route's parameter: the web state (accounts, memo, the API's context)."""
Form = Annotated[FormData, Depends(form_of)]
"""A route's parameter: the POST's form, its CSRF token checked."""
