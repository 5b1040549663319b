"""The social region's read model: caseload by phase and the work lists of its caseworkers.

Work lists: initial assessments due (within `ASSESSMENT_WITHIN_DAYS` of intake or reopening),
periodic reviews due, goal due dates — each flagged overdue once its date has passed — and
open proposals from connected registers (handover or closure, e.g. from the population
register) and from benefit decisions (a budget change counting EL as income, or a closure
where EL covers the needs), which stay until a caseworker dismisses them or acts (hands the
case over, closes it, changes the budget), and the open advances in view of EL with their
age. A handover moves the case from one region's view to the other's.

It also keeps what the quarterly figures of advances need (`projections.advance_figures`):
where each advance ended, each claim or correction recorded (totals only, no months) and each
reimbursement the fund paid, with the region the case was in when it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

from domain.events import add_months
from projections.framework import CaseRowProjection, update_case_row
from projections.storage import SQLConnection, fetch_all
from schemas.sql import Component, Migration, placeholder

__all__ = [
    "ADVANCE_WAITING_DAYS",
    "ASSESSMENT_WITHIN_DAYS",
    "GOAL_HORIZON_DAYS",
    "PROPOSAL_WITHIN_DAYS",
    "REVIEW_HORIZON_DAYS",
    "RegionCase",
    "RegionProjection",
    "WorkItem",
    "WorkItemKind",
    "caseload",
    "region_cases",
    "work_list",
]

ASSESSMENT_WITHIN_DAYS = 30
"""The Erstabklärung is due this many days after intake (a working assumption of ours; the
harmonised Solothurn process sets the exact deadline — adjust here)."""
REVIEW_HORIZON_DAYS = 30
"""Reviews appear on the work list this many days before they are due."""
GOAL_HORIZON_DAYS = 14
"""Goal due dates appear on the work list this many days ahead."""
ADVANCE_WAITING_DAYS = 180
"""An advance is flagged overdue once it has waited this long for the EL decision (a working
assumption of ours: the fund aims to decide within months; a caseworker asks after it)."""
PROPOSAL_WITHIN_DAYS = 14
"""A proposal is flagged overdue this many days after the reported move or death (a working
assumption of ours, like the assessment deadline)."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS region_cases (case_id TEXT PRIMARY KEY, "
    "social_region TEXT NOT NULL, municipality_bfs INTEGER NOT NULL, phase TEXT NOT NULL, "
    "opened_on TEXT NOT NULL, intake_on TEXT NOT NULL, assessed_on TEXT, decided_on TEXT, "
    "support_from TEXT, next_review_due TEXT, closed_on TEXT, closure_reason TEXT, "
    "version INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS region_cases_by_region ON region_cases (social_region, phase)",
    "CREATE TABLE IF NOT EXISTS region_goals (goal_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, "
    "category TEXT NOT NULL, due_date TEXT NOT NULL, status TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS region_goals_by_case ON region_goals (case_id)",
    "CREATE TABLE IF NOT EXISTS region_proposals (case_id TEXT NOT NULL, "
    "external_reference TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL, "
    "to_region TEXT, to_municipality_bfs INTEGER, proposed_on TEXT NOT NULL, "
    "status TEXT NOT NULL, PRIMARY KEY (case_id, external_reference))",
)
_ADVANCES = (
    "CREATE TABLE IF NOT EXISTS region_advances (case_id TEXT NOT NULL, "
    "application_id TEXT NOT NULL, started_on TEXT NOT NULL, ended_on TEXT, end_reason TEXT, "
    "PRIMARY KEY (case_id, application_id, started_on))",
)
_CLAIMS = (
    "ALTER TABLE region_advances ADD COLUMN ended_in_region TEXT",
    "CREATE TABLE IF NOT EXISTS region_claims (case_id TEXT NOT NULL, "
    "case_version INTEGER NOT NULL, social_region TEXT NOT NULL, application_id TEXT NOT NULL, "
    "recorded_on TEXT NOT NULL, claim_total TEXT NOT NULL, surplus_total TEXT NOT NULL, "
    "ipv_offset_total TEXT NOT NULL, PRIMARY KEY (case_id, case_version))",
    "CREATE INDEX IF NOT EXISTS region_claims_by_region ON region_claims "
    "(social_region, recorded_on)",
    "CREATE TABLE IF NOT EXISTS region_reimbursements (case_id TEXT NOT NULL, "
    "case_version INTEGER NOT NULL, claim_version INTEGER NOT NULL, "
    "social_region TEXT NOT NULL, application_id TEXT NOT NULL, paid_on TEXT NOT NULL, "
    "to_region TEXT NOT NULL, to_person TEXT NOT NULL, PRIMARY KEY (case_id, case_version))",
)
"""Migration 3: the region an advance ended in, the claims recorded and the reimbursements
paid (`projections.advance_figures` counts them per quarter). Amounts are kept as decimal
text ("8600.00") and added up as `Decimal` when read: SQLite has no exact decimal type."""
_WORK_INDEXES = (
    "CREATE INDEX IF NOT EXISTS region_cases_by_region_due "
    "ON region_cases (social_region, phase, next_review_due)",
    "DROP INDEX IF EXISTS region_cases_by_region",
    "ALTER TABLE region_goals ADD COLUMN social_region TEXT",
    "UPDATE region_goals SET social_region = (SELECT c.social_region FROM region_cases c "
    "WHERE c.case_id = region_goals.case_id)",
    "CREATE INDEX IF NOT EXISTS region_goals_open ON region_goals (social_region, due_date) "
    "WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS region_proposals_open ON region_proposals (case_id) "
    "WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS region_advances_running ON region_advances (case_id) "
    "WHERE ended_on IS NULL",
)
"""Migration 4: the work list's items found from what is open, not by walking every case of
the region (at 1 million events a page of the list took 55 ms, most of it probing each of a
region's 6,400 cases for a goal, a proposal or an advance): the reviews due by the region's
index, which now ends in the due day (it replaces the (region, phase) index, its prefix); the
open goals by region and due day (a goal now carries its case's region, moved with the case
by a handover); the open proposals and running advances by partial indexes of their own (few
rows, whatever the store's size)."""
_GOALS_OF_SUPPORTED = (
    "ALTER TABLE region_goals ADD COLUMN case_phase TEXT",
    "UPDATE region_goals SET case_phase = (SELECT c.phase FROM region_cases c "
    "WHERE c.case_id = region_goals.case_id)",
    "CREATE INDEX IF NOT EXISTS region_goals_due ON region_goals "
    "(social_region, case_phase, due_date, case_id, goal_id, category, status) "
    "WHERE status = 'open'",
    "DROP INDEX IF EXISTS region_goals_open",
)
"""Migration 5: a goal carries its case's phase too (moved with every change of phase), and
the work list's goals are read from one covering index of the open goals by region, phase
and due day, without visiting their cases. Goals of closed cases stay open (the domain
closes the case, not its goals): at 1 million events the goal branch visited 1,422 cases of
the largest region to keep 544 items, 3.3 of a page's 4 ms (benchmarks/scale.py)."""
MIGRATIONS = Component(
    "read_model_region",
    [Migration(1, "cases, goals, proposals per region", sqlite=_TABLES, postgres=_TABLES),
     Migration(2, "advances in view of EL", sqlite=_ADVANCES, postgres=_ADVANCES),
     Migration(3, "claims and reimbursements of advances", sqlite=_CLAIMS, postgres=_CLAIMS),
     Migration(4, "the work list's open items indexed", sqlite=_WORK_INDEXES,
               postgres=_WORK_INDEXES),
     Migration(5, "goals carry their case's phase", sqlite=_GOALS_OF_SUPPORTED,
               postgres=_GOALS_OF_SUPPORTED)],
    tables=["region_cases"],
)
"""The read model's tables: the same portable DDL on both backends (on PostgreSQL it runs in
the read models' schema, the connection's search path)."""


