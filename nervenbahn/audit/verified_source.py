"""A notification log whose money-relevant events are checked against their hash-chain link
before a relay publishes them ("every payment must rest on verified events").

The claims relay publishes each recorded reimbursement claim to the fund, which pays it; the
payments relay each payment order to the payments sink, which writes the transfer. An event
whose stored bytes were altered in the database (a total raised, say) would be decoded and
sent as it is: `nervenbahn audit verify` finds the alteration, but only when an
auditor runs it. So before the relay hands such an event on, `VerifiedNotifications` recomputes
that one event's link — SHA-256 of the link before it and the event's record, exactly as the
recorder wrote it (`nervenbahn.audit.chain`) — and compares it with the link stored beside it.
A mismatch, or no link at all, is `UnverifiedEventError`, a permanent error of the relay: it
publishes what came before, stops there and names the position; `serve`'s supervisor restarts
it and, as it keeps failing, stops `serve` (exit 3) so that someone runs `audit verify`.

What one link proves, and what it does not: an event changed after it was recorded, without
its chain being recomputed, fails here at once. An attacker who also recomputes every link
from there on passes this check; `audit verify` still finds that against the signed
checkpoints (docs/audit.md), which is why the checkpointer signs them every few minutes. The
check costs two indexed reads and one hash per published claim or order; other events pass
unchecked.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from bus.errors import EncodeError
from domain.application.ports import NotificationLog
from nervenbahn.audit.chain import chain_hash, event_record

__all__ = ["ChainLinks", "UnverifiedEventError", "VerifiedNotifications"]


class UnverifiedEventError(EncodeError):
    """A stored event does not match its hash-chain link: it is not published."""


class ChainLinks(Protocol):
    """What the hash-chained recorders offer (`nervenbahn.audit.recorders`)."""

    def link(self, position: int) -> tuple[bytes, bytes] | None:
        """(the link before, the link) at `position`, or None."""


class VerifiedNotifications(NotificationLog):
    """`log`, whose events of the `topics` given are decoded only once their stored bytes match
    their chain link in `links` (module docstring)."""

    def __init__(self, log: NotificationLog, links: ChainLinks, topics: Collection[str]) -> None:
        self._log = log
        self._links = links
        self._topics = frozenset(topics)

    def max_position(self) -> int:
        """The log's last position."""
        return self._log.max_position()

    def notifications(self, *, gt: int, limit: int) -> Sequence[Notification]:
        """The log's notifications, unchanged (each is checked when decoded)."""
        return self._log.notifications(gt=gt, limit=limit)

    def decode(self, notification: Notification) -> Any:
        """The notification's event, if it is not one to check or its link holds;
        UnverifiedEventError naming the position otherwise."""
        if notification.topic in self._topics:
            problem = self._problem(notification)
            if problem is not None:
                kind = notification.topic.rsplit(":", 1)[-1]
                raise UnverifiedEventError(
                    f"event at position {notification.id} ({kind} of "
                    f"{notification.originator_id} v{notification.originator_version}): "
                    f"{problem}; not published — run `nervenbahn audit verify`")
        return self._log.decode(notification)

    def _problem(self, n: Notification) -> str | None:
        link = self._links.link(n.id)
        if link is None:
            return "no hash-chain link is stored for it"
        before, stored = link
        record = event_record(n.id, n.originator_id, n.originator_version, n.topic,
                              bytes(n.state))
        if chain_hash(before, record) != stored:
            return "its stored bytes do not match its hash-chain link (altered after recording)"
        return None
