"""The API-key registry: one JSON file naming each consumer, its scope and its key's hash.

A key is 32 random bytes (URL-safe base64), shown once when it is created; the file holds
only its SHA-256. A fast hash is enough for a key of that entropy (unlike a password, it
cannot be guessed from a list), and comparing hashes with `hmac.compare_digest` keeps the
comparison's time independent of where a guess differs. The file is re-read when it
changes on disk, so a revocation takes effect on a running server at its next request.

Every creation and revocation is recorded in the file's `history` with who did it: the
identity the process established (its operating-system user, `nervenbahn.identity`) and the
actor it declared, if any. A file written before has no history and its consumers no
`created_by`; they read as unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from nervenbahn.api.errors import (
    ApiKeyFileError,
    ConsumerExistsError,
    InvalidConsumerNameError,
    InvalidScopeError,
    UnknownConsumerError,
)
from nervenbahn.api.scopes import Scope
from nervenbahn.private import write_private

__all__ = ["KEY_PREFIX", "UNKNOWN_CHANGER", "ApiKeyRegistry", "Consumer", "KeyChange",
           "KeyChanger", "hash_key"]

KEY_PREFIX = "nb_"
"""Every new key starts with it: recognisable in a leaked file (secret scanners), and never with
`-`, which a command line would take for an option (`--key -abc…`: 1 in 64 plain keys did)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class KeyChanger:
    """Who created or revoked a key: the identity the process established (`os:<user>@<host>`)
    and the actor it declared (USER:ROLE:ORGANISATION; None if it declared none)."""

    identity: str
    actor: str | None = None

    def __str__(self) -> str:
        return f"{self.identity} as {self.actor}" if self.actor else self.identity

    def to_json(self) -> dict[str, Any]:
        """As stored in the key file."""
        return {"identity": self.identity, "actor": self.actor}

    @classmethod
    def from_json(cls, data: Any) -> KeyChanger:
        """As stored in the key file (unknown where a file written before holds none)."""
        if data is None:
            return UNKNOWN_CHANGER
        actor = data.get("actor")
        return cls(str(data["identity"]), None if actor is None else str(actor))


UNKNOWN_CHANGER = KeyChanger("unknown")
"""Who changed a key recorded before changes were attributed (or by code that names no one)."""


@dataclass(frozen=True)
class Consumer:
    """A consumer of the API: who it is, what its key may read, its key's hash, and who
    created it."""

    name: str
    key_sha256: str
    scope: Scope
    created_at: datetime
    created_by: KeyChanger = UNKNOWN_CHANGER

    def to_json(self) -> dict[str, Any]:
        """The consumer as stored in the key file."""
        return {
            "name": self.name,
            "key_sha256": self.key_sha256,
            "scope": self.scope.to_json(),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by.to_json(),
        }


