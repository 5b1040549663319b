"""Auditors: the access log, by person and/or case."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from nervenbahn.api.guard import Context, auditor_in_scope
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import AccessLogEntry, AccessLogPage
from nervenbahn.api.problems import PROBLEM_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/access-log", response_model=AccessLogPage, responses=PROBLEM_RESPONSES)
def read_access_log(
    _auditor: Annotated[Consumer, Depends(auditor_in_scope)],
    ctx: Context,
    person_id: UUID | None = None,
    case_id: UUID | None = None,
    gt: Annotated[int, Query(ge=0, description="Only entries after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AccessLogPage:
    """Who read whose personal data, which fields, when: oldest first."""
    logged = ctx.access_log.select(
        person_id=str(person_id) if person_id else None,
        case_id=str(case_id) if case_id else None,
        gt=gt,
        limit=limit,
    )
    return AccessLogPage(
        entries=[
            AccessLogEntry(
                id=item.id,
                at=item.entry.at,
                consumer=item.entry.consumer,
                scope=item.entry.scope,
                case_id=item.entry.case_id,
                person_id=item.entry.person_id,
                fields=list(item.entry.fields),
                endpoint=item.entry.endpoint,
            )
            for item in logged
        ]
    )
