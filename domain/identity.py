"""Who recorded a command, as established by the edge that took it, beside the actor the
command declares; and where imported history came from.

A command's `actor` is what its issuer claims (`NERVENBAHN_ACTOR`, `--actor`, the fields of an
import record). The *established* identity is what the edge knows without being told: the
operating-system user (and host) of the CLI process, the signed-in account of the web app, the
API key's consumer. Both are stored with every event; an event recorded before identities were
established reads as `unknown` (upcast on read, the stored bytes stay as they are).

Nothing beyond a user name (and a host name) is kept: no full name, address or e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from domain.commands import Actor

__all__ = [
    "IMPORTING_ROLE",
    "UNKNOWN_IDENTITY",
    "Channel",
    "EstablishedIdentity",
    "ImportOrigin",
    "RecordedBySinceVersion2",
]

Channel = Literal["os", "web", "api", "unknown"]
"""How an identity was established: the process's operating-system user (the CLI, connectors,
the server's own work), a web session, an API key; unknown for events recorded before."""

IMPORTING_ROLE = "administrator"
"""The role that may run `nervenbahn import`, a migration step (docs/import.md)."""


@dataclass(frozen=True)
class EstablishedIdentity:
    """The identity the recording edge established: its channel, the user name there, and
    for an operating-system user the host."""

    channel: Channel
    user: str
    host: str = ""

    def __str__(self) -> str:
        if self.channel == "unknown":
            return "unknown"
        where = f"@{self.host}" if self.host else ""
        return f"{self.channel}:{self.user}{where}"

    @property
    def is_known(self) -> bool:
        """Whether an edge established it (False for events recorded before)."""
        return self.channel != "unknown"


UNKNOWN_IDENTITY = EstablishedIdentity("unknown", "unknown")
"""The identity of an event recorded before identities were established, or by code that
runs the service without an edge (tests, library use)."""


class RecordedBySinceVersion2:
    """Mixin (first base) of an event type whose class version 2 added `recorded_by` (each
    declares the field itself): a version 1 event, stored before identities were
    established, is upcast on every read to `unknown`; the stored bytes stay as they are.
    The benefits store's events and the payout accounts' (the case events have their own,
    `domain.events.CaseEvent`, which adds `import_origin` too)."""

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version 1 event (before identities were established): unknown."""
        state["recorded_by"] = UNKNOWN_IDENTITY


@dataclass(frozen=True)
class ImportOrigin:
    """Where an imported event came from: the migration step that recorded it (its declared
    administrator, when, which file with which SHA-256) and, if the store already held live
    events, the reason the import was forced anyway."""

    importer: Actor
    imported_at: datetime
    file_name: str
    file_sha256: str
    forced_reason: str | None = None

    def describe(self) -> str:
        """One line for a timeline: who imported what when (no personal data)."""
        actor = self.importer
        forced = f", forced: {self.forced_reason}" if self.forced_reason else ""
        return (f"imported {self.imported_at.isoformat(timespec='seconds')} by "
                f"{actor.user_id}/{actor.role}/{actor.organisation} from {self.file_name} "
                f"(sha256 {self.file_sha256}{forced})")
