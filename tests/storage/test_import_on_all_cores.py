"""An import checked on all cores (`domain.application.import_workers`) records what the serial
import records, in the same order, chained and sealed; it names the same first bad line; and
whatever a worker cannot decide alone goes the serial way (tests/storage/contract.py covers the
serial import itself: its files are below `PARALLEL_FROM`)."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from domain.application.cases import CaseService
from domain.application.importer import ImportReport, LegacyImporter
from domain.errors import ImportRejectedError
from domain.personal_data import SealedPersonalData
from domain.reference import load_reference_data
from nervenbahn.audit.checkpoints import SigningKey
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.verify import verify_store
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from nervenbahn.synthetic import synthetic_history

from .contract import (
    APPLICANT,
    BAD_IMPORTS,
    HOUSEHOLD,
    LEGACY_CASE_ID,
    LEGACY_FILE,
    LEGACY_TIMES,
    PERSONAL_DATA,
    command,
    legacy_record,
)

HOUSEHOLDS = 40


@pytest.fixture(scope="module")
def history() -> list[str]:
    """A synthetic canton's history as an import file's lines (names with umlauts)."""
    records = synthetic_history(load_reference_data(), HOUSEHOLDS, seed=17)
    return [json.dumps(record, ensure_ascii=False) for record in records]


class Stores:
    """Fresh SQLite stores of this test, with the same master key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.master_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.signing_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.services: list[CaseService] = []

    def settings(self, name: str) -> Settings:
        return load_settings({
            "NERVENBAHN_STORE": f"sqlite:///{self.folder / name}.db",
            "NERVENBAHN_MASTER_KEY": self.master_key,
            "NERVENBAHN_AUDIT_SIGNING_KEY": self.signing_key,
        })

    def service(self, name: str) -> CaseService:
        service = build_service(self.settings(name))
        self.services.append(service)
        return service

    def rows(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.folder / name}.db?mode=ro", uri=True)) as db:
            return db.execute(sql).fetchall()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    made = Stores(tmp_path)
    yield made
    for service in made.services:
        close_service(service)


def run_import(service: CaseService, lines: Iterable[str], partitions: int) -> ImportReport:
    """Import with `partitions` worker processes, whatever the file's size (1: serially)."""
    importer = LegacyImporter(service, lambda: datetime.now(UTC), None,
                              partitions=partitions, parallel_from=1)
    return importer.run(lines)


def opened(value: Any) -> Any:
    """An event's field with sealed personal data opened (its ciphertext differs per run)."""
    if isinstance(value, SealedPersonalData):
        return value.open()
    if isinstance(value, list | tuple):
        return [opened(item) for item in value]
    return value


def decoded_events(service: CaseService) -> list[tuple[Any, ...]]:
    """Every stored event in store order: its position, case, version, type and fields."""
    notifications = service.recorder.select_notifications(start=None, limit=2**62)
    return [
        (n.id, n.originator_id, n.originator_version, n.topic,
         {key: opened(value) for key, value in vars(service.mapper.to_domain_event(n)).items()})
        for n in notifications
    ]


def chain_verifies(stores: Stores, name: str) -> bool:
    settings = stores.settings(name)
    db = open_audit_database(settings.store)
    try:
        key = SigningKey.from_seed(settings.signing_key.get_secret_value())
        return verify_store(db, key.public).to_json()["ok"] is True
    finally:
        db.close()


def test_all_cores_record_what_one_core_records_in_the_same_order(
    stores: Stores, history: list[str]
) -> None:
    serial, parallel = stores.service("serial"), stores.service("parallel")

    with capture_logs() as logs:
        by_one = run_import(serial, history, partitions=1)
        by_two = run_import(parallel, history, partitions=2)

    assert [log for log in logs if log["event"] == "import checked serially"] == []
    assert (by_two.records, by_two.events, by_two.cases) == (
        by_one.records, by_one.events, by_one.cases)
    assert decoded_events(parallel) == decoded_events(serial)
    assert sorted(by_two.cases_by_id) == sorted(by_one.cases_by_id)
    case_id = next(iter(by_one.cases_by_id))
    assert by_two.cases_by_id[case_id].version == by_one.cases_by_id[case_id].version
    assert chain_verifies(stores, "parallel")
    persons = "SELECT count(*) FROM person_keys"
    assert stores.rows("parallel", persons) == stores.rows("serial", persons)


def test_a_long_case_imported_on_all_cores_gets_the_snapshots_of_one_core(
    stores: Stores,
) -> None:
    reviews = [
        legacy_record((LEGACY_TIMES[-1] + timedelta(hours=hour)).isoformat(), "complete_review",
                      case_id=str(LEGACY_CASE_ID), outcome="continue")
        for hour in range(1, 220)
    ]
    snapshots = "SELECT originator_id, originator_version FROM stored_snapshots ORDER BY 1, 2"

    for partitions, name in ((1, "serial"), (2, "parallel")):
        run_import(stores.service(name), LEGACY_FILE + reviews, partitions)

    assert stores.rows("parallel", snapshots) == stores.rows("serial", snapshots)
    assert [version for _, version in stores.rows("parallel", snapshots)] == [100, 200]
    parallel = stores.service("parallel")
    assert parallel.get_case(LEGACY_CASE_ID).version == 223


