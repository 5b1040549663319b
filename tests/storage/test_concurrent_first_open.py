"""Many processes opening one fresh PostgreSQL store at once: every one of them succeeds.

Before the opening was serialised, 17 of 20 such processes failed with "deadlock detected"
(eventsourcing's CREATE TYPE / CREATE TABLE of the events tables racing; issue 12, finding 4).
The processes are forked (the test process has imported everything once, so they start in
milliseconds) and released together by a barrier; each opens the case and the payment service.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from multiprocessing.synchronize import Barrier
from typing import Any, cast

import psycopg
import pytest

from nervenbahn.config import Settings
from nervenbahn.container import build_payment_service, build_service, close_service
from nervenbahn.store_opening import OPEN_LOCK
from tests.audit.test_chain import settings_for, verified
from tests.bus.pipeline import open_supported_case

PROCESSES = 20
DEADLINE_S = 60.0

# Twenty processes of two services hold about 60 connections for a moment: beside a scale test's
# three `serve` (about 93) and the other worker's own, the server's 200 ran out ("too many
# clients already"). The group `scale` runs them one after another on one xdist worker.
pytestmark = pytest.mark.xdist_group("scale")


def _open_and_record(settings: Settings, n: int, barrier: Barrier, results: Any) -> None:
    """One process: wait for the others, open the store (cases and payments), record a case."""
    # The pools hold 5 connections a service by default: 20 processes of two services would
    # pass the server's max_connections (100) whatever the DDL does.
    os.environ.update(POSTGRES_MAX_OVERFLOW="1")
    settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"pool_size": 1})}
    )
    try:
        barrier.wait(timeout=DEADLINE_S)
        service = build_service(settings)
        try:
            build_payment_service(settings, service).close()
            results.put((n, "ok", str(open_supported_case(service, n))))
        finally:
            close_service(service)
    except BaseException:  # reported to the test, whatever it was
        results.put((n, "failed", traceback.format_exc()))


@pytest.mark.postgres
def test_twenty_processes_opening_a_fresh_store_at_once_all_succeed(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings = settings_for(postgres_dsn)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_open_and_record, args=(settings, n, barrier, results))
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=DEADLINE_S) for _ in processes]
    for process in processes:
        process.join(timeout=DEADLINE_S)

    failed = {n: detail for n, status, detail in outcomes if status != "ok"}
    assert failed == {}, "\n".join(f"process {n}:\n{detail}" for n, detail in failed.items())
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    service = build_service(settings)
    try:
        assert len(set(service.case_ids())) == PROCESSES
    finally:
        close_service(service)
    report = verified(settings)
    assert report["ok"] is True, report
    chains = cast(list[dict[str, Any]], report["chains"])
    assert sum(chain["records"] for chain in chains) == 3 * PROCESSES  # 3 events a case, linked


@pytest.mark.postgres
def test_opening_a_current_store_takes_no_lock(postgres_server_url: str, postgres_dsn: str) -> None:
    settings = settings_for(postgres_dsn)
    close_service(build_service(settings))  # the first open makes the schema current
    opened = threading.Event()

    def open_again() -> None:
        close_service(build_service(settings))
        opened.set()

    with psycopg.connect(postgres_server_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (OPEN_LOCK,))
        thread = threading.Thread(target=open_again)
        thread.start()
        assert opened.wait(timeout=DEADLINE_S), "opening a current store waited for the lock"
    thread.join(timeout=DEADLINE_S)
