"""Authentication and scope: the one place that decides what a key may read.

Every data endpoint depends on exactly one of the `*_in_scope` dependencies below. Each
authenticates the key (401 without a usable one) and then requires the key's scope to be
exactly the resource the path names; anything else — another office, another kind of
scope, an office or region that does not exist — is the same 404 as a missing resource.
The branch office handed to an endpoint comes from the reference data under the key's own
scope, so its municipalities are the only ones the endpoint can query.

The dependencies are `async def`: FastAPI runs a plain `def` dependency in its thread pool,
one hop out of the event loop and back per dependency (three or four a request; under 16
clients ~15 % of the API's CPU, issue 17). None of them waits on anything but a `stat` of the
key file (`ApiKeyRegistry.consumers`; the file is read again only when it changed).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from domain.reference import BranchOffice
from nervenbahn.api.context import ApiContext
from nervenbahn.api.keys import Consumer
from nervenbahn.api.problems import not_found, unauthorized
from nervenbahn.api.scopes import Scope, ScopeKind

__all__ = [
    "ApiKey",
    "auditor_in_scope",
    "authenticate",
    "authenticated",
    "canton_in_scope",
    "context",
    "endpoint",
    "office_in_scope",
    "region_in_scope",
]

_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The consumer's API key (`nervenbahn apikeys add`); it carries the scope.",
)

ApiKey = Annotated[str | None, Security(_api_key)]
"""The request's API key, if it sent one (for an endpoint whose key is optional)."""


async def context(request: Request) -> ApiContext:
    """The context the app was created with."""
    ctx = request.app.state.context
    assert isinstance(ctx, ApiContext)
    return ctx


Context = Annotated[ApiContext, Depends(context)]


def endpoint(request: Request) -> str:
    """The request's method and route template, as the access log records it
    (`GET /v1/branch-offices/{office_id}/cases/{case_id}`: no ids in the endpoint)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


async def authenticated(ctx: Context, key: ApiKey) -> Consumer:
    """The dependency: the consumer holding the request's key; 401 without one."""
    return authenticate(ctx, key)


def authenticate(ctx: ApiContext, key: str | None) -> Consumer:
    """The consumer holding `key`; 401 without one."""
    if not key:
        raise unauthorized("send your API key in the X-API-Key header")
    consumer = ctx.keys.authenticate(key)
    if consumer is None:
        raise unauthorized("the API key is unknown or was revoked")
    return consumer


Authenticated = Annotated[Consumer, Depends(authenticated)]


def _require(consumer: Consumer, kind: ScopeKind, resource_id: str | None = None) -> None:
    """404 unless the consumer's scope is exactly this resource."""
    if consumer.scope != Scope(kind, resource_id):
        raise not_found()


async def office_in_scope(office_id: str, consumer: Authenticated, ctx: Context) -> BranchOffice:
    """The branch office of the path, if the key is that office's."""
    _require(consumer, "branch_office", office_id)
    office = ctx.branch_offices.get(str(consumer.scope.id))
    if office is None:  # a key for an office no longer in the reference data
        raise not_found()
    return office


async def region_in_scope(region_id: str, consumer: Authenticated, ctx: Context) -> str:
    """The social region of the path, if the key is that region's."""
    _require(consumer, "region", region_id)
    if consumer.scope.id not in ctx.reference.regions:
        raise not_found()
    return str(consumer.scope.id)


async def canton_in_scope(consumer: Authenticated) -> Consumer:
    """The consumer, if its key is the canton's (aggregates only)."""
    _require(consumer, "canton")
    return consumer


async def auditor_in_scope(consumer: Authenticated) -> Consumer:
    """The consumer, if its key is an auditor's."""
    _require(consumer, "auditor")
    return consumer
