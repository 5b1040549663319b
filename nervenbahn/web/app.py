"""The web application for the people at the counters, served by `serve` beside the API.

Server-rendered pages (Jinja2) under `/web/`, plain HTML forms (POST, then a redirect), no
script of ours and none from elsewhere: every page works with the keyboard alone and without
JavaScript. The web layer is an entrypoint: it reads the API's read models with the same
scopes, appends to the same access log, and records through the same domain commands and
services; it holds no rules of its own.

Sign-in (`/web/sign-in`), sign-out and the choice of language are here; each role's pages are
an area module (`nervenbahn/web/areas/`), listed in `AREAS`.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nervenbahn.accounts import LANGUAGES, UserStore, same
from nervenbahn.api.context import ApiContext
from nervenbahn.web.auth import (
    SESSION_COOKIE,
    CsrfRefused,
    Form,
    PageNotFound,
    SignedIn,
    SignInRequired,
    Web,
    WebState,
)
from nervenbahn.web.i18n import DEFAULT_LANGUAGE
from nervenbahn.web.rendering import render
from nervenbahn.web.roles import home

__all__ = ["AREAS", "WEB_POLICY", "install_web"]

log = structlog.get_logger("nervenbahn.web")

AREAS: tuple[str, ...] = (
    "audit", "canton", "fund", "fund_delegations", "office", "region_commands", "region",
)
"""The area modules (under `nervenbahn.web.areas`), each with a `router`; region_commands
before region, so that its `cases/new` is not taken for a case id."""

WEB_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The pages load nothing from elsewhere and run no inline script."""
_PRE_SIGN_IN = "nb_sign_in"
"""The cookie that carries the sign-in form's CSRF token (double submit: no session yet)."""

router = APIRouter(prefix="/web", include_in_schema=False)


