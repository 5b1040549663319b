"""The saved cases a service keeps for its next command (domain.application.kept_cases).

Commands on a kept case against the stores, with other writers and a restored file, are in the
store contract (tests/storage/contract.py, test_sqlite_store.py); these are the keeping itself.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.application.kept_cases import KeptCases
from domain.case import Case, Recording
from domain.personal_data import ErasedPersonalData, PersonalData, SealedPersonalData

from .case_desk import Desk


def _saved(desk: Desk, case_id: UUID) -> tuple[Case, Any]:
    """A case as loaded from the store, and its last event as stored."""
    return desk.case(case_id), desk.service.recorder.select_events(case_id, desc=True,
                                                                   limit=1)[0]


def test_a_kept_case_is_taken_once(desk: Desk) -> None:
    kept = KeptCases()
    case, last = _saved(desk, desk.open())
    kept.keep(case, last, desk.service.vault)

    assert kept.take(case.id) == (case, last)
    assert kept.take(case.id) is None  # a second command loads it from the store
    assert (len(kept), kept.events) == (0, 0)


def test_the_least_recently_kept_cases_go_first(desk: Desk) -> None:
    kept = KeptCases(maxsize=2)
    first, second, third = (_saved(desk, desk.open()) for _ in range(3))
    for case, last in (first, second, first, third):
        kept.keep(case, last, desk.service.vault)

    assert len(kept) == 2
    assert kept.take(second[0].id) is None
    assert kept.take(first[0].id) == first
    assert kept.take(third[0].id) == third


def test_the_kept_cases_hold_at_most_so_many_events(desk: Desk) -> None:
    kept = KeptCases(max_events=6)
    small, larger = _saved(desk, desk.open()), _saved(desk, desk.supported())  # 1 and 3
    too_large = desk.supported()
    for _ in range(4):
        desk.run("complete_review", case_id=too_large)
    too_large_case, too_large_last = _saved(desk, too_large)  # 7: more than the bound alone

    kept.keep(*small, desk.service.vault)
    kept.keep(*larger, desk.service.vault)
    kept.keep(too_large_case, too_large_last, desk.service.vault)
    assert (len(kept), kept.events) == (2, 4)
    again = _saved(desk, desk.supported())
    kept.keep(*again, desk.service.vault)  # 1 + 3 + 3 > 6: the least recent goes

    assert (len(kept), kept.events) == (2, 6)
    assert kept.take(small[0].id) is None
    assert kept.take(too_large) is None
    assert kept.take(larger[0].id) == larger
    assert kept.take(again[0].id) == again
    assert kept.events == 0


def test_a_size_of_zero_keeps_nothing(desk: Desk) -> None:
    case, last = _saved(desk, desk.open())
    KeptCases(maxsize=0).keep(case, last, desk.service.vault)
    KeptCases(max_events=0).keep(case, last, desk.service.vault)

    for name in ("maxsize", "max_events"):
        with pytest.raises(ValueError, match=f"{name}: -1 is negative"):
            KeptCases(**{name: -1})


def test_a_case_with_events_not_saved_is_not_kept(desk: Desk) -> None:
    case, last = _saved(desk, desk.supported())
    desk.service.dispatch(case, desk.commands("complete_review", case_id=case.id),
                          Recording(desk.clock()))
    kept = KeptCases()
    kept.keep(case, last, desk.service.vault)

    assert kept.take(case.id) is None


def test_a_case_whose_persons_came_from_the_command_is_not_kept(desk: Desk) -> None:
    # As `execute` has it right after open_case: the persons as the command gave them.
    case = Case.open(desk.commands("open_case"), Recording(desk.clock()), desk.reference)
    last = desk.service.save_with_keys(case)[-1].notification
    assert isinstance(case.applicant, PersonalData)
    kept = KeptCases()
    kept.keep(case, last, desk.service.vault)

    assert kept.take(case.id) is None


def test_a_person_opened_before_an_erasure_is_not_shown_after_it(desk: Desk) -> None:
    case, last = _saved(desk, desk.open())
    applicant = case.applicant
    assert isinstance(applicant, SealedPersonalData)
    assert isinstance(applicant.open(), PersonalData)  # opened: the clear data in memory
    kept = KeptCases()
    kept.keep(case, last, desk.service.vault)
    assert desk.service.erase_person(applicant.person_id)

    taken = kept.take(case.id)

    assert taken is not None
    assert taken[0].applicant is not applicant
    assert taken[0].applicant.open() == ErasedPersonalData(UUID(str(applicant.person_id)))


def test_each_command_after_the_first_goes_on_from_the_kept_case(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every kind of event a case records must compare equal to itself read back from the
    # store, or the kept case would be dropped each time (right, but slow).
    case_id = desk.assessed()  # open_case keeps nothing; complete_assessment loads, keeps
    loads: list[UUID] = []
    load = desk.service.get_case
    monkeypatch.setattr(desk.service, "get_case",
                        lambda case_id: loads.append(case_id) or load(case_id))
    granted = desk.run("grant_support", case_id=case_id)
    goal_id, measure_id = str(UUID(int=1)), str(UUID(int=2))
    for name, fields in (
        ("agree_goal", {"goal_id": goal_id}), ("start_measure", {"measure_id": measure_id}),
        ("change_budget", {}), ("complete_review", {}), ("record_goal_outcome", {}),
        ("complete_measure", {}),
        ("close_case", {}), ("reopen_case", {}), ("hand_over_case", {}),
    ):
        desk.run(name, case_id=case_id, **fields)

    assert granted.version == 3
    assert loads == []
    assert len(desk.events(case_id)) == 12
    assert vars(desk.service.get_case(case_id)) == vars(load(case_id))
