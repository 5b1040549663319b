"""The FastAPI application: routers per consumer, problem+json errors, OpenAPI at /docs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from nervenbahn.api.context import ApiContext
from nervenbahn.api.problems import install_problem_handlers
from nervenbahn.api.routes import audit, branch_offices, canton, problem_types, regions

__all__ = ["create_app"]

DESCRIPTION = """\
Queries on nervenbahn's read models. Every consumer sends its API key in `X-API-Key`; the
key's scope decides what it may read: a branch office the cases of its municipalities, a
social region its caseload and work list, the canton aggregates only, an auditor the access
log and any case as known at a past time (state, budget by month, differences between two
knowledge times). A resource outside the key's scope answers exactly like one that does not
exist (404). Every read of personal data is recorded in the access log before it is answered.
Errors are RFC 9457 problem details (`application/problem+json`).
"""


def create_app(context: ApiContext) -> FastAPI:
    """The API on the given context (read models, vault, keys, access log, clock)."""
    app = FastAPI(
        title="nervenbahn",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = context
    install_problem_handlers(app)
    for module in (branch_offices, regions, canton, audit, problem_types):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


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
