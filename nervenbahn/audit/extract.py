"""The auditor's population: every row of one kind, for sampling (`nervenbahn audit extract`).

An auditor samples from a complete list, never from what someone chose to show: each kind
below is computed from the stores' notification logs (every recorded event, in recording
order), so a row can be neither left out nor added by a read model. Each row points to its
event: the event id (`bus.envelope.event_id`, the id the bus and the audit tools use), the
hash chain it is part of (`events:<table>`, as `audit verify` names it) and its position
there; case rows also name the case and its version, for `audit state|budget|diff|case`.

- `retroactive`: every `BudgetChanged` whose effective date lies before the day it was
  recorded (Swiss time): how many days back, which lines it changed, and the monthly
  difference on its effective date (its budget in force then minus the one in force then as
  known just before it was recorded);
- `back-payments`, `claim-backs`: every `PaymentOrdered` of that kind, by size;
- `imported`, `live`: every case event by origin (an imported one with its import origin);
- `actions`: every recorded action with its declared actor and established identity: the case
  events, the payments store's runs, approvals and payout accounts, and the benefits store's
  applications (EL and premium reduction: receipt, completeness checks, documents, forwarding,
  the fund's decisions) and delegations. A benefit row names no case (an application is not
  one; `case_id` and `region` stay empty): its `event_id`, `chain` and `position` point to it.

Rows name cases, never persons: no name, AHVN13, address or account is read or written.
Figures of a case are still data about its household, so the caller logs who read which
case's figures (`Extract.households`: the person ids of every case named, as the access log
needs them).

Measured on the demo's store (4,000 households, ~29,000 case events, SQLite): see
docs/audit.md, "The auditor's population".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from bus.envelope import event_id
from domain.application.ports import NotificationLog
from domain.case import SWISS_TIME
from domain.commands import Actor
from domain.entitlement import budget_in_force
from domain.errors import InvalidCommandError
from domain.events import (
    BudgetChanged,
    BudgetVersion,
    CaseEvent,
    CaseHandedOver,
    CaseOpened,
    SupportGranted,
)
from domain.identity import EstablishedIdentity, ImportOrigin
from domain.money import ZERO
from domain.payments import PaymentOrdered, PaymentRunStarted

__all__ = [
    "COLUMNS",
    "KINDS",
    "Extract",
    "ExtractFilter",
    "ExtractKind",
    "RecordedLog",
    "check_filter",
    "extract",
]

ExtractKind = Literal["retroactive", "back-payments", "claim-backs", "imported", "live",
                      "actions"]
KINDS: tuple[str, ...] = get_args(ExtractKind)

_POINTER = ("event_id", "chain", "position")
_ACTOR = ("actor", "actor_role", "actor_organisation", "recorded_by")
COLUMNS: dict[str, tuple[str, ...]] = {
    "retroactive": (
        "case_id", "case_version", "region", "recorded_at", "effective_date", "days_back",
        "lines_changed", "monthly_before", "monthly_after", "monthly_difference", *_ACTOR,
        "source", *_POINTER,
    ),
    "back-payments": (
        "run_id", "run_month", "run_sequence", "prepared_by", "case_id", "region", "month",
        "amount", "entitlement", "previously_ordered", "held", "recorded_at", *_POINTER,
    ),
    "imported": (
        "case_id", "case_version", "region", "event", "recorded_at", "effective_date", *_ACTOR,
        "source", "imported_by", "imported_at", "import_file", "import_sha256",
        "import_forced_reason", *_POINTER,
    ),
    "actions": (
        "case_id", "case_version", "region", "event", "recorded_at", "effective_date", *_ACTOR,
        "source", *_POINTER,
    ),
}
"""The columns of each kind's rows, in order (CSV header and JSON keys alike)."""
COLUMNS["claim-backs"] = COLUMNS["back-payments"]
COLUMNS["live"] = COLUMNS["imported"]

_AMOUNT_KINDS = ("retroactive", "back-payments", "claim-backs")
_PAGE = 1000
_OPENED, _HANDED_OVER = get_topic(CaseOpened), get_topic(CaseHandedOver)
_BUDGET_TOPICS = frozenset({get_topic(SupportGranted), get_topic(BudgetChanged)})
_ORDER_TOPICS = frozenset({get_topic(PaymentRunStarted), get_topic(PaymentOrdered)})


