"""What the `audit` commands share: the store's database and the checkpoint signing key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nervenbahn.audit.checkpoints import SigningKey
from nervenbahn.audit.database import AuditDatabase, open_audit_database
from nervenbahn.config import ConfigError

from .session import Session

__all__ = ["signing_key", "store_database"]


def signing_key(rt: Session) -> SigningKey:
    """The installation's checkpoint signing key (ConfigError, exit 3, if it is missing)."""
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
