"""The cases a process saved last, kept for its next command on them.

A command loads its case, changes it and saves it; the next command on the same case loaded it
again from all its events (or a snapshot and the events after it). `KeptCases` keeps the case
a command saved, with its last event as stored, and the next command takes it out and folds
onto it only the events recorded since (by this process or any other), read in the one query a
load would have made.

What keeps this right:
- **Taken, not shared.** A command takes its case out of the keeping; no other command can
  change or see the same object meanwhile (one that asks finds nothing and loads the case
  from the store). Only a case whose events were saved is put back, so a command that fails
  half-way, a rule that refuses it, or a save that loses to another writer leaves nothing
  behind; no copy is ever needed.
- **Checked against the store.** The events are read from the version the case was kept at
  (inclusive), and the stored event at that version must be, byte for byte, the one this
  process saved (its stored state is in what `save` returns): a store that no longer holds it
  (restored from an older backup, perhaps written on again since, or another file under the
  same name) drops the kept case, and the case is loaded from the store as if nothing had
  been kept. Only that event is compared, not the history below it: a restore followed by a
  different history that ends in a byte-identical event (the same command, recorded at the
  same microsecond with the same correlation id) would go unseen. A real clock does not
  repeat a microsecond for the same case; a test clock can.
- **No clear personal data kept.** A case is kept only if every person in it is sealed: a case
  whose persons came from the command (just opened) is not, and whatever a command opened is
  sealed again (`reseal_persons`), so a person erased afterwards is never shown from the
  keeping. Only `CaseOpened` carries persons, and it is never the kept last event.
- **Bounded.** At most `maxsize` cases and `max_events` events in all (the kept cases'
  versions added up; a case of 10,000 events takes 4 to 11 MB), the least recently kept
  dropped first; a case larger than `max_events` alone is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any
from uuid import UUID

from domain.case import Case
from domain.personal_data import PersonalDataVault, SealedPersonalData

__all__ = ["KEPT_CASES", "KEPT_EVENTS", "KeptCases", "reseal_persons"]

KEPT_CASES = 512
"""How many saved cases a case service keeps for the next command on them."""
KEPT_EVENTS = 50_000
"""How many events the kept cases may hold in all (their versions added up): about 20 to 55 MB
at the 4 to 11 MB measured for a case of 10,000 events."""


class KeptCases:
    """Saved cases, each taken out by the next command on it (thread-safe)."""

    def __init__(self, maxsize: int = KEPT_CASES, max_events: int = KEPT_EVENTS) -> None:
        for name, value in (("maxsize", maxsize), ("max_events", max_events)):
            if value < 0:
                raise ValueError(f"{name}: {value} is negative; give 0 to keep no case")
        self._maxsize = maxsize
        self._max_events = max_events
        self._cases: OrderedDict[UUID, tuple[Case, Any]] = OrderedDict()
        self._events = 0
        self._lock = Lock()

    def take(self, case_id: UUID) -> tuple[Case, Any] | None:
        """The kept case and its last event as stored, no longer kept (None if it was
        not)."""
        with self._lock:
            kept = self._cases.pop(case_id, None)
            if kept is not None:
                self._events -= kept[0].version
            return kept

    def keep(self, case: Case, saved: Any, vault: PersonalDataVault) -> None:
        """Keep a case whose events were all saved, `saved` the last of them as stored (its
        `originator_version`, `topic` and `state`), its persons sealed again; a case with
        events not saved, with a person in clear, or larger than the bound alone is not kept
        (the command is recorded by then: nothing here raises)."""
        persons = (case.applicant, *case.other_members)
        if (case.pending_events or saved is None or case.version > self._max_events
                or getattr(saved, "originator_version", None) != case.version
                or self._maxsize == 0
                or not all(isinstance(person, SealedPersonalData) for person in persons)):
            return
        reseal_persons(case, vault)
        with self._lock:
            earlier = self._cases.pop(case.id, None)
            if earlier is not None:
                self._events -= earlier[0].version
            self._cases[case.id] = (case, saved)
            self._events += case.version
            while len(self._cases) > self._maxsize or self._events > self._max_events:
                _, (dropped, _) = self._cases.popitem(last=False)
                self._events -= dropped.version

    def __len__(self) -> int:
        return len(self._cases)

    @property
    def events(self) -> int:
        """The events the kept cases hold in all (their versions added up)."""
        return self._events

    def clear(self) -> None:
        """Keep no case."""
        with self._lock:
            self._cases.clear()
            self._events = 0


def reseal_persons(case: Case, vault: PersonalDataVault) -> None:
    """Give the case persons of its own, still sealed: a person opened before an erasure must
    not show the data after it."""
    case.applicant = _resealed(case.applicant, vault)
    case.other_members = [_resealed(member, vault) for member in case.other_members]


def _resealed(person: Any, vault: PersonalDataVault) -> Any:
    if isinstance(person, SealedPersonalData):
        return SealedPersonalData(person.sealed, vault)
    return person
