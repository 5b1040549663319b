"""The chained recorders: one link per stored event, in its transaction, one linear chain under
concurrent writers, crypto-shredding leaves the chain intact."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import threading
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.persistence import ProgrammingError

from domain.application.cases import CaseService
from nervenbahn.audit.chain import event_record
from nervenbahn.audit.checkpoints import SigningKey
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.hashing import encode_fields
from nervenbahn.audit.recorders_postgres import ChainedPostgresApplicationRecorder
from nervenbahn.audit.verify import verify_store
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import open_supported_case


def settings_for(store: str) -> Settings:
    return load_settings({
        "NERVENBAHN_STORE": store,
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })


def verified(settings: Settings) -> dict[str, object]:
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    db = open_audit_database(settings.store)
    try:
        return verify_store(db, key.public).to_json()
    finally:
        db.close()


@pytest.mark.parametrize(
    ("position", "originator", "version", "topic", "state"),
    [
        (1, UUID(int=7), 1, "domain.events:CaseOpened", b"{}"),
        (2**40, "text-id", 12345, "x", b""),
        (3, UUID(int=2**127), 2, "ümlaut:topic", bytes(range(256)) * 3),
    ],
)
def test_the_fast_record_encoding_is_the_reference_encoding(
    position: int, originator: UUID | str, version: int, topic: str, state: bytes
) -> None:
    text = originator.hex if isinstance(originator, UUID) else originator
    assert event_record(position, originator, version, topic, state) == encode_fields(
        [position, text, version, topic, state]
    )


def test_every_stored_event_gets_one_link_and_the_chain_verifies(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'store.db'}")
    service = build_service(settings)
    for n in range(4):
        open_supported_case(service, n)
    close_service(service)
    with sqlite3.connect(tmp_path / "store.db") as db:
        events = db.execute("SELECT rowid FROM stored_events ORDER BY rowid").fetchall()
        links = db.execute("SELECT position FROM stored_events_chain ORDER BY position").fetchall()
    assert events == links == [(n,) for n in range(1, 13)]
    report = verified(settings)
    assert report["ok"] is True
    assert report["chains"][0]["records"] == 12  # type: ignore[index]


def test_concurrent_writers_keep_one_linear_chain(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'store.db'}")
    service = build_service(settings)
    errors: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            for n in range(first, first + 5):
                open_supported_case(service, n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_service(service)
    assert errors == []
    report = verified(settings)
    assert report["ok"] is True, report
    assert report["chains"][0]["records"] == 4 * 5 * 3  # type: ignore[index]


def test_crypto_shredding_a_person_leaves_the_chain_verifiable(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'store.db'}")
    service = build_service(settings)
    case_id = open_supported_case(service, 1)
    applicant = service.get_case(case_id).applicant.person_id
    assert service.erase_person(applicant)
    close_service(service)
    assert verified(settings)["ok"] is True


def test_chained_postgres_store_verifies_and_concurrent_writers_stay_linear(
    postgres_dsn: str,
) -> None:
    settings = settings_for(postgres_dsn)
    service = build_service(settings)
    assert isinstance(service.recorder, ChainedPostgresApplicationRecorder)
    threads = [threading.Thread(target=lambda i=i: [open_supported_case(service, i * 10 + n)
                                                     for n in range(3)]) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_service(service)
    report = verified(settings)
    assert report["ok"] is True, report
    assert report["chains"][0]["records"] == 27  # type: ignore[index]


def test_postgres_database_functions_are_refused(postgres_dsn: str) -> None:
    settings = settings_for(postgres_dsn)
    env = {**settings.store.eventsourcing_env(), "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
    service = build_service(settings)
    with pytest.raises(ProgrammingError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        CaseService(env, vault=service.vault, reference=service.reference)
    close_service(service)
