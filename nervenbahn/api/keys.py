"""The API-key registry: one JSON file naming each consumer, its scope and its key's hash.

A key is 32 random bytes (URL-safe base64), shown once when it is created; the file holds
only its SHA-256. A fast hash is enough for a key of that entropy (unlike a password, it
cannot be guessed from a list), and comparing hashes with `hmac.compare_digest` keeps the
comparison's time independent of where a guess differs. The file is re-read when it
changes on disk, so a revocation takes effect on a running server at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nervenbahn.api.errors import (
    ApiKeyFileError,
    ConsumerExistsError,
    InvalidConsumerNameError,
    InvalidScopeError,
    UnknownConsumerError,
)
from nervenbahn.api.scopes import Scope
from nervenbahn.private import write_private

__all__ = ["KEY_PREFIX", "ApiKeyRegistry", "Consumer", "hash_key"]

KEY_PREFIX = "nb_"
"""Every new key starts with it: recognisable in a leaked file (secret scanners), and never with
`-`, which a command line would take for an option (`--key -abc…`: 1 in 64 plain keys did)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Consumer:
    """A consumer of the API: who it is, what its key may read, and its key's hash."""

    name: str
    key_sha256: str
    scope: Scope
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The consumer as stored in the key file."""
        return {
            "name": self.name,
            "key_sha256": self.key_sha256,
            "scope": self.scope.to_json(),
            "created_at": self.created_at.isoformat(),
        }


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
        with self._lock:
            seen = _signature(self.path)
            if seen != self._seen:
                self._consumers = _read(self.path) if seen is not None else ()
                self._seen = seen
            return self._consumers

    def add(self, name: str, scope: Scope, *, now: datetime) -> str:
        """Give a new consumer a random key; return the key (it is not stored, only its hash)."""
        if not _NAME.fullmatch(name):
            raise InvalidConsumerNameError(
                f"consumer name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        consumers = self.consumers()
        if any(consumer.name == name for consumer in consumers):
            raise ConsumerExistsError(f"consumer {name!r} already has a key; revoke it first")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._write((*consumers, Consumer(name, hash_key(key), scope, now)))
        return key

    def revoke(self, name: str) -> Consumer:
        """Remove a consumer's key; its next request is refused. Returns what was removed."""
        consumers = self.consumers()
        gone = [consumer for consumer in consumers if consumer.name == name]
        if not gone:
            raise UnknownConsumerError(f"no consumer {name!r} has a key")
        self._write(tuple(consumer for consumer in consumers if consumer.name != name))
        return gone[0]

    def _write(self, consumers: tuple[Consumer, ...]) -> None:
        text = json.dumps({"consumers": [c.to_json() for c in consumers]}, indent=2) + "\n"
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


def _read(path: Path) -> tuple[Consumer, ...]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return tuple(_consumer(entry) for entry in raw["consumers"])
    except OSError as exc:
        raise ApiKeyFileError(f"cannot read the API-key file {path}: {exc}") from exc
    except (ValueError, KeyError, TypeError, InvalidScopeError) as exc:
        raise ApiKeyFileError(
            f"the API-key file {path} is malformed ({type(exc).__name__}: {exc}); "
            'expected {"consumers": [{"name", "key_sha256", "scope", "created_at"}, …]}'
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
    )
