"""Health of the process, for a process manager or load balancer: `/health/live` and
`/health/ready`.

No API key is needed and nothing is access-logged: the answers hold no personal data, only
whether the process's parts work (and, when one does not, the store's address without its
password, the access log's path, a worker's or relay's name).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from nervenbahn.api.guard import Context

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """200 while the process answers at all (no personal data; no key needed, not logged).
    Answered on the event loop, never waiting for a worker thread: busy threads
    (NERVENBAHN_API_THREADS) are not a dead process."""
    return {"status": "live"}


@router.get(
    "/ready",
    responses={503: {"description": "A check failed: the body names it and what is wrong."}},
)
def ready(request: Request, ctx: Context) -> JSONResponse:
    """200 when the event store answers, the access log can be written, every worker of
    `serve` is alive and every relay is within NERVENBAHN_READY_MAX_LAG of the store; else 503.
    The body lists each check with "ok" or what is wrong (no personal data; no key needed,
    not logged)."""
    supervision: Any = getattr(request.app.state, "supervision", None)
    if ctx.readiness is None:
        return JSONResponse({"status": "ready", "failing": [], "checks": {}})
    ok, body = ctx.readiness.report(supervision)
    return JSONResponse(body, status_code=200 if ok else 503)
