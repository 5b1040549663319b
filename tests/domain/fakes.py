"""Fakes for the domain tests: an in-memory key store, a clock the test moves by hand and the
benefit applications a case can advance in view of.

Fakes, not mocks: each behaves like the real thing (the `KeyStore` contract, a tz-aware
clock), so tests check outcomes instead of call sequences.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from domain.case import BenefitOnRecord
from domain.errors import ApplicationNotFoundError
from domain.personal_data import MemoryKeyStore

__all__ = ["FakeBenefits", "FakeClock", "InMemoryKeyStore"]


class FakeBenefits:
    """Benefit applications by id, as the benefits store would answer a case
    (`BenefitService.on_record`): ApplicationNotFoundError for an unknown id."""

    def __init__(self) -> None:
        self.applications: dict[UUID, BenefitOnRecord] = {}

    def add(self, application: BenefitOnRecord) -> BenefitOnRecord:
        """Record (or replace, e.g. with a later stage) an application."""
        self.applications[application.application_id] = application
        return application

    def __call__(self, application_id: UUID) -> BenefitOnRecord:
        """The application with `application_id`."""
        try:
            return self.applications[application_id]
        except KeyError:
            raise ApplicationNotFoundError(application_id) from None


class InMemoryKeyStore(MemoryKeyStore):
    """The domain's key store in memory, remembering whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        """Nothing to release; remembered so a test can check it was called."""
        self.closed = True

    def state(self) -> tuple[dict[UUID, bytes], frozenset[UUID]]:
        """A copy of everything stored, to compare before and after a refused command."""
        return dict(self.keys), frozenset(self.tombstones)


class FakeClock:
    """A clock that stands still until the test advances it; always timezone-aware."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the fake clock needs a timezone-aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        """The current (fake) time."""
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by a `timedelta(**delta)` and return the new time."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError("the fake clock only moves forward")
        self.now += step
        return self.now