class RegionProjection(CaseRowProjection):
    """Cases and open goals per social region."""

    name: ClassVar[str] = "region"
    tables: ClassVar[tuple[str, ...]] = ("region_cases", "region_goals", "region_proposals",
                                         "region_advances", "region_claims",
                                         "region_reimbursements")
    migrations: ClassVar[Component] = MIGRATIONS
    case_table: ClassVar[str] = "region_cases"

    def change(self, event: Any, case_id: str, tx: SQLConnection) -> None:
        """Apply a new event of a case: its type's method below, if it changes the view."""
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event, case_id, tx)

    # --- one method per event type that changes the view ----------------------------------

    def _on_CaseOpened(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        day = e.effective_date.isoformat()
        tx.execute(
            "INSERT INTO region_cases (case_id, social_region, municipality_bfs, phase, "  # noqa: S608
            f"opened_on, intake_on, version) VALUES ({p}, {p}, {p}, 'intake', {p}, {p}, 1)",
            (case_id, e.social_region, e.municipality_bfs, day, day),
        )

    def _on_AssessmentCompleted(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(tx, case_id, phase="assessed", assessed_on=e.effective_date.isoformat())

    def _on_SupportGranted(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(
            tx,
            case_id,
            phase="supported",
            decided_on=e.decision_date.isoformat(),
            support_from=e.effective_date.isoformat(),
            next_review_due=add_months(e.effective_date, 12).isoformat(),
        )

    def _on_SupportRefused(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(tx, case_id, phase="refused", decided_on=e.effective_date.isoformat())

    def _on_GoalAgreed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        case = f"FROM region_cases WHERE case_id = {p}"
        tx.execute(
            "INSERT INTO region_goals (goal_id, case_id, category, due_date, status, "  # noqa: S608
            f"social_region, case_phase) VALUES ({p}, {p}, {p}, {p}, 'open', "
            f"(SELECT social_region {case}), (SELECT phase {case}))",
            (e.goal_id.hex, case_id, e.category, e.due_date.isoformat(), case_id, case_id),
        )

    def _on_GoalAchieved(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            f"UPDATE region_goals SET status = 'achieved' WHERE goal_id = {p}", (e.goal_id.hex,)  # noqa: S608
        )

    def _on_GoalMissed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            f"UPDATE region_goals SET status = 'missed' WHERE goal_id = {p}",  # noqa: S608
            (e.goal_id.hex,),
        )

    def _on_ReviewCompleted(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(tx, case_id, next_review_due=e.next_review_due.isoformat())

    def _on_CaseHandedOver(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        update_case_row(
            tx,
            "region_cases",
            case_id,
            social_region=e.to_region,
            municipality_bfs=e.to_municipality_bfs,
        )
        p = placeholder(tx)
        tx.execute(
            f"UPDATE region_goals SET social_region = {p} WHERE case_id = {p}",  # noqa: S608
            (e.to_region, case_id),
        )
        _resolve_proposals(tx, case_id, ("handover",))

    def _on_CaseClosed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(
            tx,
            case_id,
            phase="closed",
            closed_on=e.effective_date.isoformat(),
            closure_reason=e.reason,
        )
        _resolve_proposals(tx, case_id, ("handover", "closure"))

    def _on_HandoverProposed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _add_proposal(tx, case_id, e, "handover", "moved", e.to_region, e.to_municipality_bfs)

    def _on_ClosureProposed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _add_proposal(tx, case_id, e, "closure", e.reason, None, None)

    def _on_BudgetChangeProposed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _add_proposal(tx, case_id, e, "budget_change", e.reason, None, None)

    def _on_BudgetChanged(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _resolve_proposals(tx, case_id, ("budget_change",))

    def _on_AdvanceStarted(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            "INSERT INTO region_advances (case_id, application_id, started_on) "  # noqa: S608
            f"VALUES ({p}, {p}, {p})",
            (case_id, str(e.application_id), e.effective_date.isoformat()),
        )

    def _on_AdvanceEnded(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            f"UPDATE region_advances SET ended_on = {p}, end_reason = {p}, "  # noqa: S608
            f"ended_in_region = ({_region_of(p)}) "
            f"WHERE case_id = {p} AND application_id = {p} AND ended_on IS NULL",
            (e.effective_date.isoformat(), e.reason, case_id, case_id, str(e.application_id)),
        )

    def _on_ReimbursementRecorded(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            f"INSERT INTO region_claims VALUES ({p}, {p}, ({_region_of(p)}), {p}, {p}, "  # noqa: S608
            f"{p}, {p}, {p})",
            (case_id, e.originator_version, case_id, str(e.application_id),
             e.effective_date.isoformat(), str(e.claim_total), str(e.surplus_total),
             str(e.ipv_offset_total)),
        )

    def _on_ReimbursementPaid(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        """The fund paid a recorded claim (the case's `ReimbursementRecorded` at
        `claim_version`): `to_region` CHF to the social region and `to_person` CHF to the
        person, on the effective date. It counts in the region the claim was made for (the
        one the fund pays: `ReimbursementClaim.region`), not the one the case is in when the
        payment comes back: a case handed over meanwhile still repays its first region."""
        p = placeholder(tx)
        claimed_for = (f"SELECT social_region FROM region_claims "  # noqa: S608
                       f"WHERE case_id = {p} AND case_version = {p}")
        tx.execute(
            f"INSERT INTO region_reimbursements VALUES ({p}, {p}, {p}, "  # noqa: S608
            f"COALESCE(({claimed_for}), ({_region_of(p)})), {p}, {p}, {p}, {p})",
            (case_id, e.originator_version, e.claim_version, case_id, e.claim_version, case_id,
             str(e.application_id), e.effective_date.isoformat(), str(e.to_region),
             str(e.to_person)),
        )

    def _on_ProposalDismissed(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        p = placeholder(tx)
        tx.execute(
            "UPDATE region_proposals SET status = 'dismissed' "  # noqa: S608
            f"WHERE case_id = {p} AND external_reference = {p}",
            (case_id, e.external_reference),
        )

    def _on_CaseReopened(self, e: Any, case_id: str, tx: SQLConnection) -> None:
        _update(
            tx,
            case_id,
            phase="intake",
            intake_on=e.effective_date.isoformat(),
            assessed_on=None,
            decided_on=None,
            next_review_due=None,
            closed_on=None,
            closure_reason=None,
        )


def _region_of(p: str) -> str:
    """A sub-select of the case's region now (`p`: the backend's placeholder, for its id)."""
    return f"SELECT social_region FROM region_cases WHERE case_id = {p}"  # noqa: S608


def _update(tx: SQLConnection, case_id: str, **columns: object) -> None:
    """Update the case's row; a new phase is written on its goals too (migration 5)."""
    update_case_row(tx, "region_cases", case_id, **columns)
    if "phase" in columns:
        p = placeholder(tx)
        tx.execute(f"UPDATE region_goals SET case_phase = {p} WHERE case_id = {p}",  # noqa: S608
                   (columns["phase"], case_id))


def _add_proposal(
    tx: SQLConnection,
    case_id: str,
    e: Any,
    kind: str,
    reason: str,
    to_region: str | None,
    to_municipality_bfs: int | None,
) -> None:
    p = placeholder(tx)
    tx.execute(
        f"INSERT INTO region_proposals VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, 'open')",  # noqa: S608
        (
            case_id,
            e.external_reference,
            kind,
            reason,
            to_region,
            to_municipality_bfs,
            e.effective_date.isoformat(),
        ),
    )


def _resolve_proposals(tx: SQLConnection, case_id: str, kinds: tuple[str, ...]) -> None:
    p = placeholder(tx)
    for kind in kinds:
        tx.execute(
            "UPDATE region_proposals SET status = 'resolved' "  # noqa: S608
            f"WHERE case_id = {p} AND kind = {p} AND status = 'open'",
            (case_id, kind),
        )


# --- queries ---------------------------------------------------------------------------------


WorkItemKind = Literal["assessment", "review", "goal", "handover_proposal", "closure_proposal",
                       "budget_proposal", "advance"]
"""What a work-list item asks for: an initial assessment, a periodic review, a goal's due date,
an open proposal to hand the case over, to close it or to change its budget (a register's or
a benefit decision's), or an open advance in view of EL (waiting for the decision)."""


@dataclass(frozen=True)
class WorkItem:
    """Something a caseworker of the region has to do by a date."""

    kind: WorkItemKind
    case_id: str
    due: date
    overdue: bool
    detail: str = ""
    reference: str = ""
    """A proposal's external reference (what accepting or dismissing it names); else empty."""
    category: str = ""
    """A goal's category."""
    goal_id: str = ""
    reason: str = ""
    """A closure's or budget change's proposed reason."""
    to_region: str = ""
    """Where a handover proposal would hand the case to (and `to_municipality_bfs`)."""
    to_municipality_bfs: int | None = None
    application_id: str = ""
    """The EL application an advance waits for (and `days`, how long it has waited)."""
    days: int | None = None


@dataclass(frozen=True)
class RegionCase:
    """A case in the region's list: no personal data."""

    case_id: str
    municipality_bfs: int
    phase: str
    opened_on: date
    next_review_due: date | None


def caseload(db: SQLConnection, region: str) -> dict[str, int]:
    """Cases of the region by phase."""
    p = placeholder(db)
    rows = fetch_all(
        db,
        f"SELECT phase, count(*) FROM region_cases WHERE social_region = {p} GROUP BY phase",  # noqa: S608
        (region,), 2,
    )
    return {phase: int(count) for phase, count in rows}


def region_cases(
    db: SQLConnection, region: str, *, phase: str | None = None, limit: int = 50,
    offset: int = 0,
) -> list[RegionCase]:
    """The region's cases (of one phase, if given), newest opening first, a page of them."""
    p = placeholder(db)
    where, args = f"social_region = {p}", [region]
    if phase:
        where, args = f"{where} AND phase = {p}", [region, phase]
    rows = db.execute(
        "SELECT case_id, municipality_bfs, phase, opened_on, next_review_due "  # noqa: S608
        f"FROM region_cases WHERE {where} ORDER BY opened_on DESC, case_id "
        f"LIMIT {p} OFFSET {p}",
        (*args, limit, offset),
    ).fetchall()
    return [
        RegionCase(case_id, bfs, phase_, date.fromisoformat(opened),
                   date.fromisoformat(review) if review else None)
        for case_id, bfs, phase_, opened, review in rows
    ]


def work_list(db: SQLConnection, region: str, today: date) -> list[WorkItem]:
    """Assessments, reviews, goals, proposals and open advances of the region that are due
    or overdue, soonest first (the whole list: `work_page` for a page of it)."""
    return work_page(db, region, today)[0]


def work_page(
    db: SQLConnection, region: str, today: date, *, limit: int | None = None, offset: int = 0
) -> tuple[list[WorkItem], int]:
    """`limit` items of the work list from `offset` (all of them without `limit`), and how
    many items the whole list holds. The database orders and cuts the list, so that a page
    costs what its items cost, not what the region's whole list costs: soonest first, then
    by kind, case and reference (a total order: pages neither overlap nor skip an item)."""
    items, params = _work_items(db, region, today)
    p = placeholder(db)
    # PostgreSQL's default collation may order text unlike Python and SQLite (bytewise).
    binary = ' COLLATE "C"' if p == "%s" else ""
    order = ", ".join(f"{column}{binary}" for column in ("due", "kind", "case_id", "ref"))
    query = f"SELECT * FROM ({items}) work ORDER BY {order}"  # noqa: S608 - our own text
    if limit is None:
        rows = sorted(map(tuple, fetch_all(db, query, params, _WORK_COLUMNS)), key=_work_order)
        return [_work_item(row, today) for row in rows], len(rows)
    # The page and the whole list's count in one pass (a window over every item, counted
    # before LIMIT cuts); a page past the end has no row to carry it: counted apart then.
    counted = query.replace("SELECT *", "SELECT *, count(*) OVER ()", 1)
    rows = sorted(map(tuple, fetch_all(db, f"{counted} LIMIT {p} OFFSET {p}",
                                       (*params, limit, offset), _WORK_COLUMNS + 1)),
                  key=_work_order)
    if rows:
        total = rows[0][-1]
    else:
        (total,) = db.execute(f"SELECT count(*) FROM ({items}) work", params).fetchone()  # noqa: S608
    return [_work_item(row[:-1], today) for row in rows], int(total)


_WORK_COLUMNS = 7
"""The values of a row of `_work_items`."""


def _work_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The work list's order (due day, kind, case, reference) of a row of `_work_items`; text
    compared by code point, as SQLite's and PostgreSQL's "C" collation compare it."""
    return row[:4]


def _work_items(db: SQLConnection, region: str, today: date) -> tuple[str, tuple[Any, ...]]:
    """The work list's items as one query (unordered) and its parameters. Each row: the due
    day (ISO text), the kind, the case, a reference (goal id, proposal reference, EL
    application), a name (goal category, proposal reason), a handover's region and BFS number.
    """
    p = placeholder(db)
    if p == "%s":  # PostgreSQL
        assessment_due = (
            f"to_char(CAST(intake_on AS date) + {ASSESSMENT_WITHIN_DAYS}, 'YYYY-MM-DD')"
        )
    else:
        assessment_due = f"date(intake_on, '+{ASSESSMENT_WITHIN_DAYS} days')"
    # Our own text and constants; the values are parameters. The open goals of supported
    # cases come from their covering index alone (migration 5); the open proposals and the
    # running advances lead their joins (CROSS JOIN: SQLite keeps the order written), found by
    # their partial indexes (migration 4); PostgreSQL's planner chooses its order itself.
    query = (
        f"SELECT {assessment_due} AS due, 'assessment' AS kind, case_id, '' AS ref, "  # noqa: S608
        "'' AS name, CAST(NULL AS TEXT) AS to_region, CAST(NULL AS INTEGER) AS to_bfs "
        "FROM region_cases "
        f"WHERE social_region = {p} AND phase = 'intake' "
        "UNION ALL SELECT next_review_due, 'review', case_id, '', '', NULL, NULL "
        f"FROM region_cases WHERE social_region = {p} AND phase = 'supported' "
        f"AND next_review_due <= {p} "
        "UNION ALL SELECT due_date, 'goal', case_id, goal_id, category, NULL, NULL "
        f"FROM region_goals WHERE social_region = {p} AND case_phase = 'supported' "
        f"AND status = 'open' AND due_date <= {p} "
        "UNION ALL SELECT r.proposed_on, CASE r.kind WHEN 'handover' THEN 'handover_proposal' "
        "WHEN 'closure' THEN 'closure_proposal' ELSE 'budget_proposal' END, r.case_id, "
        "r.external_reference, r.reason, r.to_region, r.to_municipality_bfs "
        "FROM region_proposals r CROSS JOIN region_cases c "
        f"WHERE c.case_id = r.case_id AND c.social_region = {p} AND r.status = 'open' "
        "AND r.kind IN ('handover', 'closure', 'budget_change') "
        "UNION ALL SELECT a.started_on, 'advance', a.case_id, a.application_id, '', NULL, NULL "
        "FROM region_advances a CROSS JOIN region_cases c "
        f"WHERE c.case_id = a.case_id AND c.social_region = {p} AND a.ended_on IS NULL"
    )
    reviews = (today + timedelta(days=REVIEW_HORIZON_DAYS)).isoformat()
    goals = (today + timedelta(days=GOAL_HORIZON_DAYS)).isoformat()
    return query, (region, region, reviews, region, goals, region, region)


def _work_item(row: Any, today: date) -> WorkItem:
    """A work item from a row of `_work_items`, judged on `today`."""
    due_text, kind, case_id, ref, name, to_region, to_bfs = row
    due = date.fromisoformat(due_text)
    if kind in ("assessment", "review"):
        return WorkItem(kind, case_id, due, due < today)
    if kind == "goal":
        return WorkItem("goal", case_id, due, due < today, f"{name} goal {ref}",
                        category=name, goal_id=ref)
    if kind == "advance":
        # Due from its first day, with its age (days waiting for the EL decision); overdue
        # after `ADVANCE_WAITING_DAYS`.
        age = (today - due).days
        return WorkItem("advance", case_id, due, age > ADVANCE_WAITING_DAYS,
                        f"EL application {ref}; advanced for {age} days",
                        application_id=ref, days=age)
    # An open handover, closure or budget proposal, due from the reported day.
    overdue = due + timedelta(days=PROPOSAL_WITHIN_DAYS) < today
    detail = (f"moved to {to_bfs} ({to_region}); ref {ref}" if kind == "handover_proposal"
              else f"{name}; ref {ref}")
    return WorkItem(kind, case_id, due, overdue, detail, ref, reason=name or "",
                    to_region=to_region or "",
                    to_municipality_bfs=int(to_bfs) if to_bfs is not None else None)
