"""`GET /metrics`: the process's metrics in the Prometheus text format (`nervenbahn.metrics`).

No personal data: command types, route templates, relays, workers, consumer groups, read
models, counts and times. So by default no API key is needed and nothing is access-logged,
like the health checks: a scraper usually reaches an internal address only.
NERVENBAHN_METRICS_ACCESS=key asks for any valid API key (401 without one), for an API that
is reachable where its figures should not be read.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from nervenbahn.api.guard import ApiKey, Context, authenticate
from nervenbahn.api.problems import PROBLEM_RESPONSES
from nervenbahn.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."},
        **PROBLEM_RESPONSES,
    },
)
def metrics(ctx: Context, key: ApiKey) -> Response:
    """The process's metrics (Prometheus text format; docs/operations.md lists them). No
    personal data; no key needed unless NERVENBAHN_METRICS_ACCESS=key."""
    if ctx.metrics_access == "key":
        authenticate(ctx, key)
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
