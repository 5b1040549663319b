"""What travels with an event on the bus: its encoded form, its id, sealed persons.

`event_id` is the same wherever it is computed (relay, consumer, auditor): a consumer
deduplicates by it, and an event relayed twice keeps one id.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid5

__all__ = ["EVENT_ID_NAMESPACE", "EncodedEvent", "SealedPerson", "event_id"]

EVENT_ID_NAMESPACE = UUID("476a5c74-c6c7-55b8-81d7-18814063cd87")
"""uuid5(NAMESPACE_URL, "urn:nervenbahn:casework:event"); fixed forever: ids depend on it."""


def event_id(case_id: UUID, version: int) -> UUID:
    """The id of the event at `version` of case `case_id` (UUID version 5, deterministic)."""
    return uuid5(EVENT_ID_NAMESPACE, f"{case_id}/{version}")


@dataclass(frozen=True)
class EncodedEvent:
    """An event in the Confluent wire format, with what a producer needs beside the bytes."""

    value: bytes
    schema_id: int
    event_type: str


@dataclass(frozen=True, repr=False)
class SealedPerson:
    """A household member as consumers outside the core see them: an id and sealed data.

    Only the core's vault can open `sealed`; once the person is erased, nobody can.
    """

    person_id: UUID
    sealed: str

    def __repr__(self) -> str:
        return f"SealedPerson(person_id={self.person_id!s})"