@dataclass(frozen=True)
class RecordedLog:
    """A store's notification log and the name of the hash chain over it (`events:<table>`)."""

    log: NotificationLog
    chain: str


@dataclass(frozen=True)
class ExtractFilter:
    """Which rows to keep: all given conditions hold (None: no condition)."""

    region: str | None = None
    """The social region responsible at the time (an order: the paying region)."""
    recorded_gte: date | None = None
    """Recorded on or after this day (Swiss time)."""
    recorded_lte: date | None = None
    """Recorded on or before this day (Swiss time)."""
    user: str | None = None
    """The declared actor's user id or the established identity's user name."""
    role: str | None = None
    """The declared actor's role."""
    min_days: int | None = None
    """retroactive: at least this many days back."""
    min_amount: Decimal | None = None
    """retroactive: a monthly difference at least this large either way; orders: amount."""


@dataclass
class Extract:
    """The rows of one kind, and the households of the cases they name (for the access log)."""

    kind: ExtractKind
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    households: dict[UUID, tuple[UUID, ...]] = field(default_factory=dict)
    """Every case named by a row: the person ids of its household."""


def extract(
    kind: ExtractKind, cases: RecordedLog, payments: RecordedLog | None,
    filters: ExtractFilter, benefits: RecordedLog | None = None,
) -> Extract:
    """Every row of `kind` that passes `filters`: retroactive changes by days back, orders by
    size, the others in recording order (`actions`: of `benefits` too, if given).
    InvalidCommandError naming the option if a filter does not apply to `kind`."""
    check_filter(kind, filters)
    scan = _CaseScan()
    rows: list[dict[str, Any]] = []
    for position, event in _decoded(cases, _wanted_case_topics(kind)):
        row = scan.row(kind, event, position, cases.chain)
        if row is not None and _kept(row, filters):
            rows.append(row)
    if payments is not None and kind in ("back-payments", "claim-backs", "actions"):
        rows.extend(row for row in _payment_rows(kind, payments) if _kept(row, filters))
    if benefits is not None and kind == "actions":
        rows.extend(row for row in _store_actions(benefits) if _kept(row, filters))
    rows.sort(key=_order(kind))
    named = {UUID(row["case_id"]) for row in rows if row.get("case_id")}
    result = Extract(kind, COLUMNS[kind], rows)
    result.households = {case: scan.members[case] for case in named if case in scan.members}
    return result


def check_filter(kind: str, filters: ExtractFilter) -> None:
    """Refuse a kind that does not exist and a filter that does not apply to the kind,
    naming the option (InvalidCommandError)."""
    problems: list[tuple[str, str]] = []
    if kind not in KINDS:
        problems.append(("KIND", f"{kind!r} is not one of {', '.join(KINDS)}"))
    if filters.min_days is not None and kind != "retroactive":
        problems.append(("--min-days", "applies to the kind retroactive only"))
    if filters.min_days is not None and filters.min_days < 0:
        problems.append(("--min-days", f"{filters.min_days} is negative"))
    if filters.min_amount is not None and kind not in _AMOUNT_KINDS:
        problems.append(("--min-amount", f"applies to {', '.join(_AMOUNT_KINDS)} only"))
    if filters.min_amount is not None and filters.min_amount < 0:
        problems.append(("--min-amount", f"{filters.min_amount} is negative"))
    if (filters.recorded_gte and filters.recorded_lte
            and filters.recorded_gte > filters.recorded_lte):
        problems.append(("--to", f"{filters.recorded_lte} lies before --from "
                                  f"{filters.recorded_gte}"))
    if problems:
        raise InvalidCommandError("audit extract", problems)


# --- the case store --------------------------------------------------------------------------


def _wanted_case_topics(kind: ExtractKind) -> frozenset[str] | None:
    """The topics to decode (None: every event); regions and households always."""
    if kind == "retroactive":
        return frozenset({_OPENED, _HANDED_OVER, *_BUDGET_TOPICS})
    if kind in ("back-payments", "claim-backs"):
        return frozenset({_OPENED})
    return None


