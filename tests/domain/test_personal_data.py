"""Personal data at rest: per-person keys, crypto-shredding, AHVN13 normalisation."""

from __future__ import annotations

import base64
import dataclasses
import random
from datetime import date
from uuid import UUID

import pytest
from stdnum.ch import ssn
from stdnum.exceptions import ValidationError

from domain.errors import DomainError
from domain.personal_data import (
    ERASED,
    ErasedPersonalData,
    MasterKeyError,
    PersonalData,
    PersonalDataVault,
    PersonErasedError,
    normalise_ahvn13,
)

from .case_desk import MASTER_KEY, Desk, person_input, replay
from .fakes import InMemoryKeyStore

OTHER_MASTER_KEY = bytes(reversed(range(32)))


def _person(serial: int = 1) -> PersonalData:
    return PersonalData(
        person_id=UUID(int=serial), given_name="Vreni", family_name="Studer",
        ahvn13="756.1234.5678.97", birth_date=date(1975, 8, 1), street="Gurzelngasse 3",
        postal_code="4500", town="Solothurn",
    )


@pytest.fixture
def vault(keystore: InMemoryKeyStore) -> PersonalDataVault:
    """A vault over the desk's in-memory key store, with the desk's master key."""
    return PersonalDataVault(keystore, MASTER_KEY)


# --- the vault -------------------------------------------------------------------------------


def test_personal_data_round_trips_through_the_vault(vault: PersonalDataVault) -> None:
    person = _person()
    stored = vault.encrypt(person)

    assert set(stored) == {"person_id", "sealed"}
    assert stored["person_id"] == person.person_id.hex
    assert vault.decrypt(stored) == person


def test_sealed_form_holds_nothing_in_clear(vault: PersonalDataVault) -> None:
    person = _person()
    sealed = base64.b64decode(vault.encrypt(person)["sealed"])

    for value in person.to_plain().values():
        if value != str(person.person_id):
            assert value.encode() not in sealed


def test_each_encryption_uses_a_fresh_nonce(vault: PersonalDataVault) -> None:
    person = _person()
    assert vault.encrypt(person)["sealed"] != vault.encrypt(person)["sealed"]