def test_personal_data_imported_on_all_cores_is_sealed(stores: Stores) -> None:
    service = stores.service("store")

    run_import(service, LEGACY_FILE, partitions=2)

    stored = b"".join(path.read_bytes() for path in stores.folder.glob("store.db*"))
    assert [text for text in PERSONAL_DATA if text.encode() in stored] == []
    assert b"so-oberer-leberberg" in stored


@pytest.mark.parametrize(("lines", "line_no", "reason"), BAD_IMPORTS)
def test_all_cores_name_the_bad_line_and_record_nothing(
    stores: Stores, lines: list[str], line_no: int, reason: str
) -> None:
    service = stores.service("store")

    with pytest.raises(ImportRejectedError) as rejected:
        run_import(service, lines, partitions=2)

    assert rejected.value.line == line_no
    assert reason in str(rejected.value)
    assert stores.rows("store", "SELECT count(*) FROM stored_events") == [(0,)]
    assert stores.rows("store", "SELECT count(*) FROM person_keys") == [(0,)]


def test_the_first_bad_line_of_all_partitions_is_named(
    stores: Stores, history: list[str]
) -> None:
    cases = [json.loads(line)["data"].get("case_id") for line in history]
    late = len(history) - 1
    early = next(n for n in range(5, late) if cases[n] != cases[late] and cases[n])
    broken = list(history)
    for n in (early, late):
        broken[n] = broken[n].replace('"recorded_at": "', '"recorded_at": "x', 1)

    refusals = []
    for partitions, name in ((1, "serial"), (2, "parallel")):
        with pytest.raises(ImportRejectedError) as rejected:
            run_import(stores.service(name), broken, partitions)
        refusals.append(str(rejected.value))

    assert refusals[0] == refusals[1]
    assert f"line {early + 1}:" in refusals[1]


def test_records_continuing_a_stored_case_are_checked_serially(stores: Stores) -> None:
    service = stores.service("store")
    run_import(service, LEGACY_FILE[:2], partitions=2)

    with capture_logs() as logs:
        report = run_import(service, LEGACY_FILE[2:], partitions=2)

    assert report.events == 2
    assert [log["reason"] for log in logs if log["event"] == "import checked serially"] == [
        f"case {LEGACY_CASE_ID} is not opened in this partition of the file"]
    assert [entry.version for entry in service.history(LEGACY_CASE_ID)] == [1, 2, 3, 4]


def test_a_file_imported_twice_on_all_cores_is_refused_and_duplicates_nothing(
    stores: Stores,
) -> None:
    service = stores.service("store")
    run_import(service, LEGACY_FILE, partitions=2)
    keys = stores.rows("store", "SELECT person_id, wrapped_key FROM person_keys")

    with pytest.raises(ImportRejectedError, match="is already recorded"):
        run_import(service, LEGACY_FILE, partitions=2)

    assert stores.rows("store", "SELECT count(*) FROM stored_events") == [(4,)]
    assert stores.rows("store", "SELECT person_id, wrapped_key FROM person_keys") == keys


class UnreadableLineError(Exception):
    """The edge refused a line while the file was read (`checked_lines` does so)."""


def lines_then_unreadable(lines: list[str]) -> Iterator[str]:
    yield from lines
    raise UnreadableLineError("line 5: longer than 1 MiB")


@pytest.mark.parametrize(
    ("lines", "refusal"),
    [
        pytest.param(LEGACY_FILE, UnreadableLineError, id="good-lines-then-unreadable"),
        pytest.param(BAD_IMPORTS[4].values[0], ImportRejectedError,
                     id="bad-line-before-the-unreadable"),
    ],
)
def test_a_line_that_cannot_be_read_comes_after_the_lines_before_it(
    stores: Stores, lines: list[str], refusal: type[Exception]
) -> None:
    service = stores.service("store")

    with pytest.raises(refusal):
        run_import(service, lines_then_unreadable(lines), partitions=2)

    assert stores.rows("store", "SELECT count(*) FROM stored_events") == [(0,)]
    assert stores.rows("store", "SELECT count(*) FROM person_keys") == [(0,)]


def test_a_person_recorded_by_someone_else_while_the_import_is_checked_refuses_the_import(
    stores: Stores, history: list[str],
) -> None:
    # The workers sealed the import's persons with keys they made; a live opening keys one of
    # those persons first. The import's events would name that person under a key that is
    # not stored: the import is refused, the live case stays readable, the import's keys go.
    service, live = stores.service("store"), stores.service("store")
    record_imported = service.record_imported
    raced: dict[str, Any] = {}

    def keyed_first(stored: Any, keys: list[tuple[Any, bytes]]) -> None:
        person = raced["person"] = keys[len(keys) // 2][0]
        raced["case"] = live.execute(command(
            "open_case", **{**HOUSEHOLD, "applicant": {**APPLICANT, "person_id": person},
                            "other_members": [], "household_size": 1})).case_id
        record_imported(stored, keys)

    service.record_imported = keyed_first  # type: ignore[method-assign]
    with pytest.raises(ImportRejectedError) as refused:
        run_import(service, history, partitions=2)

    assert str(refused.value) == (
        f"import rejected: person {raced['person']} was recorded by someone else while the "
        "import was checked; import the file again; nothing was imported")
    assert list(service.case_ids()) == [raced["case"]]
    assert not live.get_case(raced["case"]).applicant.is_erased
    assert stores.rows("store", "SELECT person_id, found FROM person_keys") == [
        (raced["person"].hex, 1)]
    service.record_imported = record_imported  # type: ignore[method-assign]
    assert run_import(service, history, partitions=2).cases == HOUSEHOLDS
