"""The claims process as a worker of `serve` (`advance-claims`): a fund's decision becomes a
recorded claim, and so a message on the claims topic, without anyone running
`nervenbahn advances claim`.

Every NERVENBAHN_ADVANCE_CLAIMS_SECONDS it looks whether anything a claim depends on moved
since its last complete run, and only then runs `AdvanceClaims.run`, which records what the
facts as known now call for and nothing where they did not change (so running it again is
always safe). What a claim depends on, and how the worker sees it move:

- the fund's decisions (granted, amended, ended, refused): the benefits store's last
  notification id;
- what the case was paid (a payment run, a claim-back, a back-payment): the payments store's
  last notification id;
- which cases advance: the position of the last `AdvanceStarted` in the case store.

Reading two maximum ids and the new `AdvanceStarted` notifications is the whole cost of a tick
in which nothing moved. The first tick after a start always runs (a `serve` stopped between a
decision and its claim finishes the work then).

**Which cases it loads.** `AdvanceClaims.run()` without case ids would load every case of the
store on every run; only about one case in ten advances. The worker therefore keeps the ids of
the cases that ever started an advance (an ended advance may still get a correction), read from
the case store's notification log by event type (`CaseService.advances_started`: a query on
the notifications' topic column, never a case loaded), from the position it read last, so that
after the first tick it reads only the advances started since. Why not the region read model's
`region_advances` table: it is filled by a consumer of the case-events topic, so it lags the
store by the relay and the consumer (an advance started just before its decision could be
missed until the next move), it is absent when `serve` runs without the region projection, and
a read model must not decide what the core records. The store itself is the source of truth
and the notification log is already ordered and indexed by position.

**Failures.** A case another writer moved meanwhile comes back `concurrent`: the tick is not
counted as complete, so the next tick runs again whether or not anything moved. A case the
domain refuses (a `DomainError`: a rule, an application not found) is logged with its case id
and left, the other cases go on, as a failing event handler is; it is looked at again when
something next moves — the benefits or payments store, a new advance, or the case store
itself (any case: a correction of the refused case's own history may be what it waited for;
only the refused cases are run then). Anything else (the store or its connection gone) ends
the worker with the error, and the supervisor (`nervenbahn.supervision`) restarts it with
back-off; the restarted worker starts with an empty list and a first run, which records
nothing twice.
"""

from __future__ import annotations

import threading
from uuid import UUID

import structlog

from domain.application.cases import CaseService
from domain.application.claims import AdvanceClaims, ClaimOutcome
from domain.application.ports import NotificationLog
from domain.errors import DomainError

__all__ = ["ADVANCE_CLAIMS", "ClaimsWorker"]

log = structlog.get_logger("nervenbahn.claims")

ADVANCE_CLAIMS = "advance-claims"
"""The worker's name in `serve` (health, metrics, logs)."""

_Facts = tuple[int, int, int]
"""Benefits store, payments store, last `AdvanceStarted`: positions a claim depends on."""


class ClaimsWorker:
    """Runs the claims process over the advancing cases whenever what it depends on moved
    (module docstring)."""

    def __init__(self, claims: AdvanceClaims, cases: CaseService, benefits: NotificationLog,
                 payments: NotificationLog) -> None:
        self._claims = claims
        self._cases = cases
        self._benefits = benefits
        self._payments = payments
        self._advancing: dict[UUID, None] = {}  # ordered: cases in the order they advanced
        self._read_to = 0
        self._done: _Facts | None = None
        self._refused: dict[UUID, int] = {}
        """Cases the domain refused at the last look, with the case store's position then:
        looked at again once the case store moved (a correction on the case itself may be
        what the claim waited for), even if nothing else did."""

    @property
    def advancing(self) -> list[UUID]:
        """The cases that started an advance, as far as the worker has read the store."""
        return list(self._advancing)

    def tick(self) -> list[ClaimOutcome] | None:
        """One look: run the claims process if something moved since the last complete run;
        its outcomes, or None when nothing moved."""
        for position, case_id in self._cases.advances_started(gt=self._read_to):
            self._advancing.setdefault(case_id)
            self._read_to = position
        facts = (self._benefits.max_position(), self._payments.max_position(), self._read_to)
        if facts == self._done:
            return self._retry_refused()
        outcomes = [o for case_id in self.advancing for o in self._run(case_id)]
        postponed = sum(o.concurrent for o in outcomes)
        self._done = None if postponed else facts
        recorded = [o for o in outcomes if o.events]
        if recorded or postponed:
            log.info("claims recorded", cases=len(self._advancing), recorded=len(recorded),
                     postponed=postponed,
                     applications=[str(o.application_id) for o in recorded])
        return outcomes

    def run(self, stop: threading.Event, interval_seconds: float) -> None:
        """Tick every `interval_seconds` until `stop` is set (the first tick at once)."""
        log.info("claims worker started", interval_s=interval_seconds)
        while True:
            self.tick()
            if stop.wait(interval_seconds):
                return

    def _retry_refused(self) -> list[ClaimOutcome] | None:
        """The refused cases again, if the case store moved since they were refused; None if
        there is nothing to look at."""
        if not self._refused:
            return None
        now = self._cases.max_position()
        again = [case_id for case_id, at in self._refused.items() if now > at]
        if not again:
            return None
        return [o for case_id in again for o in self._run(case_id)]

    def _run(self, case_id: UUID) -> list[ClaimOutcome]:
        try:
            outcomes = self._claims.run([case_id])
        except DomainError as exc:  # this case alone; looked at again when something moves
            self._refused[case_id] = self._cases.max_position()
            log.error("claims of a case refused; the others go on", case_id=str(case_id),
                      error=f"{type(exc).__name__}: {exc}")
            return []
        self._refused.pop(case_id, None)
        return outcomes
