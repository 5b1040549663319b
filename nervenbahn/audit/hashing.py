"""One hash chain format for everything auditors verify: stored events and the access log.

Each link is SHA-256 over the previous link's hash and an unambiguous encoding of the record
(every field length-prefixed), so that changing, removing, inserting or reordering a record
changes every later hash. The genesis hash is fixed and names the chain's purpose, so a link
of one chain cannot be passed off as a link of another.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "HASH_SIZE",
    "MAX_BREAKS",
    "ChainBreak",
    "ChainHead",
    "ChainVerification",
    "InvalidText",
    "SignedAnchor",
    "encode_fields",
    "genesis",
    "link",
    "stored_type",
    "text_or_invalid",
    "wrong_type",
    "wrong_types",
]

HASH_SIZE = 32
MAX_BREAKS = 1000
"""Breaks listed per chain at most (a rewritten chain can break at every position)."""


@dataclass(frozen=True)
class InvalidText:
    """A TEXT value that is not valid UTF-8, as read by verification (the raw bytes): in SQLite
    any column can hold any bytes, and a value that cannot be decoded must be reported, not
    crash the reader."""

    data: bytes


def text_or_invalid(data: bytes) -> str | InvalidText:
    """A TEXT value read from SQLite (a `text_factory`): the text, or `InvalidText` if it is
    not UTF-8."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return InvalidText(data)


def stored_type(value: object) -> str:
    """The SQL storage class of a value as read from the database, for messages."""
    if value is None:
        return "NULL"
    if isinstance(value, InvalidText):
        return "TEXT that is not valid UTF-8"
    if isinstance(value, bool | int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, str):
        return "TEXT"
    if isinstance(value, bytes | bytearray | memoryview):
        return "BLOB"
    return type(value).__name__


def wrong_type(column: str, value: object, expected: str) -> str:
    """`column is <type>, expected <expected>` (the value itself is never shown: it may be
    personal data)."""
    return f"{column} is {stored_type(value)}, expected {expected}"


def wrong_types(columns: Sequence[tuple[str, type, str]], row: Sequence[object]) -> list[str]:
    """`wrong_type` for each value of `row` that is not of its column's Python type
    (`columns`: name, Python type, SQL type, in the row's order)."""
    return [wrong_type(name, value, expected)
            for (name, kind, expected), value in zip(columns, row, strict=True)
            if not isinstance(value, kind)]


def genesis(chain: str) -> bytes:
    """The hash that precedes a chain's first record (`chain`: e.g. "events", "access-log")."""
    return hashlib.sha256(f"nervenbahn hash chain v1: {chain}".encode()).digest()


def encode_fields(fields: Iterable[bytes | str | int]) -> bytes:
    """Length-prefixed concatenation: ints as 8-byte big-endian, text as UTF-8."""
    parts: list[bytes] = []
    for value in fields:
        if isinstance(value, int):
            data = struct.pack(">q", value)
        elif isinstance(value, str):
            data = value.encode()
        else:
            data = bytes(value)
        parts.append(struct.pack(">I", len(data)))
        parts.append(data)
    return b"".join(parts)


def link(previous: bytes, record: bytes) -> bytes:
    """The hash of a record chained to its predecessor's hash."""
    return hashlib.sha256(previous + record).digest()


@dataclass(frozen=True)
class ChainHead:
    """The last link of a chain: its position (0 for an empty chain) and hash."""

    position: int
    hash: bytes

    def to_json(self) -> dict[str, object]:
        """As JSON (hash in hex)."""
        return {"position": self.position, "hash": self.hash.hex()}


@dataclass(frozen=True)
class SignedAnchor:
    """A retention anchor as signed checkpoints name it: which purge (`seq`, the anchor's
    number in the log), up to which position and with which hash the purged part of the chain
    ended, when it was purged and when its last entry was recorded (ISO 8601, UTC), and how
    many entries it removed. A purge is vouched for only by a checkpoint naming its anchor."""

    seq: int
    position: int
    hash: bytes
    purged_at: str
    last_at: str
    entries: int

    def to_json(self) -> dict[str, object]:
        """As JSON (hash in hex); also the form signed into checkpoints."""
        return {"seq": self.seq, "position": self.position, "hash": self.hash.hex(),
                "purged_at": self.purged_at, "last_at": self.last_at, "entries": self.entries}


@dataclass(frozen=True)
class ChainBreak:
    """Where a chain stops matching what it should be, and why."""

    position: int
    reason: str

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"position": self.position, "reason": self.reason}


@dataclass(frozen=True)
class ChainVerification:
    """The result of recomputing one chain (and comparing it with signed checkpoints).

    `first_break` is None when everything matched; `breaks` lists every break found (the walk
    goes on after one, from the stored link); `checkpoint` is the latest signed checkpoint the
    chain was found to agree with (None when there was none to compare with); `log_id` is the
    identity of the log verified (access logs).
    """

    chain: str
    records: int
    head: ChainHead
    first_break: ChainBreak | None
    checkpoints_checked: int = 0
    checkpoint: dict[str, object] | None = None
    breaks: tuple[ChainBreak, ...] = ()
    log_id: str | None = None

    @property
    def ok(self) -> bool:
        """True if nothing was found altered."""
        return self.first_break is None

    @property
    def all_breaks(self) -> tuple[ChainBreak, ...]:
        """Every break found, in the order found (the first is `first_break`)."""
        if self.breaks:
            return self.breaks
        return (self.first_break,) if self.first_break else ()

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {
            "chain": self.chain,
            "ok": self.ok,
            "records": self.records,
            "head": self.head.to_json(),
            "first_break": self.first_break.to_json() if self.first_break else None,
            "breaks": [b.to_json() for b in self.all_breaks],
            "log_id": self.log_id,
            "checkpoints_checked": self.checkpoints_checked,
            "checkpoint": self.checkpoint,
        }
