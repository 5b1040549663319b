"""A case's recorded events as `case history` shows them: what happened, when, by whom,
without personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.commands import Actor
from domain.events import CaseOpened
from domain.identity import EstablishedIdentity, ImportOrigin

__all__ = ["HistoryEntry", "history_entry"]

_COMMON_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "correlation_id",
        "effective_date",
        "imported",
        "recorded_by",
        "import_origin",
    }
)
_PERSONAL_FIELDS = frozenset({"applicant", "other_members"})


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded event of a case, for `case history` (no personal data)."""

    version: int
    event: str
    recorded_at: datetime
    effective_date: Any
    imported: bool
    actor: Actor
    correlation_id: UUID
    details: dict[str, Any]
    recorded_by: EstablishedIdentity
    """Who the recording edge established the issuer to be (unknown for older events)."""
    import_origin: ImportOrigin | None
    """For an imported event: who imported it when, from which file (None if live, or if
    imported before origins were recorded)."""

    @property
    def source(self) -> str:
        """live, or imported with its origin where recorded."""
        if not self.imported:
            return "live"
        if self.import_origin is None:
            return "imported (origin not recorded)"
        return self.import_origin.describe()


def history_entry(event: Any) -> HistoryEntry:
    """The entry of one recorded case event: its own fields as details, the persons of an
    opening only counted."""
    state = vars(event)
    details = {
        key: value
        for key, value in state.items()
        if key not in _COMMON_FIELDS and key not in _PERSONAL_FIELDS
    }
    if isinstance(event, CaseOpened):
        details["persons"] = 1 + len(event.other_members)
    return HistoryEntry(
        version=event.originator_version,
        event=type(event).__name__,
        recorded_at=event.timestamp,
        effective_date=state["effective_date"],
        imported=state["imported"],
        actor=state["actor"],
        correlation_id=state["correlation_id"],
        details=details,
        recorded_by=state["recorded_by"],
        import_origin=state["import_origin"],
    )
