"""The read models' errors: one root, `ProjectionError`, under the project's root."""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = ["ProjectionError", "ReadModelUnreadableError"]


class ProjectionError(NervenbahnError):
    """A read model cannot be built or kept up to date as configured."""


class ReadModelUnreadableError(ProjectionError):
    """A read model cannot be opened or read: not built yet, half built, locked, or its
    database server gone. The reason says which; the reader answers that it is unavailable."""

    def __init__(self, reason: str = "is not built yet") -> None:
        self.reason = reason
        super().__init__(f"the read model {reason}")
