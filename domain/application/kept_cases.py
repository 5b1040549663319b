"""The cases a process saved last, kept for its next command on them.

A command loads its case, changes it and saves it; the next command on the same case loaded it
again from all its events (or a snapshot and the events after it). `KeptCases` keeps the case
a command saved, and the next command takes it out and folds onto it only the events recorded
since (by this process or any other), read in the one query a load would have made.

What keeps this right:
- **Taken, not shared.** A command takes its case out of the keeping; no other command can
  change or see the same object meanwhile (one that asks finds nothing and loads the case
  from the store). Only a case whose events were saved is put back, so a command that fails
  half-way, a rule that refuses it, or a save that loses to another writer leaves nothing
  behind; no copy is ever needed.
- **Checked against the store.** The events are read from the version the case was kept at
  (inclusive): if the store no longer holds that version (a store restored from an older
  backup, another file under the same name), the kept case is dropped and the case loaded
  from the store as if nothing had been kept.
- **No clear personal data kept.** Persons are kept sealed (`reseal_persons`): whatever a
  command opened is not, so a person erased afterwards is never shown from the keeping.
- **Bounded.** At most `maxsize` cases, the least recently kept dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any
from uuid import UUID

from domain.case import Case
from domain.personal_data import PersonalDataVault, SealedPersonalData

__all__ = ["KEPT_CASES", "KeptCases", "reseal_persons"]

KEPT_CASES = 512
"""How many saved cases a case service keeps for the next command on them (a case of a few
dozen events takes a few kilobytes)."""


class KeptCases:
    """Saved cases, each taken out by the next command on it (thread-safe)."""

    def __init__(self, maxsize: int = KEPT_CASES) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize: {maxsize} is negative; give 0 to keep no case")
        self._maxsize = maxsize
        self._cases: OrderedDict[UUID, Case] = OrderedDict()
        self._lock = Lock()

    def take(self, case_id: UUID) -> Case | None:
        """The kept case, no longer kept (None if it was not)."""
        with self._lock:
            return self._cases.pop(case_id, None)

    def keep(self, case: Case, vault: PersonalDataVault) -> None:
        """Keep a case whose events were all saved, its persons sealed again."""
        if self._maxsize == 0:
            return
        assert not case.pending_events, "only a saved case is kept"
        reseal_persons(case, vault)
        with self._lock:
            self._cases[case.id] = case
            self._cases.move_to_end(case.id)
            while len(self._cases) > self._maxsize:
                self._cases.popitem(last=False)

    def __len__(self) -> int:
        return len(self._cases)

    def clear(self) -> None:
        """Keep no case."""
        with self._lock:
            self._cases.clear()


def reseal_persons(case: Case, vault: PersonalDataVault) -> None:
    """Give the case persons of its own, still sealed: a person opened before an erasure must
    not show the data after it."""
    case.applicant = _resealed(case.applicant, vault)
    case.other_members = [_resealed(member, vault) for member in case.other_members]


def _resealed(person: Any, vault: PersonalDataVault) -> Any:
    if isinstance(person, SealedPersonalData):
        return SealedPersonalData(person.sealed, vault)
    return person
