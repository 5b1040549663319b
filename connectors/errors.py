"""The root of the connectors' errors (the connector host's and the connectors' own)."""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = ["ConnectorError"]


class ConnectorError(NervenbahnError):
    """A connector could not run, or refused what it was given."""
