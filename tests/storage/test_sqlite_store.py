"""The store contract on a SQLite file (and its write-ahead log)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from uuid import uuid4

import pytest

from domain.application.cases import CaseService
from domain.errors import RuleViolationError
from nervenbahn.config import load_settings
from nervenbahn.container import build_service

from .contract import Clock, ManualClock, StoreContract, command


class TestSQLiteStore(StoreContract):
    """The case service on a SQLite file of this test's own."""

    @pytest.fixture
    def store(self, tmp_path: Path, master_key: str) -> None:
        self.path = tmp_path / "store" / "cases.db"
        self.settings = load_settings(
            {"NERVENBAHN_STORE": f"sqlite:///{self.path}", "NERVENBAHN_MASTER_KEY": master_key}
        )

    def make_service(self, clock: Clock) -> CaseService:
        return self.keep(build_service(self.settings, clock))

    def stored_bytes(self) -> bytes:
        files = [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]
        return b"".join(path.read_bytes() for path in files if path.exists())

    def wrapped_keys(self) -> dict[str, bytes]:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT person_id, wrapped_key FROM person_keys").fetchall()
        return {person_id: bytes(key) for person_id, key in rows}

    def test_a_case_kept_from_before_a_restore_is_loaded_from_the_restored_store(self) -> None:
        # The service keeps the case it saved (domain.application.kept_cases); the file is
        # restored from a backup taken one event earlier while the service runs. Its next
        # command must start from the store, not from the case it kept at a version the store
        # no longer holds (that would record version 5 after 3).
        clock = ManualClock()
        service = self.make_service(clock)
        case_id = self.open_supported_case(service, clock)
        with closing(sqlite3.connect(":memory:")) as backup:
            with closing(sqlite3.connect(self.path)) as live:
                live.backup(backup)
            service.execute(command("complete_review", case_id=case_id, outcome="continue"))
            with closing(sqlite3.connect(self.path)) as live:
                backup.backup(live)

            again = service.execute(command("complete_review", case_id=case_id,
                                            outcome="continue"))

        assert again.version == 4
        assert [entry.version for entry in service.history(case_id)] == [1, 2, 3, 4]

    def test_a_kept_case_whose_version_was_written_again_after_a_restore_is_not_used(
        self,
    ) -> None:
        # `kept` saved version 4 (a measure started) and kept the case; the file is restored
        # to version 3 and `other` records another version 4 of the same kind (another
        # measure). The store holds a version 4, not the one `kept` saved: its next command
        # must start from the store (where its measure was never started), as a service that
        # kept nothing would.
        clock = ManualClock()
        kept, other = self.make_service(clock), self.make_service(clock)
        case_id = self.open_supported_case(kept, clock)
        kept.get_case(case_id)
        measure_id = uuid4()
        with closing(sqlite3.connect(":memory:")) as backup:
            with closing(sqlite3.connect(self.path)) as live:
                live.backup(backup)
            kept.execute(command("start_measure", case_id=case_id, measure_id=measure_id,
                                 kind="job_coaching"))
            with closing(sqlite3.connect(self.path)) as live:
                backup.backup(live)
        other.execute(command("start_measure", case_id=case_id, measure_id=uuid4(),
                              kind="job_coaching"))

        with pytest.raises(RuleViolationError, match=f"case has no measure {measure_id}"):
            kept.execute(command("complete_measure", case_id=case_id, measure_id=measure_id))

        assert [entry.event for entry in kept.history(case_id)][-1] == "MeasureStarted"
        assert kept.get_case(case_id).version == 4


del StoreContract