def install_web(app: FastAPI, context: ApiContext, users: UserStore, *,
                secure_cookies: bool = True) -> None:
    """Serve the web application on `app` (the API's), for the accounts in `users`."""
    app.state.web = WebState(context, users, secure_cookies=secure_cookies)
    app.add_middleware(_PagePolicy)
    for kind, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(kind, _as_page(handler))
    app.add_exception_handler(SignInRequired, _to_sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(PageNotFound, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, _csrf_refused)  # type: ignore[arg-type]
    app.mount("/web/static", StaticFiles(packages=[("nervenbahn.web", "static")]),
              name="web-static")
    for area in AREAS:
        app.include_router(import_module(f"nervenbahn.web.areas.{area}").router)
    app.include_router(router)
    app.add_api_route("/", lambda: RedirectResponse("/web/", 303), include_in_schema=False)


# --- signing in and out ------------------------------------------------------------------------


@router.get("/")
def start(session: SignedIn) -> Response:
    """A signed-in user's home: their role's first page."""
    return RedirectResponse(home(session.user), 303)


@router.get("/sign-in")
def sign_in_page(
    request: Request, web: Web, next: str = "/web/", lang: str = ""
) -> Response:
    """The sign-in form."""
    return _sign_in_form(request, web, next, _language(lang, request))


@router.post("/sign-in")
async def sign_in(request: Request, web: Web) -> Response:
    """Check the name and password; a new session, or the form again with the reason."""
    form = await request.form()
    language = _language(str(form.get("lang", "")), request)
    wanted = _local(str(form.get("next", "/web/")))
    token, cookie = str(form.get("csrf_token", "")), request.cookies.get(_PRE_SIGN_IN, "")
    if not token or not cookie or not same(token, cookie):
        raise CsrfRefused
    username = str(form.get("username", "")).strip().lower()
    # argon2id takes about 0.2 s on purpose: in a thread, not on the event loop, which would
    # hold up every page and the API for each attempt (anyone can send attempts)
    result = await run_in_threadpool(web.users.sign_in, username,
                                     str(form.get("password", "")), now=web.now())
    if result.outcome != "ok" or result.token is None or result.session is None:
        return _sign_in_form(request, web, wanted, language, status=401, username=username,
                             outcome=result.outcome, locked_until=result.locked_until)
    log.info("web sign-in", username=username, role=result.session.user.role)
    replaced = request.cookies.get(SESSION_COOKIE)
    if replaced:  # a session this browser had before is not left alive beside the new one
        web.users.end_session(replaced)
    response = RedirectResponse(wanted if wanted != "/web/" else home(result.session.user), 303)
    response.set_cookie(SESSION_COOKIE, result.token, httponly=True,
                        secure=web.secure_cookies, samesite="lax", path="/")
    response.delete_cookie(_PRE_SIGN_IN, path="/web/sign-in")
    return response


@router.post("/sign-out")
def sign_out(request: Request, web: Web, session: SignedIn, form: Form) -> Response:
    """End the session."""
    web.users.end_session(request.cookies.get(SESSION_COOKIE, ""))
    log.info("web sign-out", username=session.user.username)
    response = RedirectResponse(
        "/web/sign-in?" + urlencode({"lang": session.user.language, "signed_out": "1"}), 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
def choose_language(web: Web, session: SignedIn, form: Form) -> Response:
    """The user's language from now on; back to the page they were on."""
    language = str(form.get("language", ""))
    if language in LANGUAGES:
        web.users.set_language(session.user.username, language)
    return RedirectResponse(_local(str(form.get("back", "/web/"))), 303)


@router.get("/{rest:path}")
def missing(request: Request, session: SignedIn) -> Response:
    """Any other address under /web/: the 404 page (signed in first)."""
    raise PageNotFound


# --- answers of the whole app ------------------------------------------------------------------


def _sign_in_form(
    request: Request, web: WebState, wanted: str, language: str, *, status: int = 200,
    username: str = "", outcome: str = "", locked_until: object = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request, "sign_in.html", None, status=status, language=language, pre_token=token,
        next_path=_local(wanted), username=username, outcome=outcome,
        locked_until=locked_until, signed_out=request.query_params.get("signed_out") == "1",
    )
    response.set_cookie(_PRE_SIGN_IN, token, httponly=True, secure=web.secure_cookies,
                        samesite="strict", path="/web/sign-in")
    return response


def _language(asked: str, request: Request) -> str:
    if asked in LANGUAGES:
        return asked
    accepted = request.headers.get("accept-language", "").lower()
    return "fr" if accepted.startswith("fr") else DEFAULT_LANGUAGE


def _local(path: str) -> str:
    """`path` if it is a page of this app (never another site: no open redirect)."""
    return path if path.startswith("/web/") and not path.startswith("//") else "/web/"


class _PagePolicy:
    """Middleware: the web app's answers (under /web) carry its Content-Security-Policy,
    `Referrer-Policy: same-origin` and `X-Frame-Options: DENY`. Plain ASGI: Starlette's
    `BaseHTTPMiddleware` ran every answer of the API too through a stream and a task of its
    own (issue 17)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/web"):
            await self.app(scope, receive, send)
            return

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = WEB_POLICY
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, answer)


def _as_page(handler: Any) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The API's handler of an error, but on a page of the web app an HTML page with the same
    status (a store or read model unavailable: 503, …) instead of a problem document."""

    async def handle(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not request.url.path.startswith("/web"):
            return response
        session = getattr(request.state, "web_session", None)
        log.warning("web page failed", path=request.url.path, status=response.status_code,
                    error=type(exc).__name__)
        return render(request, "error.html", session, status=response.status_code)

    return handle


def _to_sign_in(request: Request, exc: SignInRequired) -> Response:
    return RedirectResponse("/web/sign-in?" + urlencode({"next": _local(exc.next_path)}), 303)


def _not_found(request: Request, exc: PageNotFound) -> Response:
    session = getattr(request.state, "web_session", None)
    return render(request, "not_found.html", session, status=404)


def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
    session = getattr(request.state, "web_session", None)
    log.warning("web form refused: no valid CSRF token", path=request.url.path)
    return render(request, "forbidden.html", session, status=403)
