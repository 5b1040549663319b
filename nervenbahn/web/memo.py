"""Figures the web app derives from a whole read model or store, kept while their source has
not moved: the canton's quarterly and backlog figures (recomputed over every fact otherwise,
~0.5 s each on the demo's data) and the auditor's last verification of the hash chains.

Only figures without personal data are kept, in the process's memory, for at most
`MAX_ENTRIES` keys (least recently used first out). A key's value is kept with the stamp of
its source (a read model's progress, a store's last notification id); a request with another
stamp computes anew. A verification is kept for a time instead (`recent`): the page says when
it ran, and offers to run it now.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any, TypeVar

__all__ = ["MAX_ENTRIES", "Memo"]

T = TypeVar("T")
MAX_ENTRIES = 128


class Memo:
    """Values by key, each with the stamp (or time) it was computed for; thread-safe, one
    computation per key at a time."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._values: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self._max = max_entries

    def get(self, key: Hashable, stamp: Hashable | None, compute: Callable[[], T]) -> T:
        """The value of `key` computed for `stamp`, computed now if there is none (a None
        stamp: the source cannot say whether it moved, so always computed)."""
        if stamp is None:
            return compute()
        with self._key_lock(key):
            found = self._peek(key)
            if found is not None and found[0] == stamp:
                return found[1]
            value = compute()
            self._keep(key, stamp, value)
            return value

    def recent(self, key: Hashable, now: datetime, max_age: timedelta,
               compute: Callable[[], T], *, fresh: bool = False) -> tuple[T, datetime]:
        """The value of `key` and when it was computed, if no older than `max_age` (and not
        `fresh` asked for); else computed now."""
        with self._key_lock(key):
            found = self._peek(key)
            if not fresh and found is not None and now - found[0] <= max_age:
                return found[1], found[0]
            value = compute()
            self._keep(key, now, value)
            return value, now

    def _key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._computing.setdefault(key, threading.Lock())

    def _peek(self, key: Hashable) -> tuple[Any, Any] | None:
        with self._lock:
            found = self._values.get(key)
            if found is not None:
                self._values.move_to_end(key)
            return found

    def _keep(self, key: Hashable, stamp: Any, value: Any) -> None:
        with self._lock:
            self._values[key] = (stamp, value)
            self._values.move_to_end(key)
            while len(self._values) > self._max:
                old, _ = self._values.popitem(last=False)
                self._computing.pop(old, None)
