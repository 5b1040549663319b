"""The saved cases a service keeps for its next command (domain.application.kept_cases).

Commands on a kept case against the stores, with other writers and a restored file, are in the
store contract (tests/storage/contract.py, test_sqlite_store.py); these are the keeping itself.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from domain.application.kept_cases import KeptCases
from domain.case import Recording
from domain.personal_data import ErasedPersonalData, PersonalData, SealedPersonalData

from .case_desk import Desk


def test_a_kept_case_is_taken_once(desk: Desk) -> None:
    kept = KeptCases()
    case = desk.case(desk.open())
    kept.keep(case, desk.service.vault)

    assert kept.take(case.id) is case
    assert kept.take(case.id) is None  # a second command loads it from the store
    assert len(kept) == 0


def test_the_least_recently_kept_cases_go_first(desk: Desk) -> None:
    kept = KeptCases(maxsize=2)
    first, second, third = (desk.case(desk.open()) for _ in range(3))
    for case in (first, second, first, third):
        kept.keep(case, desk.service.vault)

    assert len(kept) == 2
    assert kept.take(second.id) is None
    assert kept.take(first.id) is first
    assert kept.take(third.id) is third


def test_a_size_of_zero_keeps_nothing(desk: Desk) -> None:
    kept = KeptCases(maxsize=0)
    case = desk.case(desk.open())
    kept.keep(case, desk.service.vault)

    assert kept.take(case.id) is None
    with pytest.raises(ValueError, match="maxsize: -1 is negative"):
        KeptCases(maxsize=-1)


def test_a_case_with_events_not_saved_is_not_kept(desk: Desk) -> None:
    case = desk.case(desk.supported())
    desk.service.dispatch(case, desk.commands("complete_review", case_id=case.id),
                          Recording(desk.clock()))

    with pytest.raises(AssertionError, match="only a saved case"):
        KeptCases().keep(case, desk.service.vault)


def test_a_person_opened_before_an_erasure_is_not_shown_after_it(desk: Desk) -> None:
    case = desk.case(desk.open())
    applicant = case.applicant
    assert isinstance(applicant, SealedPersonalData)
    assert isinstance(applicant.open(), PersonalData)  # opened: the clear data in memory
    kept = KeptCases()
    kept.keep(case, desk.service.vault)
    assert desk.service.erase_person(applicant.person_id)

    taken = kept.take(case.id)

    assert taken is not None
    assert taken.applicant is not applicant
    assert taken.applicant.open() == ErasedPersonalData(UUID(str(applicant.person_id)))
