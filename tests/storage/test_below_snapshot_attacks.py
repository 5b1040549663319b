"""Attacks on get_case's shortcut for cases below the first snapshot (issue 17,
`domain.application.cases._CasesBelowSnapshots`): two case services on one SQLite store; the
other takes a case past the snapshot interval (or closes it) while this one, which saw it young,
still has it marked as young. This one's next command acts on the whole current case: the
snapshot its save takes holds what the events say, a command the other made wrong is refused,
and the chain holds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.application.cases import CaseService
from domain.application.queries import SNAPSHOT_INTERVAL
from domain.errors import DomainError

from . import test_import_on_all_cores as on_all_cores
from .contract import CASEWORKER_SOLOTHURN, LEGACY_CASE_ID, LEGACY_FILE, SOLOTHURN, command
from .test_import_on_all_cores import Stores, chain_verifies, run_import

stores = on_all_cores.stores

SNAPSHOTS = "SELECT originator_version FROM stored_snapshots ORDER BY 1"


def review(service: CaseService) -> int:
    done = service.execute(command("complete_review", case_id=LEGACY_CASE_ID, outcome="continue"))
    return done.version


def young_and_other(stores: Stores) -> tuple[CaseService, CaseService]:
    """This service, which recorded the case (version 4, below a snapshot), and another."""
    young = stores.service("store")
    run_import(young, LEGACY_FILE, partitions=1)
    assert young.get_case(LEGACY_CASE_ID).version == len(LEGACY_FILE)
    assert young._below_snapshots.holds(LEGACY_CASE_ID)  # the shortcut under attack
    return young, stores.service("store")


@pytest.mark.parametrize(
    ("left_below", "snapshots"),
    [
        pytest.param(1, [SNAPSHOT_INTERVAL], id="this-one-takes-the-first-snapshot"),
        pytest.param(-1, [SNAPSHOT_INTERVAL], id="the-other-took-the-first-snapshot"),
    ],
)
def test_a_case_taken_past_a_snapshot_elsewhere_is_acted_on_whole(
    stores: Stores, left_below: int, snapshots: list[int]
) -> None:
    young, other = young_and_other(stores)
    for _ in range(SNAPSHOT_INTERVAL - len(LEGACY_FILE) - left_below):
        review(other)

    version = review(young)

    assert version == SNAPSHOT_INTERVAL - left_below + 1
    assert [v for (v,) in stores.rows("store", SNAPSHOTS)] == snapshots
    fresh = stores.service("store")  # loads from the snapshot
    assert vars(fresh.get_case(LEGACY_CASE_ID)) == vars(young.get_case(LEGACY_CASE_ID))
    assert vars(other.get_case(LEGACY_CASE_ID)) == vars(young.get_case(LEGACY_CASE_ID))
    assert chain_verifies(stores, "store")


def hand_over_and_close(other: CaseService) -> None:
    other.execute(command("hand_over_case", case_id=LEGACY_CASE_ID, to_municipality_bfs=SOLOTHURN))
    other.execute(
        command("close_case", CASEWORKER_SOLOTHURN, case_id=LEGACY_CASE_ID, reason="employment")
    )


CHANGES: dict[str, Callable[[CaseService], None]] = {"handed-over-and-closed": hand_over_and_close}


@pytest.mark.parametrize("change", CHANGES)
def test_a_command_the_other_made_wrong_is_refused_where_the_case_was_young(
    stores: Stores, change: str
) -> None:
    young, other = young_and_other(stores)
    for _ in range(SNAPSHOT_INTERVAL - len(LEGACY_FILE)):
        review(other)  # past the first snapshot
    CHANGES[change](other)
    before = stores.rows("store", "SELECT count(*) FROM stored_events")

    with pytest.raises(DomainError):
        review(young)

    assert stores.rows("store", "SELECT count(*) FROM stored_events") == before
    assert young.get_case(LEGACY_CASE_ID).phase == "closed"
    assert chain_verifies(stores, "store")
