"""How domain values are written into stored events: plain JSON, personal data sealed."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)

__all__ = ["register_domain_transcodings"]


class DateAsISO(Transcoding):
    """A calendar date as `YYYY-MM-DD`."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class DataclassAsDict(Transcoding):
    """A frozen value dataclass as a dict of its fields (nested values transcoded in turn)."""

    def __init__(self, cls: type[Any]) -> None:
        self.type = cls
        self.name = cls.__name__
        self._fields = tuple(field.name for field in dataclasses.fields(cls))

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


class PersonalDataSealed(Transcoding):
    """Personal data, sealed with the person's own key before it reaches the store."""

    type = PersonalData
    name = "personal_data"

    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    def encode(self, obj: PersonalData) -> dict[str, str]:
        return self._vault.encrypt(obj)

    def decode(self, data: dict[str, str]) -> SealedPersonalData:
        return SealedPersonalData(data, self._vault)


class SealedPersonalDataAsStored(PersonalDataSealed):
    """Personal data loaded and not changed: written back exactly as it was stored."""

    type = SealedPersonalData  # type: ignore[assignment]
    name = "personal_data"

    def encode(self, obj: SealedPersonalData) -> dict[str, str]:  # type: ignore[override]
        return obj.sealed


class ErasedPersonalDataAsId(Transcoding):
    """What remains of an erased person (in snapshots taken after erasure): the id."""

    type = ErasedPersonalData
    name = "personal_data_erased"

    def encode(self, obj: ErasedPersonalData) -> str:
        return obj.person_id.hex

    def decode(self, data: str) -> ErasedPersonalData:
        return ErasedPersonalData(UUID(data))


def register_domain_transcodings(
    transcoder: JSONTranscoder, vault: PersonalDataVault, value_types: tuple[type, ...]
) -> None:
    """Register everything the case events and snapshots contain."""
    transcoder.register(DateAsISO())
    transcoder.register(PersonalDataSealed(vault))
    transcoder.register(SealedPersonalDataAsStored(vault))
    transcoder.register(ErasedPersonalDataAsId())
    for cls in value_types:
        transcoder.register(DataclassAsDict(cls))
