"""A route's JSON answer from the model it built, sent as it is.

A route that returns a pydantic model has FastAPI validate it again against the route's
`response_model` (for a sync route in a worker thread of its own: a second hand-off per
request) and then serialise it. Our routes build their answers with `model_validate` or the
model's constructor, which validate already: the second validation checked nothing new and
cost 16 % of the API's CPU per request (issue 17, measured in-process over the benchmark's
mix of requests: 0.52 -> 0.44 ms). `answer` serialises the model once and hands FastAPI a
finished response; the route keeps its `response_model` for the OpenAPI document.

Build the model with validation (never `model_construct`): what `answer` sends is not
checked again.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

__all__ = ["JSON", "answer"]

JSON = "application/json"


def answer(model: BaseModel, response: Response | None = None) -> Response:
    """`model` as the JSON answer, serialised as FastAPI would (by alias, JSON mode), with the
    status and the headers a route set on its injected `response`, if it has one. `model` is
    of the route's `response_model` itself (FastAPI would drop a subclass's extra fields)."""
    body = model.__pydantic_serializer__.to_json(model, by_alias=True)
    status = response.status_code if response is not None and response.status_code else 200
    sent = Response(body, status_code=status, media_type=JSON)
    if response is not None:
        sent.raw_headers.extend(response.raw_headers)
    return sent