@dataclass(frozen=True)
class KeyChange:
    """One entry of the key file's history: a key added or revoked, when and by whom."""

    at: datetime
    action: Literal["added", "revoked"]
    consumer: str
    scope: Scope
    by: KeyChanger

    def to_json(self) -> dict[str, Any]:
        """As stored in the key file."""
        return {"at": self.at.isoformat(), "action": self.action, "consumer": self.consumer,
                "scope": self.scope.to_json(), "by": self.by.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyChange:
        """As stored in the key file."""
        action = data["action"]
        if action not in ("added", "revoked"):
            raise ValueError(f"history: unknown action {action!r}")
        return cls(datetime.fromisoformat(data["at"]), action, str(data["consumer"]),
                   Scope.from_json(data["scope"]), KeyChanger.from_json(data["by"]))


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as stored (hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyRegistry:
    """The consumers and their key hashes, in a JSON file (written atomically, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._consumers: tuple[Consumer, ...] = ()
        self._history: tuple[KeyChange, ...] = ()

    def authenticate(self, key: str) -> Consumer | None:
        """The consumer holding this key, or None; every hash is compared, in constant time."""
        presented = hash_key(key)
        found = None
        for consumer in self.consumers():
            if hmac.compare_digest(presented, consumer.key_sha256):
                found = consumer
        return found

    def consumers(self) -> tuple[Consumer, ...]:
        """Every consumer with a key (re-read if the file changed; none if there is no file)."""
        return self._current()[0]

    def history(self) -> tuple[KeyChange, ...]:
        """Every key added or revoked since the file kept a history, oldest first."""
        return self._current()[1]

    def _current(self) -> tuple[tuple[Consumer, ...], tuple[KeyChange, ...]]:
        with self._lock:
            seen = _signature(self.path)
            if seen != self._seen:
                self._consumers, self._history = (
                    _read(self.path) if seen is not None else ((), ()))
                self._seen = seen
            return self._consumers, self._history

    def add(
        self, name: str, scope: Scope, *, now: datetime, by: KeyChanger = UNKNOWN_CHANGER
    ) -> str:
        """Give a new consumer a random key; return the key (it is not stored, only its hash).
        `by`: who does it, recorded with the consumer and in the history."""
        if not _NAME.fullmatch(name):
            raise InvalidConsumerNameError(
                f"consumer name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        consumers, history = self._current()
        if any(consumer.name == name for consumer in consumers):
            raise ConsumerExistsError(f"consumer {name!r} already has a key; revoke it first")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._write((*consumers, Consumer(name, hash_key(key), scope, now, by)),
                    (*history, KeyChange(now, "added", name, scope, by)))
        return key

    def revoke(
        self, name: str, *, now: datetime | None = None, by: KeyChanger = UNKNOWN_CHANGER
    ) -> Consumer:
        """Remove a consumer's key; its next request is refused. Returns what was removed;
        the history keeps when (`now`, default: the clock's) and by whom."""
        consumers, history = self._current()
        gone = [consumer for consumer in consumers if consumer.name == name]
        if not gone:
            raise UnknownConsumerError(f"no consumer {name!r} has a key")
        change = KeyChange(now or datetime.now(UTC), "revoked", name, gone[0].scope, by)
        self._write(tuple(consumer for consumer in consumers if consumer.name != name),
                    (*history, change))
        return gone[0]

    def _write(self, consumers: tuple[Consumer, ...], history: tuple[KeyChange, ...]) -> None:
        text = json.dumps({"consumers": [c.to_json() for c in consumers],
                           "history": [h.to_json() for h in history]}, indent=2) + "\n"
        try:
            write_private(self.path, text)  # all or nothing: a full disk keeps the old file
        except OSError as exc:
            raise ApiKeyFileError(f"cannot write the API-key file {self.path}: {exc}") from exc


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file from the one read before (None if there is no file)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApiKeyFileError(f"cannot read the API-key file {path}: {exc}") from exc
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read(path: Path) -> tuple[tuple[Consumer, ...], tuple[KeyChange, ...]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return (tuple(_consumer(entry) for entry in raw["consumers"]),
                tuple(KeyChange.from_json(entry) for entry in raw.get("history", [])))
    except OSError as exc:
        raise ApiKeyFileError(f"cannot read the API-key file {path}: {exc}") from exc
    except (ValueError, KeyError, TypeError, InvalidScopeError) as exc:
        raise ApiKeyFileError(
            f"the API-key file {path} is malformed ({type(exc).__name__}: {exc}); "
            'expected {"consumers": [{"name", "key_sha256", "scope", "created_at", '
            '"created_by"}, …], "history": [{"at", "action", "consumer", "scope", "by"}, …]}'
        ) from exc


def _consumer(entry: dict[str, Any]) -> Consumer:
    digest = str(entry["key_sha256"])
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"consumer {entry['name']!r}: key_sha256 is not a SHA-256 in hex")
    return Consumer(
        name=str(entry["name"]),
        key_sha256=digest,
        scope=Scope.from_json(entry["scope"]),
        created_at=datetime.fromisoformat(entry["created_at"]),
        created_by=KeyChanger.from_json(entry.get("created_by")),
    )
