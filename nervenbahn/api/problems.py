"""Errors as problem details (RFC 9457): `application/problem+json` with type, title, status,
detail and instance, for every error the API answers — its own, FastAPI's and Starlette's.

An answer that must not reveal whether something exists (out of scope) is the very same
`not_found()` a missing resource gets: same type, title, detail; the instance is the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from eventsourcing.persistence import InterfaceError as PersistenceInterfaceError
from eventsourcing.persistence import OperationalError as PersistenceOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
)
from nervenbahn.api.errors import ApiError, ApiKeyFileError, ReadModelUnavailableError
from nervenbahn.audit.errors import AccessLogUnavailableError, AuditError
from nervenbahn.container import StoreUnavailableError
from schemas.postgres import DatabaseUnavailableError

__all__ = [
    "PROBLEM_RESPONSES",
    "PROBLEM_TYPES",
    "InvalidParam",
    "Problem",
    "ProblemError",
    "ProblemResponse",
    "install_problem_handlers",
    "invalid_parameter",
    "not_found",
    "problem_responses",
    "unauthorized",
]

log = structlog.get_logger("nervenbahn.api")

PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    "unauthorized": (
        401,
        "Unauthorized",
        "The request has no X-API-Key header, or its key is unknown or revoked.",
    ),
    "not-found": (
        404,
        "Not Found",
        "Nothing was found at this address.",
    ),
    "method-not-allowed": (
        405,
        "Method Not Allowed",
        "This address does not answer that method; the API is read-only (GET).",
    ),
    "conflict": (
        409,
        "Conflict",
        "The resource was changed by someone else in the meantime; reload it and retry.",
    ),
    "refused": (
        422,
        "Refused",
        "The request is well-formed but breaks a rule; the detail names the rule.",
    ),
    "invalid-parameters": (
        422,
        "Invalid Parameters",
        "A path or query parameter is malformed or out of range; see `errors`.",
    ),
    "service-unavailable": (
        503,
        "Service Unavailable",
        "Something the answer needs is not available yet; the detail says what to do.",
    ),
    "internal-error": (
        500,
        "Internal Server Error",
        "The request failed unexpectedly; it has been logged.",
    ),
}
"""Every problem type: its status, title and what it means (also served at /problems/…)."""


class InvalidParam(BaseModel):
    """One malformed parameter of a 422 problem."""

    name: str
    located_in: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[InvalidParam] | None = None


class ProblemResponse(JSONResponse):
    """A JSON response with the problem media type."""

    media_type = "application/problem+json"


@dataclass
class ProblemError(ApiError):
    """Answer the request with this problem (raised by the API's own code)."""

    slug: str
    detail: str
    headers: dict[str, str] | None = None
    errors: list[InvalidParam] | None = None


def not_found() -> ProblemError:
    """The one answer for 'missing' and 'out of scope' alike."""
    return ProblemError("not-found", PROBLEM_TYPES["not-found"][2])


def invalid_parameter(name: str, located_in: str, reason: str) -> ProblemError:
    """A 422 problem naming one malformed or out-of-range parameter."""
    return ProblemError(
        "invalid-parameters", f"invalid parameters: {name}", None,
        [InvalidParam(name=name, located_in=located_in, reason=reason)],
    )


def unauthorized(detail: str) -> ProblemError:
    """No usable API key."""
    return ProblemError("unauthorized", detail, {"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


def problem_type_uri(slug: str) -> str:
    """The problem type's URI: a page of this API describing it."""
    return f"/problems/{slug}"


def problem_response(request: Request, error: ProblemError) -> ProblemResponse:
    """The response for a problem, with the request's path as its instance."""
    status, title, _ = PROBLEM_TYPES[error.slug]
    body = Problem(
        type=problem_type_uri(error.slug),
        title=title,
        status=status,
        detail=error.detail,
        instance=request.url.path,
        errors=error.errors,
    )
    return ProblemResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=error.headers
    )


def problem_responses(*slugs: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these problem types (schema Problem, problem+json)."""
    return {
        PROBLEM_TYPES[slug][0]: {
            "model": Problem,
            "description": PROBLEM_TYPES[slug][1],
            "content": {"application/problem+json": {}},
        }
        for slug in slugs
    }


PROBLEM_RESPONSES = problem_responses(
    "unauthorized", "not-found", "invalid-parameters", "service-unavailable"
)
"""The error answers every data endpoint documents in OpenAPI."""


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem+json answer (replacing FastAPI's defaults)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(ApiError, _on_own_error)
    app.add_exception_handler(AuditError, _on_own_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(StoreUnavailableError, _on_store_unavailable)
    # A lost database connection (a PostgreSQL restart): this request fails, the next one
    # connects again (schemas.postgres; eventsourcing's pool checks before use).
    app.add_exception_handler(DatabaseUnavailableError, _on_store_unavailable)
    app.add_exception_handler(PersistenceOperationalError, _on_store_unavailable)
    app.add_exception_handler(PersistenceInterfaceError, _on_store_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    if exc.errors:
        _log_invalid(request, exc.errors)
    return problem_response(request, exc)


def _log_invalid(request: Request, errors: list[InvalidParam]) -> None:
    """One short line per refused request: which parameters, never their values."""
    log.info("invalid parameters", path=request.url.path,
             parameters=sorted({error.name for error in errors}))


async def _on_own_error(request: Request, exc: Exception) -> ProblemResponse:
    """The API's own errors and the audit feature's (the access log's): what the operator
    must fix is said; everything else is internal."""
    if isinstance(exc, ReadModelUnavailableError | AccessLogUnavailableError | ApiKeyFileError):
        log.error("api dependency unavailable", error=type(exc).__name__, detail=str(exc))
        return problem_response(request, ProblemError("service-unavailable", _public(exc)))
    return await _on_unexpected(request, exc)


async def _on_domain_error(request: Request, exc: Exception) -> ProblemResponse:
    """The domain's refusals, wherever a route did not answer them itself: a missing case is
    the one not-found answer, malformed input names its fields, a concurrent change is 409."""
    if isinstance(exc, CaseNotFoundError):
        return problem_response(request, not_found())
    if isinstance(exc, InvalidCommandError):
        errors = [InvalidParam(name=f, located_in="query", reason=r) for f, r in exc.problems]
        _log_invalid(request, errors)
        names = ", ".join(sorted({e.name for e in errors}))
        return problem_response(request, ProblemError(
            "invalid-parameters", f"invalid parameters: {names}", None, errors))
    if isinstance(exc, ConcurrentChangeError):
        return problem_response(request, ProblemError("conflict", str(exc)))
    log.info("refused", path=request.url.path, error=type(exc).__name__)
    return problem_response(request, ProblemError("refused", str(exc)))


async def _on_store_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    """The event store cannot be reached: the operator is told why, the consumer to retry."""
    log.error("event store unavailable", error=type(exc).__name__, detail=str(exc))
    return problem_response(request, ProblemError(
        "service-unavailable", "the event store cannot be reached; retry later"))


def _public(exc: ApiError | AuditError) -> str:
    """The detail a consumer may see (no file paths or database messages)."""
    if isinstance(exc, ReadModelUnavailableError):
        return str(exc)
    if isinstance(exc, AccessLogUnavailableError):
        return "the access log cannot be written; personal data is not served without it"
    return "the API-key registry cannot be read; ask the operator to check it"


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        InvalidParam(
            name=".".join(str(part) for part in error["loc"][1:]) or str(error["loc"][0]),
            located_in=str(error["loc"][0]),
            reason=str(error["msg"]),
        )
        for error in exc.errors()
    ]
    names = ", ".join(sorted({e.name for e in errors}))
    _log_invalid(request, errors)
    return problem_response(
        request, ProblemError("invalid-parameters", f"invalid parameters: {names}", None, errors)
    )


async def _on_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    """Starlette's own answers: unknown paths (404) and methods (405)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return problem_response(request, not_found())
    if exc.status_code == 405:
        return problem_response(
            request,
            ProblemError(
                "method-not-allowed",
                PROBLEM_TYPES["method-not-allowed"][2],
                dict(exc.headers) if exc.headers else None,
            ),
        )
    log.error("unexpected http exception", status=exc.status_code)
    return problem_response(request, _internal())


async def _on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error("unexpected error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return problem_response(request, _internal())


def _internal() -> ProblemError:
    return ProblemError("internal-error", PROBLEM_TYPES["internal-error"][2])
