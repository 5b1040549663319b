"""Attacks on the import checked on all cores (issue 17), as a data-protection officer would try
them: a person imported by the workers and then erased leaves no byte in clear (nor the wrapped
key that opened their data) anywhere under the store's folder; a bad line in the second worker's
partition records nothing and leaves no key; a case whose records the file's text puts into two
partitions is recorded as the serial path records it; and an import whose process is killed
(SIGKILL) between storing the keys and the events leaves the store and the key store
consistent."""

from __future__ import annotations

import base64
import contextlib
import json
import multiprocessing
import os
import signal
import zlib
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from domain.application import import_workers
from domain.errors import ImportRejectedError
from domain.personal_data import PersonalData
from tests.bus.waiting import wait_until

from . import test_import_on_all_cores as on_all_cores
from .contract import LEGACY_CASE_ID, LEGACY_FILE, PERSONAL_DATA
from .test_import_on_all_cores import Stores, chain_verifies, decoded_events, run_import

history = on_all_cores.history
stores = on_all_cores.stores


def _partition_of(line: str, partitions: int = 2) -> int:
    case_id = json.loads(line)["data"].get("case_id", "")
    return zlib.crc32(case_id.encode()) % partitions


def _found(folder: Path, needles: dict[str, bytes]) -> list[str]:
    """Every (file, what) under `folder` where a needle occurs."""
    return [
        f"{path.name}: {what}"
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
        for what, needle in needles.items()
        if needle in path.read_bytes()
    ]


def test_a_person_imported_on_all_cores_then_erased_leaves_no_byte_in_clear(
    stores: Stores, history: list[str]
) -> None:
    service = stores.service("store")
    run_import(service, history + LEGACY_FILE, partitions=2)
    case = service.get_case(LEGACY_CASE_ID)
    persons = [m.person_id for m in (case.applicant, *case.other_members)]
    keys = dict(stores.rows("store", "SELECT person_id, wrapped_key FROM person_keys"))
    wrapped = {f"wrapped key {n}": bytes(keys[p.hex]) for n, p in enumerate(persons)}
    wrapped |= {f"{what} (base64)": base64.b64encode(key) for what, key in wrapped.items()}
    needles = {text: text.encode() for text in PERSONAL_DATA} | wrapped
    assert _found(stores.folder, {"in clear": b"so-oberer-leberberg"})  # the scan sees data
    assert _found(stores.folder, wrapped)  # the keys are there before erasure

    for person_id in persons:
        assert service.erase_person(person_id)
    service.get_case(LEGACY_CASE_ID)  # read after erasure (a read model or cache may write)

    assert _found(stores.folder, needles) == []
    assert chain_verifies(stores, "store")


