"""The composition root: build the case service on the configured store, once."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from datetime import datetime

import psycopg
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import PersistenceError

from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.errors import NervenbahnError
from domain.personal_data import PersonalDataVault
from domain.reference import load_reference_data
from nervenbahn.config import Settings
from nervenbahn.keystores import open_keystore
from nervenbahn.private import private_file, warn_if_shared

__all__ = [
    "StoreUnavailableError",
    "build_payment_service",
    "build_service",
    "close_service",
]


class StoreUnavailableError(NervenbahnError):
    """The event store cannot be reached or opened."""


def build_service(
    settings: Settings, clock: Callable[[], datetime] = datetime_now_with_tzinfo
) -> CaseService:
    """Open the key store and the event store named by the settings."""
    store = settings.store
    master_key = base64.b64decode(settings.master_key.get_secret_value())  # before any file
    try:
        if store.kind == "sqlite" and store.sqlite_path is not None:
            warn_if_shared(store.sqlite_path.parent)
            private_file(store.sqlite_path)  # its -wal and -shm files take its mode
        keystore = open_keystore(store)
        vault = PersonalDataVault(keystore, master_key)
        return CaseService(
            store.eventsourcing_env(), vault=vault, reference=load_reference_data(), clock=clock
        )
    except (psycopg.Error, sqlite3.Error, PersistenceError, OSError) as exc:
        raise StoreUnavailableError(f"cannot open the store {store.describe()}: {exc}") from exc


def close_service(service: CaseService) -> None:
    """Close the event store and the key store."""
    service.close()
    service.vault.keystore.close()


def build_payment_service(
    settings: Settings,
    cases: CaseService,
    clock: Callable[[], datetime] = datetime_now_with_tzinfo,
) -> PaymentService:
    """The payments service on the store of `cases` (same database, its own events table)."""
    try:
        return PaymentService(settings.store.eventsourcing_env(), cases=cases, clock=clock)
    except (psycopg.Error, sqlite3.Error, PersistenceError, OSError) as exc:
        raise StoreUnavailableError(
            f"cannot open the payments store in {settings.store.describe()}: {exc}"
        ) from exc
