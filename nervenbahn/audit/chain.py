"""The hash chain over stored events: what a link covers, how it is computed, the names of
chains and chain tables, and the rows the auditor tools read back.

Each events table gets a chain table beside it, `<events table>_chain (position, hash)`, where
`position` is the event's notification id and

    hash = link(previous hash, encode_fields(position, originator id, version, topic, state))

over the *stored* bytes (personal data sealed), so that crypto-shredding a person never breaks
the chain. The recorders that write the links are in `nervenbahn.audit.recorders`; opening a
store with events the chain does not cover, and chaining them deliberately, in
`nervenbahn.audit.chain_existing`; reading a store's chains back, in `nervenbahn.audit.database`.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import ProgrammingError

from nervenbahn.audit.hashing import wrong_type

__all__ = [
    "CHAINS_TABLE",
    "IDENTIFIER",
    "REWRITES_TABLE",
    "ChainRegistrations",
    "ChainedTable",
    "EventRow",
    "UnreadableRow",
    "as_bytes",
    "chain_hash",
    "chain_name",
    "chain_table_name",
    "check_identifier",
    "event_problem",
    "event_record",
    "link_problem",
    "link_rows",
    "originator_text",
]

CHAINS_TABLE = "audit_chains"
"""Lists every chained events table of the database, and its chain table."""
REWRITES_TABLE = "audit_chain_rewrites"
"""One row per explicit `audit chain-existing` of an events table (when, how many events)."""


IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_BATCH = 2000
_INT = struct.Struct(">Iq")  # a length-prefixed 8-byte big-endian int
_LEN = struct.Struct(">I")


def chain_name(events_table: str) -> str:
    """The chain's name (and genesis purpose) of an events table: `events:<table>`."""
    return f"events:{events_table}"


def chain_table_name(events_table: str) -> str:
    """The chain table beside an events table."""
    return f"{events_table}_chain"


def originator_text(originator_id: UUID | str) -> str:
    """The originator id as it enters a record: a UUID as 32 hex digits, text as is."""
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


def event_record(
    position: int, originator_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    """The bytes a chain link covers: `hashing.encode_fields` of the stored event's fields.

    Written out (rather than calling `encode_fields`) because it runs for every event;
    `tests/audit/test_chain.py` checks both give the same bytes (verification packs it in
    one call: `verify_ranges`, checked against this by the tamper tests).
    """
    origin = originator_text(originator_id).encode()
    kind = topic.encode()
    return b"".join(
        (
            _INT.pack(8, position),
            _LEN.pack(len(origin)), origin,
            _INT.pack(8, version),
            _LEN.pack(len(kind)), kind,
            _LEN.pack(len(state)), state,
        )
    )


def chain_hash(previous: bytes, record: bytes) -> bytes:
    """`hashing.link` (SHA-256 of previous hash + record), without concatenating the bytes."""
    digest = hashlib.sha256(previous)
    digest.update(record)
    return digest.digest()


def link_rows(
    previous: bytes, rows: Iterable[tuple[int, UUID | str, int, str, bytes]]
) -> list[tuple[int, bytes]]:
    """Chain rows for stored events in position order, starting from `previous`."""
    links = []
    for position, originator_id, version, topic, state in rows:
        previous = chain_hash(previous, event_record(position, originator_id, version, topic,
                                                     bytes(state)))
        links.append((position, previous))
    return links



def check_identifier(name: str) -> None:
    """ProgrammingError unless `name` is a plain lower-case identifier (safe in SQL text)."""
    if not IDENTIFIER.fullmatch(name):
        raise ProgrammingError(f"events table {name!r}: not a plain lower-case identifier")



# --- reading a store's chains (for verification and checkpoints) ---------------------------


@dataclass(frozen=True)
class ChainedTable:
    """An events table, its chain table and the chain's name."""

    events_table: str
    chain_table: str
    chain: str


EventRow = tuple[int, str, int, str, bytes]
"""(position, originator id as text, version, topic, stored state)."""


class UnreadableRow(NamedTuple):
    """A stored row (event or chain link) whose values have the wrong type or cannot be
    decoded: it cannot be chained, and verification reports it as a break."""

    position: int
    problem: str


class ChainRegistrations(NamedTuple):
    """The chained tables `audit_chains` lists, and each of its rows that cannot be used
    (its row id, and why)."""

    tables: list[ChainedTable]
    unreadable: list[tuple[str, str]]


def event_problem(row: Sequence[Any]) -> str | None:
    """Why a stored event's values cannot be what the recorder wrote (position, originator
    id, version, topic, state), naming each column of the wrong type; None if they can."""
    _, origin, version, topic, state = row
    problems = []
    if not isinstance(origin, str | UUID):
        problems.append(wrong_type("originator_id", origin, "TEXT"))
    if type(version) is not int:
        problems.append(wrong_type("originator_version", version, "INTEGER"))
    if not isinstance(topic, str):
        problems.append(wrong_type("topic", topic, "TEXT"))
    if not isinstance(state, bytes | memoryview):
        problems.append(wrong_type("state", state, "BLOB"))
    return "; ".join(problems) or None


def link_problem(value: Any) -> str | None:
    """Why a chain row's hash cannot be read (not a BLOB); None if it can."""
    return None if isinstance(value, bytes | memoryview) else wrong_type("hash", value, "BLOB")



def as_bytes(value: Any) -> bytes:
    """Stored state as bytes (text put there by hand is taken as its UTF-8 bytes); TypeError
    for any other type (never `bytes(n)`, which would make n zero bytes)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(wrong_type("state", value, "BLOB"))