def test_a_bad_line_in_the_second_partition_records_nothing_and_leaves_no_key(
    stores: Stores, history: list[str]
) -> None:
    second = [
        n
        for n, line in enumerate(history)
        if _partition_of(line) == 1 and '"open_case"' not in line
    ]
    bad = second[len(second) // 2]
    broken = list(history)
    broken[bad] = broken[bad].replace('"recorded_at": "', '"recorded_at": "x', 1)

    with pytest.raises(ImportRejectedError) as rejected:
        run_import(stores.service("store"), broken, partitions=2)

    assert rejected.value.line == bad + 1
    for table in ("stored_events", "person_keys", "stored_snapshots"):
        assert stores.rows("store", f"SELECT count(*) FROM {table}") == [(0,)], table


def test_a_case_the_text_splits_across_partitions_is_recorded_as_one_core_records_it(
    stores: Stores,
) -> None:
    # the same case id in capitals: another crc32, so another partition, the same UUID
    upper = str(LEGACY_CASE_ID).upper()
    split = [LEGACY_FILE[0]] + [
        line.replace(str(LEGACY_CASE_ID), upper) for line in LEGACY_FILE[1:]
    ]
    assert {_partition_of(line) for line in split} == {0, 1}

    with capture_logs() as logs:
        run_import(stores.service("parallel"), split, partitions=2)
    run_import(stores.service("serial"), split, partitions=1)

    assert [log["event"] for log in logs if log["event"] == "import checked serially"]

    def events(name: str) -> list[tuple[object, ...]]:  # the household's person ids are new
        return [(*event[:4], sorted(event[4])) for event in decoded_events(stores.service(name))]

    assert events("parallel") == events("serial")
    assert [e.version for e in stores.service("parallel").history(LEGACY_CASE_ID)] == [1, 2, 3, 4]
    assert chain_verifies(stores, "parallel")


def _import_killed_before_the_events(stores: Stores, lines: list[str], partitions: int) -> None:
    """In a child process: import and be killed (SIGKILL) just as the events are about to be
    inserted, the keys already stored."""
    service = stores.service("store")

    def killed(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    service.recorder.insert_events = killed  # type: ignore[method-assign]
    run_import(service, lines, partitions=partitions)


@pytest.mark.parametrize("partitions", [1, 2])
def test_an_import_killed_between_keys_and_events_records_nothing_and_runs_again(
    stores: Stores, history: list[str], partitions: int
) -> None:
    stores.service("store")  # the tables exist before the child starts
    child = multiprocessing.get_context("fork").Process(
        target=_import_killed_before_the_events, args=(stores, history, partitions)
    )
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert stores.rows("store", "SELECT count(*) FROM stored_events") == [(0,)]
    # Found: the keys are stored (committed) before the events, so a kill in between leaves
    # the wrapped keys of persons no event names (no personal data: only keys, which the
    # import run again takes up). Events without their key would be the worse order.
    orphans = stores.rows("store", "SELECT count(*) FROM person_keys")

    again = stores.service("store")
    report = run_import(again, history, partitions=2)

    assert orphans[0][0] > 0
    assert stores.rows("store", "SELECT count(*) FROM person_keys") == orphans
    for case_id in report.cases_by_id:
        assert isinstance(on_all_cores.opened(again.get_case(case_id).applicant), PersonalData)
    assert chain_verifies(stores, "store")


def _import_whose_workers_wait_for_its_death(stores: Stores, lines: list[str], pids: Path) -> None:
    """In a child process: import on all cores, each worker noting its pid in `pids` and then
    waiting (with a deadline) until this process is gone before it checks its partition."""
    parent = os.getpid()
    check = import_workers._Partition.check

    def check_after_the_parent_died(self: Any) -> Any:
        with pids.open("a") as noted:
            noted.write(f"{os.getpid()}\n")
        with contextlib.suppress(AssertionError):  # the test kills the parent within it
            wait_until(lambda: os.getppid() != parent, within=30)
        return check(self)

    import_workers._Partition.check = check_after_the_parent_died  # type: ignore[method-assign]
    run_import(stores.service("store"), lines, partitions=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"
    return True


def test_an_import_killed_while_its_workers_check_records_nothing_and_leaves_no_worker(
    stores: Stores, history: list[str], tmp_path: Path
) -> None:
    stores.service("store")
    pids = tmp_path / "workers"
    child = multiprocessing.get_context("fork").Process(
        target=_import_whose_workers_wait_for_its_death, args=(stores, history, pids)
    )
    child.start()
    wait_until(lambda: len(pids.read_text().split() if pids.exists() else []) >= 2,
               what="both workers' start")
    workers = [int(pid) for pid in pids.read_text().split()]

    os.kill(child.pid or 0, signal.SIGKILL)
    child.join()
    with contextlib.suppress(AssertionError):  # asserted below, after the clean-up
        wait_until(lambda: not any(_alive(pid) for pid in workers), within=20)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)

    assert stores.rows("store", "SELECT count(*) FROM stored_events") == [(0,)]
    assert stores.rows("store", "SELECT count(*) FROM person_keys") == [(0,)]
    assert left == [], "workers of a killed import live on"
