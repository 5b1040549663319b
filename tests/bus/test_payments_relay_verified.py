"""A payment order is a transfer to be: the payments relay publishes a `PaymentOrdered` only if
its stored bytes match its hash-chain link (`nervenbahn.audit.verified_source`), on the real
store and the embedded broker. An order whose amount was raised in the database with sqlite3
stops the relay at its position, naming it; restored, it is published as recorded."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.relay import RelayStoppedError
from bus.topics import topic_message_counts
from nervenbahn.container import Container
from nervenbahn.datasets import PAYMENT_ORDERS
from tests.bus.advances import advancing_pipeline, pay_this_month
from tests.bus.pipeline import open_supported_case


def test_an_order_altered_in_the_database_is_not_published(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with advancing_pipeline(tmp_path, master_key, kafka_settings) as line:
        container = line.container
        case_id = open_supported_case(container.service, 0)
        pay_this_month(container, case_id, "CH5604835012345678009")
        db = line.settings.store.sqlite_path
        position, state = _order(db)
        amount = _amount_text(state)
        _set_state(db, position, state.replace(amount, amount.replace(b'"', b'"9', 1), 1))
        with pytest.raises(RelayStoppedError) as stopped:
            _relay(container)
        topic = container.topic(PAYMENT_ORDERS).name
        held = topic_message_counts(kafka_settings, [topic])[topic]
        _set_state(db, position, state)
        published = _relay(container)

    assert f"event at position {position} (PaymentOrdered" in str(stopped.value)
    assert "do not match its hash-chain link" in str(stopped.value)
    assert (held or 0) == 1  # the run's start, published before the altered order: not it
    assert published == 2  # the order as recorded, and the run's end


def _relay(container: Container) -> int:
    with container.relay(PAYMENT_ORDERS) as relay:
        before = relay.status().published
        return relay.run(threading.Event(), until_caught_up=True).published - before


def _order(db: Path) -> tuple[int, bytes]:
    connection = sqlite3.connect(db)
    try:
        position, state = connection.execute(
            "SELECT rowid, state FROM payments_events WHERE topic LIKE '%PaymentOrdered' "
            "ORDER BY rowid LIMIT 1").fetchone()
    finally:
        connection.close()
    return int(position), bytes(state)


def _amount_text(state: bytes) -> bytes:
    start = state.index(b'"amount":') + len(b'"amount":')
    end = state.index(b",", start)
    return state[start:end]


def _set_state(db: Path, position: int, state: bytes) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute("UPDATE payments_events SET state = ? WHERE rowid = ?",
                            (state, position))
        connection.commit()
    finally:
        connection.close()
