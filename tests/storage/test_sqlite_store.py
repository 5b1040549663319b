"""The store contract on a SQLite file (and its write-ahead log)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from domain.application.cases import CaseService
from nervenbahn.config import load_settings
from nervenbahn.container import build_service

from .contract import Clock, StoreContract


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


del StoreContract
