"""The root of the connectors' errors (the connector host's and the connectors' own)."""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = ["ConnectorConfigError", "ConnectorError"]


class ConnectorError(NervenbahnError):
    """A connector could not run, or refused what it was given."""


class ConnectorConfigError(ConnectorError):
    """The connectors' configuration file is missing, malformed or names what does not exist.

    (Not a subclass of `nervenbahn.config.ConfigError`: connectors do not import the composition
    root; the CLI maps both to the same exit code.) Defined here rather than beside the file's
    reader (`connectors._config`) so that the SDK's option checks (`connectors.options`) can
    raise it without importing the reader, which imports the SDK."""
