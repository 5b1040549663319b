"""`GET /asyncapi.json`: the bus's AsyncAPI 3.0.0 document (`bus.asyncapi`), the same as
`nervenbahn asyncapi` writes.

No API key is needed and nothing is access-logged: the document holds no personal data, only
topic names, partitions, header meanings and Avro schemas, which an integrator needs before
holding a key (and which the schema registry hands out anyway). The server binding's
`schemaRegistryUrl` is this server's own registry, at the address the request came to.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from bus.asyncapi import asyncapi_document
from nervenbahn.api.guard import Context
from nervenbahn.api.registry import REGISTRY_PREFIX

__all__ = ["router"]

router = APIRouter(tags=["bus"])


@router.get("/asyncapi.json", response_model=None)
def asyncapi(ctx: Context, request: Request) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic of the bus (no personal data; no key
    needed, not logged), naming this server's schema registry (`schemaRegistryUrl`: the URL
    the request came to, + /registry)."""
    registry = str(request.base_url).rstrip("/") + REGISTRY_PREFIX
    return asyncapi_document(ctx.kafka, registry_url=registry)