def test_a_person_gets_one_key_which_later_encryptions_reuse(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    first = vault.encrypt(_person())
    key = keystore.keys[UUID(int=1)]
    vault.ensure_keys([UUID(int=1), UUID(int=1)])

    assert keystore.keys == {UUID(int=1): key}
    assert vault.decrypt(first) == _person()


def test_ensure_keys_reports_only_the_keys_it_created(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    vault.ensure_keys([UUID(int=1)])

    assert vault.ensure_keys([UUID(int=1), UUID(int=2)]) == [UUID(int=2)]
    assert set(keystore.keys) == {UUID(int=1), UUID(int=2)}


def test_discarded_keys_leave_no_tombstone(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    created = vault.ensure_keys([UUID(int=1), UUID(int=2)])
    vault.discard(created)

    assert keystore.state() == ({}, frozenset())
    assert vault.ensure_keys([UUID(int=1)]) == [UUID(int=1)]  # not erased: may come back


def test_erased_person_reads_as_erased_personal_data(vault: PersonalDataVault) -> None:
    stored = vault.encrypt(_person())
    assert vault.erase(UUID(int=1)) is True

    erased = vault.decrypt(stored)

    assert erased == ErasedPersonalData(UUID(int=1))
    assert erased.is_erased


def test_erasing_twice_or_erasing_a_stranger_reports_no_key(vault: PersonalDataVault) -> None:
    vault.encrypt(_person())
    assert vault.erase(UUID(int=1)) is True
    assert vault.erase(UUID(int=1)) is False
    assert vault.erase(UUID(int=2)) is False


def test_erased_person_cannot_get_a_new_key(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    vault.encrypt(_person())
    vault.erase(UUID(int=1))

    with pytest.raises(PersonErasedError, match=str(UUID(int=1))):
        vault.ensure_keys([UUID(int=1)])
    with pytest.raises(PersonErasedError):
        vault.encrypt(_person())
    assert UUID(int=1) not in keystore.keys


def test_ensure_keys_refuses_the_whole_batch_when_one_person_was_erased(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    vault.erase(UUID(int=1))

    with pytest.raises(PersonErasedError):
        vault.ensure_keys([UUID(int=2), UUID(int=1)])
    assert keystore.keys == {}


def test_wrong_master_key_raises_master_key_error(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    stored = vault.encrypt(_person())
    stranger = PersonalDataVault(keystore, OTHER_MASTER_KEY)

    with pytest.raises(MasterKeyError, match="master key"):
        stranger.decrypt(stored)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_key_must_be_256_bits(keystore: InMemoryKeyStore, length: int) -> None:
    with pytest.raises(MasterKeyError, match="32 bytes"):
        PersonalDataVault(keystore, bytes(length))


def test_a_data_key_is_bound_to_its_person(
    vault: PersonalDataVault, keystore: InMemoryKeyStore
) -> None:
    vault.encrypt(_person(1))
    stored = vault.encrypt(_person(2))
    keystore.keys[UUID(int=2)] = keystore.keys[UUID(int=1)]

    with pytest.raises(MasterKeyError):
        vault.decrypt(stored)


def test_sealed_data_moved_to_another_person_is_refused_as_a_domain_error(
    vault: PersonalDataVault,
) -> None:
    vault.encrypt(_person(1))
    stored = vault.encrypt(_person(2))

    with pytest.raises(DomainError):
        vault.decrypt({**stored, "person_id": UUID(int=1).hex})


def test_erased_data_shows_every_personal_field_as_erased() -> None:
    plain = ErasedPersonalData(UUID(int=5)).to_plain()

    assert set(plain) == set(_person().to_plain())
    assert plain.pop("person_id") == str(UUID(int=5))
    assert set(plain.values()) == {ERASED}


# --- AHVN13 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["756.1234.5678.97", "7561234567897", "756 1234 5678 97", " 756.1234.5678.97"]
)
def test_ahvn13_is_normalised_to_its_printed_form(written: str) -> None:
    assert normalise_ahvn13(written) == "756.1234.5678.97"


@pytest.mark.parametrize(
    "written",
    [
        "756.1234.5678.98",  # wrong check digit
        "755.1234.5678.97",  # not the Swiss prefix
        "756.1234.5678",  # too short
        "756.1234.5678.970",  # too long
        "756.ABCD.5678.97",  # letters
        "",
    ],
)
def test_invalid_ahvn13_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match="AHVN13"):
        normalise_ahvn13(written)


def test_ahvn13_is_judged_as_python_stdnum_judges_it() -> None:
    # normalise_ahvn13 answers the plain forms itself (fast), stdnum the others.
    rng = random.Random(13)
    for _ in range(5000):
        digits = "756" + "".join(rng.choice("0123456789") for _ in range(10))
        for written in (digits, f"{digits[:3]}.{digits[3:7]}.{digits[7:11]}.{digits[11:]}"):
            try:
                expected: str | None = str(ssn.format(ssn.validate(written)))
            except ValidationError:
                expected = None
            try:
                got: str | None = normalise_ahvn13(written)
            except ValueError:
                got = None
            assert got == expected, written


# --- erasure in the case service -------------------------------------------------------------


def test_personal_data_is_never_stored_in_clear(desk: Desk) -> None:
    applicant = person_input(1, given_name="Vreni", street="Gurzelngasse 3")
    case_id = desk.open(applicant=applicant)

    stored = b"".join(record.state for record in desk.service.recorder.select_events(case_id))
    for value in ("Vreni", "Gurzelngasse 3", applicant["ahvn13"], applicant["birth_date"]):
        assert value.encode() not in stored


def test_case_still_replays_after_erasure_with_the_person_shown_as_erased(desk: Desk) -> None:
    case_id = desk.open(household_size=2, other_members=[person_input(2)])
    desk.run("complete_assessment", case_id=case_id)
    before = desk.case(case_id)
    applicant_id = before.applicant.person_id

    assert desk.service.erase_person(applicant_id) is True

    case = desk.case(case_id)
    assert case.applicant == ErasedPersonalData(applicant_id)
    assert case.applicant.to_plain()["given_name"] == ERASED
    assert set(case.applicant.to_plain().values()) == {str(applicant_id), ERASED}
    assert case.other_members == before.other_members  # the other member is untouched
    assert case.version == before.version
    assert vars(replay(desk.events(case_id))) == vars(case)
    assert [h.event for h in desk.service.history(case_id)] == [
        "CaseOpened", "AssessmentCompleted"
    ]


def test_erased_case_goes_on_and_snapshots_keep_the_erasure(desk: Desk) -> None:
    case_id = desk.supported()
    applicant_id = desk.case(case_id).applicant.person_id
    desk.service.erase_person(applicant_id)

    for _ in range(100):
        desk.run("complete_review", case_id=case_id)

    assert desk.service.snapshots is not None
    assert [s.originator_version for s in desk.service.snapshots.get(case_id)] == [100]
    case = desk.case(case_id)
    assert case.applicant == ErasedPersonalData(applicant_id)
    assert vars(case) == vars(replay(desk.events(case_id)))


def test_erased_person_cannot_be_recorded_in_a_new_case(desk: Desk) -> None:
    case_id = desk.open()
    person_id = desk.case(case_id).applicant.person_id
    desk.service.erase_person(person_id)

    command = desk.commands("open_case", applicant=person_input(1, person_id=str(person_id)))
    desk.refused(command, PersonErasedError, mentions=(str(person_id),))


def test_erasure_reaches_every_case_of_the_person(desk: Desk) -> None:
    person = person_input(1, person_id=str(UUID(int=77)))
    first, second = desk.open(applicant=person), desk.open(applicant=person)
    assert list(desk.keystore.keys) == [UUID(int=77)]

    desk.service.erase_person(UUID(int=77))

    assert desk.case(first).applicant.is_erased
    assert desk.case(second).applicant.is_erased


def test_the_personal_data_dataclasses_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _person().town = "Olten"  # type: ignore[misc]
