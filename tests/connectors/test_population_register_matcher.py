"""The population register's person index: open cases by AHVN13 of any household member,
never the AHVN13 in clear."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.population_register import PersonIndex
from connectors.population_register.matcher import LOCAL_ID_CATEGORY
from domain import commands
from tests.domain.case_desk import Desk, build_desk, person_input


@pytest.fixture
def desk() -> Iterator[Desk]:
    """An in-memory case service with a caseworker of so-solothurn."""
    built = build_desk(commands.Actor("anna.keller", "caseworker", "so-solothurn"))
    yield built
    built.service.close()


def test_every_member_of_an_open_case_is_found_and_closed_cases_are_not(desk: Desk) -> None:
    household = desk.open(household_size=2, other_members=[person_input(2)])
    closed = desk.open(applicant=person_input(3))
    desk.run("close_case", case_id=closed, reason="other")
    cases = [desk.case(household), desk.case(closed)]

    index = PersonIndex.of_open_cases(cases)

    applicant, member = person_input(1)["ahvn13"], person_input(2)["ahvn13"]
    assert [m.case_id for m in index.by_ahvn13(applicant)] == [household]
    assert [m.case_id for m in index.by_ahvn13(member.replace(".", ""))] == [household]
    assert index.by_ahvn13(person_input(3)["ahvn13"]) == []  # closed case
    assert index.by_ahvn13(person_input(4)["ahvn13"]) == []  # unknown person
    assert index.by_ahvn13(applicant)[0].social_region == "so-solothurn"


def test_the_index_keeps_no_ahvn13_in_clear(desk: Desk) -> None:
    case_id = desk.open()
    index = PersonIndex.of_open_cases([desk.case(case_id)])
    ahvn13 = person_input(1)["ahvn13"]
    state = repr(vars(index))
    assert ahvn13 not in state and ahvn13.replace(".", "") not in state


def test_local_person_id_matches_only_in_our_category(desk: Desk) -> None:
    case_id = desk.open()
    case = desk.case(case_id)
    index = PersonIndex.of_open_cases([case])
    person_id = str(case.applicant.person_id)
    assert [m.case_id for m in index.by_local_id(LOCAL_ID_CATEGORY, person_id)] == [case_id]
    assert index.by_local_id("CH.ZAR", person_id) == []
    assert index.by_local_id(LOCAL_ID_CATEGORY, "not-a-uuid") == []
