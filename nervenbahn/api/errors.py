"""What can go wrong in the HTTP API, in the consumer's and the operator's terms.

One root, `ApiError`; third-party errors (sqlite3, json, OS) are translated into these at the
boundary where they happen. How each one answers over HTTP is decided in `problems.py`.
"""

from __future__ import annotations

from domain.errors import NervenbahnError

__all__ = [
    "ApiError",
    "ApiKeyFileError",
    "ConsumerExistsError",
    "InvalidConsumerNameError",
    "InvalidScopeError",
    "ReadModelUnavailableError",
    "UnknownConsumerError",
]


class ApiError(NervenbahnError):
    """Something the HTTP API or its key registry could not do."""


# --- API keys ------------------------------------------------------------------------------


class ApiKeyFileError(ApiError):
    """The API-key file cannot be read or written, or is not in the expected format."""


class InvalidScopeError(ApiError):
    """A scope is malformed or names a branch office or social region that does not exist."""


class InvalidConsumerNameError(ApiError):
    """A consumer name is empty or uses characters other than letters, digits, '.', '_', '-'."""


class ConsumerExistsError(ApiError):
    """A consumer with this name already has a key; revoke it first."""


class UnknownConsumerError(ApiError):
    """No consumer with this name has a key."""


# --- what a request needs ------------------------------------------------------------------


class ReadModelUnavailableError(ApiError):
    """A read model has not been built yet (or cannot be opened): the answer cannot be given."""

    def __init__(self, name: str, reason: str = "is not built yet") -> None:
        self.name = name
        super().__init__(
            f"the {name} read model {reason}; run `nervenbahn projections rebuild {name}`"
        )

