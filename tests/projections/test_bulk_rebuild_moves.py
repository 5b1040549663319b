"""Attack on the bulk rebuild (issue 17, `Projection.apply_batch`): a case that moves from one
municipality to another and back and on again, the moves inside one batch or cut anywhere by
the batches, is seen after the rebuild by the one branch office that serves the municipality
it is in now, and by no other; the region read model puts it in its current social region."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from domain.application.cases import CaseService
from domain.reference import load_branch_offices
from nervenbahn.container import build_service, close_service
from projections.branch_office import BranchOfficeProjection, office_case, office_cases
from projections.framework import open_projection_store, rebuild
from projections.region import RegionProjection
from tests.bus.pipeline import store_settings
from tests.storage.contract import (
    CASEWORKER,
    CASEWORKER_SOLOTHURN,
    GRENCHEN,
    LEGACY_CASE_ID,
    LEGACY_FILE,
    SOLOTHURN,
    command,
)

MOVES = [  # (who hands over, to where); each followed by a review where it arrived
    (CASEWORKER, SOLOTHURN, CASEWORKER_SOLOTHURN),
    (CASEWORKER_SOLOTHURN, GRENCHEN, CASEWORKER),
    (CASEWORKER, SOLOTHURN, CASEWORKER_SOLOTHURN),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseService]:
    """A store with one case that moves Grenchen -> Solothurn -> Grenchen -> Solothurn."""
    folder = tmp_path_factory.mktemp("moves")
    store = build_service(
        store_settings(folder, base64.b64encode(secrets.token_bytes(32)).decode())
    )
    store.import_records(LEGACY_FILE)
    for by, to, there in MOVES:
        store.execute(command("hand_over_case", by, case_id=LEGACY_CASE_ID, to_municipality_bfs=to))
        store.execute(command("complete_review", there, case_id=LEGACY_CASE_ID, outcome="continue"))
    yield store
    close_service(store)


def offices_seeing_the_case(path: Path) -> tuple[list[str], list[str]]:
    """The offices whose list holds the case, and those it is shown to on its own."""
    with closing(sqlite3.connect(path)) as db:
        seen_by = sorted(
            office.id
            for office in load_branch_offices().values()
            if [c.case_id for c in office_cases(db, office.municipalities)] == [str(LEGACY_CASE_ID)]
        )
        shown_to = sorted(
            office.id
            for office in load_branch_offices().values()
            if office_case(db, office.municipalities, str(LEGACY_CASE_ID)) is not None
        )
    return seen_by, shown_to


SERVING = sorted(o.id for o in load_branch_offices().values() if SOLOTHURN in o.municipalities)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7, 2000])
def test_after_a_bulk_rebuild_only_the_office_of_the_case_now_sees_it(
    service: CaseService, tmp_path: Path, batch_size: int
) -> None:
    assert service.get_case(LEGACY_CASE_ID).municipality_bfs == SOLOTHURN
    path = tmp_path / "office.db"

    rebuild(BranchOfficeProjection(), service, path, batch_size=batch_size)

    assert len(SERVING) == 1
    assert offices_seeing_the_case(path) == (SERVING, SERVING)


def test_the_moves_met_again_backwards_in_one_batch_move_the_case_nowhere(
    service: CaseService, tmp_path: Path
) -> None:
    path = tmp_path / "office.db"
    projection = BranchOfficeProjection()
    rebuild(projection, service, path)
    events = [service.decode(n) for n in service.notifications(gt=0, limit=1_000)]
    store = open_projection_store(projection, path)
    try:
        with store.transaction() as tx:
            projection.apply_batch(events[::-1], tx)
    finally:
        store.close()

    assert offices_seeing_the_case(path) == (SERVING, SERVING)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7, 2000])
def test_after_a_bulk_rebuild_the_region_holds_the_case_where_it_is_now(
    service: CaseService, tmp_path: Path, batch_size: int
) -> None:
    path = tmp_path / "region.db"

    rebuild(RegionProjection(), service, path, batch_size=batch_size)

    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT case_id, social_region, municipality_bfs FROM region_cases"
        ).fetchall()
    case = service.get_case(LEGACY_CASE_ID)
    assert rows == [(str(LEGACY_CASE_ID), case.social_region, SOLOTHURN)]
