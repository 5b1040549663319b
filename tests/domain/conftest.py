"""Fixtures of the domain tests: an in-memory case service, a fake clock, command builders.

Everything runs on eventsourcing's in-memory (POPO) persistence; the storage backends have
their own suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from domain import commands
from domain.application.cases import CaseService
from domain.reference import ReferenceData, load_reference_data

from .case_desk import CommandFactory, Desk, build_desk
from .fakes import FakeClock, InMemoryKeyStore


@pytest.fixture
def actor() -> commands.Actor:
    """A caseworker of the social region of Solothurn (the city)."""
    return commands.Actor(user_id="anna.keller", role="caseworker", organisation="so-solothurn")


@pytest.fixture
def desk(actor: commands.Actor) -> Iterator[Desk]:
    """A fresh in-memory case service at the fake start time."""
    built = build_desk(actor)
    yield built
    built.service.close()


@pytest.fixture
def clock(desk: Desk) -> FakeClock:
    """The desk's fake clock."""
    return desk.clock


@pytest.fixture
def keystore(desk: Desk) -> InMemoryKeyStore:
    """The desk's in-memory key store."""
    return desk.keystore


@pytest.fixture
def service(desk: Desk) -> CaseService:
    """The case service on in-memory persistence."""
    return desk.service


@pytest.fixture
def make_command(desk: Desk) -> CommandFactory:
    """Builds well-formed commands for `actor`; overrides via keyword arguments."""
    return desk.commands


@pytest.fixture
def reference() -> ReferenceData:
    """The reference data shipped with the domain."""
    return load_reference_data()


@pytest.fixture
def new_desk(actor: commands.Actor) -> Iterator[Callable[[], Desk]]:
    """A factory of fresh desks, for property tests that need one per example."""
    built: list[Desk] = []

    def make() -> Desk:
        built.append(build_desk(actor))
        return built[-1]

    yield make
    for each in built:
        each.service.close()
