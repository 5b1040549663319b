"""What the `audit` commands share: the store's database and the checkpoint signing key."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, cast
from uuid import UUID

from nervenbahn.audit.database import AuditDatabase, open_audit_database
from nervenbahn.audit.read_check import case_problems, chain_problems, require_verified
from nervenbahn.config import ConfigError

from .session import Session

if TYPE_CHECKING:  # checkpoints bring Kafka and Avro, which the case commands never need
    from nervenbahn.audit.checkpoints import SigningKey

__all__ = ["Reads", "events_table", "require_case_verified", "require_chains_verified",
           "signing_key", "store_database"]

Reads = Literal["cases", "payments", "everything"]
"""What a population query reads: the case store, the payments store, or every chain."""


def signing_key(rt: Session) -> SigningKey:
    """The installation's checkpoint signing key (ConfigError, exit 3, if it is missing)."""
    from nervenbahn.audit.checkpoints import SigningKey

    return SigningKey.from_seed(rt.settings.signing_key.get_secret_value())


@contextmanager
def store_database(rt: Session) -> Iterator[AuditDatabase]:
    """The store's database for the auditor tools; ConfigError if there is no store."""
    try:
        db = open_audit_database(rt.settings.store)
    except FileNotFoundError as exc:
        raise ConfigError(f"NERVENBAHN_STORE: {exc}") from None
    try:
        yield db
    finally:
        db.close()


def require_case_verified(rt: Session, case_id: UUID) -> None:
    """Refuse to show anything of a case whose stored events do not match their hash-chain
    links (`nervenbahn.audit.read_check`): UnverifiedReadError, exit 4."""
    table = events_table(rt.service.recorder)
    with store_database(rt) as db:
        require_verified(case_problems(db, case_id, table), f"case {case_id}")


def require_chains_verified(rt: Session, what: str, reads: Collection[Reads]) -> None:
    """Refuse `what` (a population: a list, an extract) if a chain of the stores it `reads`
    does not recompute from its first event: UnverifiedReadError, exit 4."""
    tables = {events_table(rt.service.recorder)} if "cases" in reads else set()
    if "payments" in reads:
        tables.add(events_table(rt.container.payments.recorder))
    with store_database(rt) as db:
        require_verified(chain_problems(db, None if "everything" in reads else tables), what)


def events_table(recorder: object) -> str:
    """The events table a service's recorder writes (`stored_events`, `payments_events` on
    SQLite; named after the application on PostgreSQL)."""
    return str(cast(Any, recorder).events_table_name)