class _CaseScan:
    """What the rows need from the events before them: each case's region, household and
    budget versions, as recorded so far."""

    def __init__(self) -> None:
        self.regions: dict[UUID, str] = {}
        self.members: dict[UUID, tuple[UUID, ...]] = {}
        self.budgets: dict[UUID, list[BudgetVersion]] = {}

    def row(self, kind: ExtractKind, event: Any, position: int, chain: str
            ) -> dict[str, Any] | None:
        """The event's row of `kind` (None if it has none), then the event noted."""
        case_id: UUID = event.originator_id
        if isinstance(event, CaseOpened):
            self.regions[case_id] = event.social_region
            self.members[case_id] = tuple(
                p.person_id for p in (event.applicant, *event.other_members))
        row: dict[str, Any] | None = None
        if kind == "retroactive":
            row = self._retroactive(event, position, chain)
        elif kind in ("imported", "live", "actions"):
            row = self._action(kind, event, position, chain)
        if isinstance(event, CaseHandedOver):
            self.regions[case_id] = event.to_region
        if isinstance(event, SupportGranted | BudgetChanged):
            self.budgets.setdefault(case_id, []).append(_version(event))
        return row

    def _retroactive(self, event: Any, position: int, chain: str) -> dict[str, Any] | None:
        if not isinstance(event, BudgetChanged):
            return None
        recorded_on = event.timestamp.astimezone(SWISS_TIME).date()
        if event.effective_date >= recorded_on:
            return None
        before = self.budgets.get(event.originator_id, [])
        known = budget_in_force(before, event.effective_date)
        after = budget_in_force([*before, _version(event)], event.effective_date)
        old = known.total if known is not None else ZERO
        new = after.total if after is not None else event.total
        return {
            **self._common(event, position, chain),
            "days_back": (recorded_on - event.effective_date).days,
            "lines_changed": "all" if event.changed is None else ";".join(event.changed),
            "monthly_before": str(old), "monthly_after": str(new),
            "monthly_difference": str(new - old),
        }

    def _action(self, kind: ExtractKind, event: Any, position: int, chain: str
                ) -> dict[str, Any] | None:
        if not isinstance(event, CaseEvent | CaseOpened):
            return None
        if kind != "actions" and (kind == "imported") != event.imported:
            return None
        row = {**self._common(event, position, chain), "event": type(event).__name__}
        if kind != "actions":
            row.update(_origin(event.import_origin))
        return row

    def _common(self, event: Any, position: int, chain: str) -> dict[str, Any]:
        case_id: UUID = event.originator_id
        return {
            "case_id": str(case_id), "case_version": event.originator_version,
            "region": self.regions.get(case_id, ""),
            "recorded_at": event.timestamp.isoformat(),
            "effective_date": event.effective_date.isoformat(),
            **_actor(event.actor, event.recorded_by),
            "source": "imported" if event.imported else "live",
            **_pointer(case_id, event.originator_version, chain, position),
        }


def _version(event: SupportGranted | BudgetChanged) -> BudgetVersion:
    """The budget version an event adds (as `Case.budgets` holds it)."""
    changed = event.changed if isinstance(event, BudgetChanged) else None
    reason = event.reason if isinstance(event, BudgetChanged) else "initial_decision"
    return BudgetVersion(event.effective_date, list(event.lines), event.total, reason,
                         event.timestamp, None if changed is None else list(changed))


def _origin(origin: ImportOrigin | None) -> dict[str, Any]:
    if origin is None:
        return {"imported_by": "", "imported_at": "", "import_file": "", "import_sha256": "",
                "import_forced_reason": ""}
    who = origin.importer
    return {
        "imported_by": f"{who.user_id}:{who.role}:{who.organisation}",
        "imported_at": origin.imported_at.isoformat(), "import_file": origin.file_name,
        "import_sha256": origin.file_sha256, "import_forced_reason": origin.forced_reason or "",
    }


# --- the payments store ----------------------------------------------------------------------


def _payment_rows(kind: ExtractKind, payments: RecordedLog) -> Iterator[dict[str, Any]]:
    """Orders of the kind (`back-payments`, `claim-backs`) or the actions of the payments
    store (runs prepared and approved, payout accounts recorded)."""
    if kind == "actions":
        yield from _store_actions(payments)
        return
    wanted = "back_payment" if kind == "back-payments" else "claim_back"
    runs: dict[UUID, PaymentRunStarted] = {}
    for position, event in _decoded(payments, _ORDER_TOPICS):
        if isinstance(event, PaymentRunStarted):
            runs[event.originator_id] = event
        elif isinstance(event, PaymentOrdered) and event.kind == wanted:
            yield _order_row(event, runs[event.originator_id], position, payments.chain)


