"""Signed checkpoints: forged or altered signatures and foreign keys are rejected naming the
checkpoint; the auditor's copy catches removed checkpoints and a chain rewritten after them;
checkpoints reach the audit topic and read back with the schema."""

from __future__ import annotations

import base64
import json
import random
import secrets
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaConsumer

from bus.kafka_settings import KafkaSettings
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.topics import audit_checkpoints_spec, ensure_topics
from nervenbahn.audit.checkpoints import (
    CheckpointCodec,
    CheckpointError,
    CheckpointStore,
    SigningKey,
    export_checkpoints,
    publish_checkpoints,
    read_checkpoint_file,
    write_checkpoint,
)
from nervenbahn.audit.database import AuditDatabase, open_audit_database
from nervenbahn.audit.verify import EXIT_CHAIN_BROKEN, EXIT_CHECKPOINT_REJECTED, verify_store
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import build_service, close_service
from tests.audit.test_tamper import Tables, rewrite_from
from tests.bus.pipeline import open_supported_case


@pytest.fixture
def store(tmp_path: Path) -> tuple[Settings, SigningKey]:
    """A SQLite store with 3 cases and a checkpoint after each (positions 3, 6, 9)."""
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    })
    key = SigningKey.from_seed(settings.signing_key.get_secret_value())
    service = build_service(settings)
    db = open_audit_database(settings.store)
    for n in range(3):
        open_supported_case(service, n)
        write_checkpoint(db, key)
    db.close()
    close_service(service)
    return settings, key


def audit(settings: Settings) -> AuditDatabase:
    return open_audit_database(settings.store)


def test_checkpoints_sign_the_heads_in_sequence(store: tuple[Settings, SigningKey]) -> None:
    settings, key = store
    db = audit(settings)
    kept = CheckpointStore(db).all()
    assert [cp.sequence for cp in kept] == [1, 2, 3]
    assert [cp.chains["events:stored_events"].position for cp in kept] == [3, 6, 9]
    assert all(cp.signature_problem(key.public) is None for cp in kept)
    assert write_checkpoint(db, key, only_if_moved=True) is None  # nothing moved
    assert verify_store(db, key.public).ok
    db.close()


def test_a_forged_signature_is_rejected_naming_the_checkpoint(
    store: tuple[Settings, SigningKey], tmp_path: Path
) -> None:
    settings, key = store
    forged = base64.b64encode(secrets.token_bytes(64)).decode()
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("UPDATE audit_checkpoints SET signature = ? WHERE sequence = 2", (forged,))
    report = verify_store(audit(settings), key.public)
    assert report.exit_code == EXIT_CHECKPOINT_REJECTED
    assert [(p.sequence, p.source) for p in report.checkpoint_problems] == [(2, "store")]
    assert "forged or altered" in report.checkpoint_problems[0].reason


def test_an_altered_checkpoint_payload_is_rejected(
    store: tuple[Settings, SigningKey], tmp_path: Path
) -> None:
    settings, key = store
    with sqlite3.connect(tmp_path / "store.db") as db:
        (payload,) = db.execute("SELECT payload FROM audit_checkpoints WHERE sequence = 3"
                                ).fetchone()
        document = json.loads(payload)
        document["chains"][0]["position"] = 8  # pretend the head was earlier
        db.execute("UPDATE audit_checkpoints SET payload = ? WHERE sequence = 3",
                   (json.dumps(document, sort_keys=True, separators=(",", ":")),))
    report = verify_store(audit(settings), key.public)
    assert [p.sequence for p in report.checkpoint_problems] == [3]
    assert report.chains[0].ok  # the rejected checkpoint is not relied on


def test_a_checkpoint_under_another_key_is_rejected(store: tuple[Settings, SigningKey]) -> None:
    settings, _ = store
    other = Ed25519PrivateKey.generate().public_key()
    report = verify_store(audit(settings), other)
    assert report.exit_code == EXIT_CHECKPOINT_REJECTED
    assert [p.sequence for p in report.checkpoint_problems] == [1, 2, 3]
    assert all("another key" in p.reason for p in report.checkpoint_problems)


def test_the_auditors_copy_catches_a_rewrite_whose_checkpoints_were_removed(
    store: tuple[Settings, SigningKey], tmp_path: Path
) -> None:
    settings, key = store
    copy = tmp_path / "auditor" / "checkpoints.jsonl"
    assert export_checkpoints(audit(settings), copy) == 3
    with sqlite3.connect(tmp_path / "store.db") as db:
        rewrite_from(db, Tables("stored_events", "rowid", "stored_events_chain", "?",
                                "events:stored_events"), 5, random.Random(1))
        db.execute("DELETE FROM audit_checkpoints WHERE sequence >= 2")
    assert verify_store(audit(settings), key.public).ok  # the store alone cannot tell
    report = verify_store(audit(settings), key.public,
                          auditor_copy=read_checkpoint_file(copy))
    assert report.exit_code == EXIT_CHAIN_BROKEN
    found = report.chains[0].first_break
    assert found is not None and found.position == 4  # after checkpoint #1 at position 3
    assert "rewritten" in found.reason
    assert {(p.sequence, p.reason) for p in report.checkpoint_problems} == {
        (2, "in the auditor's copy but missing from the store"),
        (3, "in the auditor's copy but missing from the store"),
    }


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("not json", "line 1: not JSON"),
        ('{"payload": 3, "signature": ""}', "line 1: payload"),
        ('{"payload": "{}", "signature": "AAAA"}', "line 1: payload.format"),
        ('{"payload": "x", "signature": "***"}', "line 1: signature: not valid base64"),
    ],
)
def test_an_unreadable_checkpoints_file_is_refused_naming_line_and_field(
    tmp_path: Path, line: str, named: str
) -> None:
    path = tmp_path / "copy.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CheckpointError, match=named):
        read_checkpoint_file(path)


def test_checkpoints_are_published_once_and_read_back_with_the_schema(
    store: tuple[Settings, SigningKey], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings, key = store
    db = audit(settings)
    topic = audit_checkpoints_spec(kafka_settings)
    ensure_topics(kafka_settings, [topic])
    registry = SQLiteSchemaRegistry(tmp_path / "store.db")
    codec = CheckpointCodec(registry, topic.name)
    assert publish_checkpoints(db, kafka_settings, codec, topic) == [1, 2, 3]
    assert publish_checkpoints(db, kafka_settings, codec, topic) == []  # marked published
    kept = CheckpointStore(db).all()
    assert all(cp.published for cp in kept)
    consumer = KafkaConsumer(topic.name, **kafka_settings.consumer_kwargs(None, "reader"))
    received = []
    try:
        for _ in range(50):
            for records in consumer.poll(timeout_ms=200).values():
                received += [(r.key, codec.decode(r.value)) for r in records]
            if len(received) >= 3:
                break
    finally:
        consumer.close()
    assert [key_ for key_, _ in received] == [b"1", b"2", b"3"]
    assert [cp for _, cp in received] == kept
    assert all(cp.signature_problem(key.public) is None for _, cp in received)
    registry.close()
    db.close()


def test_schemas_check_covers_the_checkpoint_schema(tmp_path: Path) -> None:
    import shutil

    from bus.schema_check import check_schemas
    from schemas import SCHEMA_DIR

    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    assert check_schemas(copy) == []
    path = copy / "audit" / "Checkpoint.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "new_without_default", "type": "string"})
    path.write_text(json.dumps(schema))
    problems = check_schemas(copy)
    assert problems and {p.subject for p in problems} == {"ch.nervenbahn.audit.Checkpoint"}
