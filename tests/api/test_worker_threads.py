"""The API runs its routes' work in as many worker threads as NERVENBAHN_API_THREADS says
(its lifespan sets the event loop's thread limiter; Starlette's default is 40)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from anyio.to_thread import current_default_thread_limiter

from nervenbahn.api.routes import regions
from tests.api.conftest import AppOn, Keys, ReadModels


def test_the_routes_work_in_the_threads_configured(app_on: AppOn, seeded: ReadModels) -> None:
    client = app_on(seeded, threads=3)

    limiter = client.portal.call(current_default_thread_limiter)  # type: ignore[union-attr]

    assert limiter.total_tokens == 3
    assert client.get("/health/live").status_code == 200


def test_by_default_eight(app_on: AppOn, seeded: ReadModels) -> None:
    client = app_on(seeded)

    limiter = client.portal.call(current_default_thread_limiter)  # type: ignore[union-attr]

    assert limiter.total_tokens == 8


def test_liveness_is_answered_while_every_worker_thread_is_busy(
    app_on: AppOn, seeded: ReadModels, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_on(seeded, threads=2)
    inside, release = threading.Semaphore(0), threading.Event()
    real = regions.caseload

    def held(db: Any, region: str) -> dict[str, int]:
        inside.release()
        assert release.wait(timeout=30)
        return real(db, region)

    monkeypatch.setattr(regions, "caseload", held)
    busy = [threading.Thread(target=client.get, args=("/v1/regions/so-olten/caseload",),
                             kwargs={"headers": keys.of("region:so-olten")}) for _ in range(2)]
    for thread in busy:
        thread.start()
    try:
        assert all(inside.acquire(timeout=30) for _ in busy)  # both threads taken
        answered: list[int] = []
        probe = threading.Thread(
            target=lambda: answered.append(client.get("/health/live").status_code))
        probe.start()
        probe.join(timeout=10)

        assert answered == [200]
    finally:
        release.set()
        for thread in busy:
            thread.join(timeout=30)