def _order_row(order: PaymentOrdered, run: PaymentRunStarted, position: int, chain: str
               ) -> dict[str, Any]:
    return {
        "run_id": str(order.originator_id), "run_month": f"{run.month:%Y-%m}",
        "run_sequence": run.sequence, "prepared_by": run.actor.user_id,
        "case_id": str(order.case_id), "region": order.social_region,
        "month": f"{order.for_month:%Y-%m}", "amount": str(order.amount),
        "entitlement": str(order.entitlement),
        "previously_ordered": str(order.previously_ordered), "held": order.held,
        "recorded_at": order.timestamp.isoformat(),
        **_pointer(order.originator_id, order.originator_version, chain, position),
        # for the filters only (not columns): who prepared the run
        "_actor": run.actor,
    }


def _store_actions(store: RecordedLog) -> Iterator[dict[str, Any]]:
    """Every event with a declared actor in the payments or the benefits store, with the
    identity its edge established (None for an event type that keeps none: blank)."""
    for position, event in _decoded(store, None):
        actor = getattr(event, "actor", None)
        if not isinstance(actor, Actor):
            continue
        case_id = getattr(event, "case_id", None)
        yield {
            "case_id": str(case_id) if case_id else "", "case_version": "", "region": "",
            "event": type(event).__name__, "recorded_at": event.timestamp.isoformat(),
            "effective_date": "", **_actor(actor, getattr(event, "recorded_by", None)),
            "source": "live",
            **_pointer(event.originator_id, event.originator_version, store.chain, position),
        }


# --- shared ----------------------------------------------------------------------------------


def _decoded(store: RecordedLog, topics: frozenset[str] | None) -> Iterator[tuple[int, Any]]:
    """(position, event) of every recorded event of `topics` (None: all), in order; the
    others are not decoded."""
    last, end = 0, store.log.max_position()
    while last < end:
        page: list[Notification] = list(store.log.notifications(gt=last, limit=_PAGE))
        if not page:
            return
        for notification in page:
            if topics is None or notification.topic in topics:
                yield notification.id, store.log.decode(notification)
        last = page[-1].id


def _actor(actor: Actor, recorded_by: EstablishedIdentity | None) -> dict[str, Any]:
    return {"actor": actor.user_id, "actor_role": actor.role,
            "actor_organisation": actor.organisation,
            "recorded_by": "" if recorded_by is None else str(recorded_by),
            "_identity": recorded_by}


def _pointer(originator: UUID, version: int, chain: str, position: int) -> dict[str, Any]:
    return {"event_id": str(event_id(originator, version)), "chain": chain,
            "position": position}


def _kept(row: dict[str, Any], f: ExtractFilter) -> bool:
    """Whether `row` passes every condition of `f` (private `_` keys help, then go)."""
    actor: Actor | None = row.pop("_actor", None)
    identity: EstablishedIdentity | None = row.pop("_identity", None)
    if f.region is not None and row["region"] != f.region:
        return False
    day = datetime.fromisoformat(row["recorded_at"]).astimezone(SWISS_TIME).date()
    if (f.recorded_gte and day < f.recorded_gte) or (f.recorded_lte and day > f.recorded_lte):
        return False
    user, role = (actor.user_id, actor.role) if actor else (row["actor"], row["actor_role"])
    if f.user is not None and f.user not in (user, identity.user if identity else None):
        return False
    if f.role is not None and role != f.role:
        return False
    if f.min_days is not None and row["days_back"] < f.min_days:
        return False
    if f.min_amount is None:
        return True
    size = row["monthly_difference"] if "monthly_difference" in row else row["amount"]
    return abs(Decimal(size)) >= f.min_amount


def _order(kind: ExtractKind) -> Any:
    """How rows are ordered: retroactive by days back, orders by size (largest first),
    the others by position."""
    if kind == "retroactive":
        return lambda row: (-row["days_back"], row["position"])
    if kind in ("back-payments", "claim-backs"):
        return lambda row: (-Decimal(row["amount"]), row["position"])
    return lambda row: (row["chain"], row["position"])
