"""Errors of the integration bus, in the user's terms.

`BusError` is the root; third-party errors (fastavro, avro, sqlite3, psycopg, urllib) are
translated into one of these where they happen, with the original as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from domain.errors import NervenbahnError

if TYPE_CHECKING:
    from bus.compatibility import SchemaProblem

__all__ = [
    "BusError",
    "DecodeError",
    "EncodeError",
    "IncompatibleSchemaError",
    "LeaseLostError",
    "RegistryError",
    "RelayStoppedError",
    "SchemaError",
    "SchemaNotFoundError",
]


class BusError(NervenbahnError):
    """Something went wrong on the integration bus."""


class SchemaError(BusError):
    """A schema is malformed, or does not match the domain event it describes."""


class IncompatibleSchemaError(SchemaError):
    """A new schema version could not read data written with an earlier version; refused.

    `field` is the first offending field (a dotted path such as `lines[].amount`);
    `problems` lists every one found.
    """

    def __init__(
        self,
        subject: str,
        field: str,
        message: str,
        problems: Sequence[SchemaProblem] = (),
    ) -> None:
        self.subject = subject
        self.field = field
        self.problems = tuple(problems)
        super().__init__(f"{subject}: {field}: {message}")


class EncodeError(BusError):
    """A value cannot be written in its schema (a value does not fit, or data is unsealed)."""


class DecodeError(BusError):
    """A message is not a record this codec can read: bad framing, unknown schema id, another
    record, truncated or corrupt Avro, or a writer schema the current schema cannot read."""


class RegistryError(BusError):
    """The schema registry cannot be reached or answered with an error.

    `url` and `status` say where and how (status is None when there was no HTTP answer).
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class SchemaNotFoundError(RegistryError):
    """The registry holds no schema with the requested id."""


class RelayStoppedError(BusError):
    """A recorded event cannot be published, and trying again cannot change that (it does not
    fit its schema, or the schema itself is wrong): the relay stops at that event, naming it,
    instead of retrying for ever. Events before it are published; none after it."""

    def __init__(self, relay: str, position: int, reason: str) -> None:
        self.relay = relay
        self.position = position
        super().__init__(
            f"relay {relay} stopped at store position {position}: {reason}; nothing after it "
            "was published (fix the schema or the event's data, then run the relay again)"
        )


class LeaseLostError(BusError):
    """This relay no longer holds its lease (another instance took it over, or it ran out):
    its position was not moved, and it publishes nothing more until it holds the lease again."""

    def __init__(self, relay: str, holder: str, token: int) -> None:
        self.relay = relay
        self.holder = holder
        self.token = token
        super().__init__(
            f"relay {relay}: the lease of {holder} (fencing token {token}) is no longer held; "
            "the position was not saved (another instance is active, or the lease ran out)"
        )
