"""The problem types' own pages: what each `type` URI of an error answer means."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from nervenbahn.api.answers import answer
from nervenbahn.api.problems import (
    PROBLEM_TYPES,
    not_found,
    problem_responses,
    problem_type_uri,
)

__all__ = ["router"]

router = APIRouter(prefix="/problems", tags=["problem types"])


class ProblemType(BaseModel):
    """A problem type: its URI, status, title and meaning."""

    type: str
    status: int
    title: str
    description: str


@router.get(
    "/{slug}",
    response_model=ProblemType,
    responses=problem_responses("not-found", "invalid-parameters"),
)
def describe_problem_type(slug: str) -> Response:
    """What an error answer of this type means (no key needed)."""
    if slug not in PROBLEM_TYPES:
        raise not_found()
    status, title, description = PROBLEM_TYPES[slug]
    return answer(ProblemType(
        type=problem_type_uri(slug), status=status, title=title, description=description
    ))
