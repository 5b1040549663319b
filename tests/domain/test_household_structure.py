"""CaseOpened version 2 records the household structure (for the federal statistics); version
1 events, stored before it existed, read back as version 2 with it not recorded (None), and the
stored bytes are what version 1 wrote. The store of the previous release itself is replayed in
tests/test_evolution_previous_release.py."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from eventsourcing.persistence import StoredEvent

from domain.commands import HouseholdStructure, OpenCase
from domain.errors import InvalidCommandError
from domain.events import CaseOpened

from .case_desk import Desk, person_input


def test_the_household_structure_given_at_intake_is_recorded(desk: Desk) -> None:
    case_id = desk.open(household_size=3, household_structure="single_parent",
                        other_members=[person_input(2)])

    (opened, *_) = desk.events(case_id)

    assert isinstance(opened, CaseOpened)
    assert opened.household_structure == "single_parent"


def test_a_case_opened_without_the_household_structure_records_none(desk: Desk) -> None:
    (opened,) = desk.events(desk.open())

    assert isinstance(opened, CaseOpened)
    assert opened.household_structure is None


def test_the_codes_are_the_federal_statistics_case_types() -> None:
    assert get_args(HouseholdStructure) == (
        "one_person", "single_parent", "couple_with_children", "couple_without_children",
        "other",
    )


@pytest.mark.parametrize(("size", "structure"), [
    (1, "one_person"), (2, "single_parent"), (3, "couple_with_children"),
    (2, "couple_without_children"), (2, "other"),
])
def test_each_structure_is_accepted_from_its_smallest_household(
    desk: Desk, size: int, structure: str
) -> None:
    command = desk.commands("open_case", household_size=size, household_structure=structure)

    assert isinstance(command, OpenCase)
    assert command.household_structure == structure


def test_a_structure_that_does_not_fit_the_size_names_field_and_reason(desk: Desk) -> None:
    with pytest.raises(InvalidCommandError) as info:
        desk.commands("open_case", household_size=1, household_structure="single_parent")

    assert "household_structure: single_parent does not fit a household of 1 person(s)" in str(
        info.value)


def test_new_openings_are_stored_as_class_version_3(desk: Desk) -> None:
    """Version 2 added the household structure, version 3 the established identity."""
    case_id = desk.open(household_structure="one_person")

    (stored,) = _stored(desk, case_id)

    state = desk.service.mapper.transcoder.decode(stored.state)
    assert state["class_version"] == 3
    assert state["household_structure"] == "one_person"


def test_a_version_1_opening_upcasts_on_read_without_rewriting_the_store(desk: Desk) -> None:
    case_id = desk.open(household_structure="one_person")
    (stored,) = _stored(desk, case_id)
    v1 = _as_version_1(desk, stored)

    event = desk.service.mapper.to_domain_event(v1)

    assert isinstance(event, CaseOpened)
    assert event.household_structure is None
    assert event.household_size == 1
    assert desk.service.mapper.transcoder.decode(v1.state).keys() >= {"household_size"}
    assert "household_structure" not in desk.service.mapper.transcoder.decode(v1.state)


def _stored(desk: Desk, case_id: Any) -> list[StoredEvent]:
    return list(desk.service.recorder.select_events(case_id))


def _as_version_1(desk: Desk, stored: StoredEvent) -> StoredEvent:
    """The stored opening as release 8bda164 wrote it: no class_version, no structure (nor
    the identity of version 3)."""
    transcoder = desk.service.mapper.transcoder
    state = transcoder.decode(stored.state)
    del state["class_version"], state["household_structure"]
    del state["recorded_by"], state["import_origin"]
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                       transcoder.encode(state))
