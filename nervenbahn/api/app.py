"""The FastAPI application: routers per consumer, problem+json errors, OpenAPI at /docs
(Swagger UI served from the installed `fastapi-offline` package, no CDN), no answer cached."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from time import perf_counter
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nervenbahn.api.context import ApiContext
from nervenbahn.api.problems import install_problem_handlers
from nervenbahn.api.registry import REGISTRY_PREFIX, create_registry_app
from nervenbahn.api.routes import (
    asyncapi,
    audit,
    benefit_applications,
    branch_offices,
    canton,
    health,
    metrics,
    problem_types,
    region_claims,
    regions,
)
from nervenbahn.health import Supervision
from nervenbahn.metrics import Metrics

__all__ = ["DOCS_ASSETS", "REGISTRY_PREFIX", "create_app"]


DOCS_ASSETS = "/docs/assets"
"""Where the Swagger UI's script, style and icon are served from (the `fastapi-offline`
package's copy): /docs loads nothing from another origin."""
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
"""The Swagger UI page starts itself with an inline script; everything else is ours."""

DESCRIPTION = """\
Queries on nervenbahn's read models. Every consumer sends its API key in `X-API-Key`; the
key's scope decides what it may read: a branch office the cases of its municipalities, a
social region its caseload and work list, the canton aggregates only, an auditor the access
log and any case as known at a past time (state, budget by month, differences between two
knowledge times). A resource outside the key's scope answers exactly like one that does not
exist (404). Every read of personal data — and each of an auditor's reads of a case — is
recorded in the access log before it is answered; no answer may be cached
(`Cache-Control: no-store`). Parameters out of range (dates outside the years 1900–2999,
offsets and positions too large) are refused naming the parameter. Errors are RFC 9457
problem details (`application/problem+json`).
"""


def create_app(context: ApiContext) -> FastAPI:
    """The API on the given context (read models, vault, keys, access log, clock)."""
    app = FastAPIOffline(
        title="nervenbahn",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
        favicon_url=f"{DOCS_ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
        lifespan=_worker_threads(context.threads),
    )
    app.state.context = context
    app.add_middleware(_AnswerHeadersAndTiming, metrics=context.metrics)
    context.metrics.watch(
        lambda: getattr(app.state, "supervision", None), lambda found: _ready(context, found)
    )
    install_problem_handlers(app)
    for module in (
        branch_offices, benefit_applications, regions, region_claims, canton, audit,
        problem_types, health, metrics, asyncapi,
    ):
        app.include_router(module.router)
    if context.registry is not None:
        app.mount(REGISTRY_PREFIX, create_registry_app(context.registry, context.keys))
    if context.users is not None:
        from nervenbahn.web.app import install_web

        install_web(app, context, context.users, secure_cookies=context.secure_cookies)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class _AnswerHeadersAndTiming:
    """Middleware (plain ASGI: Starlette's `BaseHTTPMiddleware` ran each answer through a
    stream and a task of its own, ~15 % of the API's CPU under load, issue 17).

    Every answer: `Cache-Control: no-store` (answers may hold personal data, and none is
    worth keeping in a shared cache) and `X-Content-Type-Options: nosniff`; the docs pages
    also a Content-Security-Policy that lets them load from this origin only.

    And every answer's latency, by route template (never the path asked: it may hold ids),
    method and status class; an answer that failed counts as a 500."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = perf_counter(), 500
        docs = scope["path"].startswith("/docs")

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["X-Content-Type-Options"] = "nosniff"
                if docs:
                    headers["Content-Security-Policy"] = DOCS_POLICY
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except BaseException:
            status = 500
            raise
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(route, scope["method"], status, perf_counter() - started)


def _worker_threads(threads: int) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the routes' work runs in at most `threads` worker threads of the
    event loop (NERVENBAHN_API_THREADS; Starlette's default is 40). The server must run the
    lifespan (uvicorn's `lifespan="on"`, as `nervenbahn serve` does)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    return lifespan


def _ready(context: ApiContext, supervision: Supervision | None) -> bool:
    """Whether `GET /health/ready` would answer 200 now."""
    return context.readiness is None or context.readiness.report(supervision)[0]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with problem answers documented as application/problem+json only.

    FastAPI files a response model under the route's own media type (application/json);
    error answers are not JSON objects of that kind, so their schema moves.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description,
            routes=app.routes,
        )
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if "application/problem+json" in content and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
        app.openapi_schema = schema
    return app.openapi_schema
