"""The branch office's pages (role `branch_office`, organisation: the office id), under
`/web/office/{office_id}/`: its municipalities' benefit applications (`office_applications`)
and social-assistance cases (`office_cases`). Another office's pages, and another office's
application or case, answer exactly as a missing page (404).
"""

from __future__ import annotations

from fastapi import APIRouter

from . import office_applications, office_cases

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
"""Both modules' routes, each with the full path (`/web/office/{office_id}/…`): the access
log names a route by its own path."""
router.include_router(office_applications.router)
router.include_router(office_cases.router)
