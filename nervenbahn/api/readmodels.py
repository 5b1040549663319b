"""Opening a read model for one request: read-only, and a clear 503 if it is not built; its
freshness on the answer.

A rebuild replaces the database file (or, in PostgreSQL, commits its refilled tables), and
the next request must read the new one: a SQLite read model's connection is kept per thread
only while its file is the same (`projections.read_connections`), a PostgreSQL one is opened
per request. The database errors of
either backend are translated by the read models' storage (`projections.storage.
open_read_model`); here they become the API's answer.

Every answer from a read model names it and says how fresh it is (docs/operations.md):
`X-Read-Model: region` and `X-Read-Model-As-Of: 2026-12-06T07:58:46.123456Z`, the recorded
time (UTC) of the newest event the read model had applied when the request read it (read
before the data: the answer is at least that fresh). The header is left out while the read
model has applied nothing. The reporting read model knows recorded times to the day only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Query, Response

from nervenbahn.api.errors import ReadModelUnavailableError
from nervenbahn.bounds import MAX_OFFSET
from projections import READ_MODELS
from projections.errors import ReadModelUnreadableError
from projections.read_connections import reused_read_model
from projections.storage import ReadModelTarget, SQLConnection, read_progress

__all__ = ["AS_OF_HEADER", "READ_MODEL_HEADER", "PageLimit", "PageOffset", "read_model"]

PageLimit = Annotated[int, Query(ge=1, le=500)]
"""How many rows a page of a read model's list holds (`limit`; default 100 where used)."""
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
"""How many rows of the list come before the page (`offset`)."""

READ_MODEL_HEADER = "X-Read-Model"
AS_OF_HEADER = "X-Read-Model-As-Of"


@contextmanager
def read_model(
    target: ReadModelTarget, name: str, response: Response
) -> Iterator[SQLConnection]:
    """A read-only connection to the projection `name` at `target` (its SQLite file, or the
    PostgreSQL schema of the read models), its freshness set on `response`;
    ReadModelUnavailableError (503) if it cannot be opened or read."""
    try:
        with reused_read_model(target, READ_MODELS[name].tables[0]) as db:
            progress = read_progress(db, name)
            response.headers[READ_MODEL_HEADER] = name
            if progress is not None and progress.as_of is not None:
                response.headers[AS_OF_HEADER] = progress.as_of.isoformat().replace(
                    "+00:00", "Z"
                )
            yield db
    except ReadModelUnreadableError as exc:
        raise ReadModelUnavailableError(name, exc.reason) from exc
