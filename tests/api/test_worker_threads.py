"""The API runs its routes' work in as many worker threads as NERVENBAHN_API_THREADS says
(its lifespan sets the event loop's thread limiter; Starlette's default is 40)."""

from __future__ import annotations

from anyio.to_thread import current_default_thread_limiter

from tests.api.conftest import AppOn, ReadModels


def test_the_routes_work_in_the_threads_configured(app_on: AppOn, seeded: ReadModels) -> None:
    client = app_on(seeded, threads=3)

    limiter = client.portal.call(current_default_thread_limiter)  # type: ignore[union-attr]

    assert limiter.total_tokens == 3
    assert client.get("/health/live").status_code == 200


def test_by_default_eight(app_on: AppOn, seeded: ReadModels) -> None:
    client = app_on(seeded)

    limiter = client.portal.call(current_default_thread_limiter)  # type: ignore[union-attr]

    assert limiter.total_tokens == 8
