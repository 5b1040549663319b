"""What branch offices see of the compensation fund's pathway (issue 14, point 5): the benefit
applications of their municipalities, and the tasks the fund delegated to them.

Per application: kind, municipality, branch office, stage, received and forwarded days, the
completeness check's missing documents, the document requests with their due dates, the
decision (granted from a month, refused with a reason, ended) and the applicant as stored:
sealed with their own key, so that erasing the person makes this copy unreadable too (as
`projections.branch_office`). Days since receipt are not stored: they depend on the day of
reading (`days_since_receipt`). Per delegation: office, task, period, revoked or expired; the
tasks it leaves open to its office are read at query time (`open_delegated_tasks`).

Fed from the benefits store's own notification log (`BenefitService`, table
`benefits_events`) by `projections.framework.rebuild`. The dataset `applications`
(`dataset`, the key of `<prefix>.benefits.applications.v1` in `nervenbahn.datasets`) names the
topic a consumer will follow: its codec decodes to the domain events of `domain.benefits`,
which is all `handle` needs, and its `event_id` is the default `processed_id`. Delegation
events are not published on that topic, so the delegations table stays fed from the store.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Literal

from projections.framework import Projection, already_applied, update_row
from projections.storage import SQLConnection
from schemas.sql import Component, Migration, placeholder

__all__ = [
    "BENEFIT_APPLICATIONS_DATASET",
    "BenefitApplicationsProjection",
    "DelegatedTask",
    "DocumentRequestRow",
    "OfficeApplication",
    "OfficeDelegation",
    "days_since_receipt",
    "office_application",
    "office_applications",
    "office_delegations",
    "open_delegated_tasks",
    "person_applications",
]

BENEFIT_APPLICATIONS_DATASET = "applications"
"""The dataset (bus topic) of application events (`nervenbahn.datasets.BENEFIT_APPLICATIONS`)."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS benefit_applications (application_id TEXT PRIMARY KEY, "
    "kind TEXT NOT NULL, municipality_bfs INTEGER NOT NULL, branch_office TEXT NOT NULL, "
    "stage TEXT NOT NULL, received_on TEXT NOT NULL, checked INTEGER NOT NULL, "
    "documents_present TEXT NOT NULL, missing TEXT NOT NULL, requests TEXT NOT NULL, "
    "forwarded_on TEXT, decided_on TEXT, granted_from TEXT, refusal_reason TEXT, "
    "last_month TEXT, applicant_person_id TEXT NOT NULL, applicant_sealed TEXT NOT NULL, "
    "version INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS benefit_applications_by_office "
    "ON benefit_applications (branch_office)",
    "CREATE TABLE IF NOT EXISTS benefit_delegations (delegation_id TEXT PRIMARY KEY, "
    "branch_office TEXT NOT NULL, task TEXT NOT NULL, valid_from TEXT NOT NULL, "
    "valid_until TEXT NOT NULL, revoked_on TEXT, expired INTEGER NOT NULL, "
    "version INTEGER NOT NULL)",
)
_BY_PERSON = (
    "CREATE INDEX IF NOT EXISTS benefit_applications_by_person "
    "ON benefit_applications (applicant_person_id)",
)
"""Migration 2: a person's applications (a social-assistance case's household members')."""
MIGRATIONS = Component(
    "read_model_benefit_applications",
    [Migration(1, "applications and delegations by branch office", sqlite=_TABLES,
               postgres=_TABLES),
     Migration(2, "applications by applicant", sqlite=_BY_PERSON, postgres=_BY_PERSON)],
    tables=["benefit_applications", "benefit_delegations"],
)
"""The read model's tables: the same portable DDL on both backends."""

_APPLICATIONS = "benefit_applications"
_DELEGATIONS = "benefit_delegations"
_STAGE_OF = {
    "ApplicationForwarded": "forwarded",
    "BenefitGranted": "granted",
    "BenefitRefused": "refused",
    "BenefitEnded": "ended",
    "ApplicationWithdrawn": "withdrawn",
}


class BenefitApplicationsProjection(Projection):
    """Benefit applications and delegations by branch office."""

    name: ClassVar[str] = "benefit_applications"
    tables: ClassVar[tuple[str, ...]] = (_APPLICATIONS, _DELEGATIONS)
    migrations: ClassVar[Component] = MIGRATIONS
    dataset: ClassVar[str] = BENEFIT_APPLICATIONS_DATASET
    source: ClassVar[Literal["cases", "benefits"]] = "benefits"

    def apply(self, event: Any, tx: SQLConnection) -> None:
        """Apply one application or delegation event; one at or below the version its row
        holds is ignored (met again)."""
        kind = type(event).__name__
        if kind.startswith("Delegation"):
            self._delegation(kind, event, tx)
        else:
            self._application(kind, event, tx)

    def _application(self, kind: str, event: Any, tx: SQLConnection) -> None:
        if already_applied(tx, _APPLICATIONS, event, key="application_id"):
            return
        application_id = str(event.originator_id)
        if kind == "ApplicationReceived":
            _insert_application(tx, event)
            return
        columns: dict[str, object] = {"version": event.originator_version}
        if kind in _STAGE_OF:
            columns["stage"] = _STAGE_OF[kind]
        if kind == "CompletenessChecked":
            columns |= {"checked": 1, "documents_present": _codes(event.documents_present),
                        "missing": _codes(event.missing)}
        elif kind == "DocumentsRequested":
            columns["requests"] = json.dumps(
                [*_read(tx, application_id, "requests"), _request(event.request)])
        elif kind == "DocumentsReceived":
            present = set(_read(tx, application_id, "documents_present")) | set(event.documents)
            missing = set(_read(tx, application_id, "missing")) - present
            columns |= {"documents_present": _codes(present), "missing": _codes(missing)}
        elif kind == "ApplicationForwarded":
            columns["forwarded_on"] = event.forwarded_on.isoformat()
        elif kind == "BenefitGranted":
            columns |= {"granted_from": event.from_month.isoformat(),
                        "decided_on": event.decided_on.isoformat()}
        elif kind == "BenefitRefused":
            columns |= {"refusal_reason": event.reason, "decided_on": event.decided_on.isoformat()}
        elif kind == "BenefitEnded":
            columns["last_month"] = event.last_month.isoformat()
        update_row(tx, _APPLICATIONS, ("application_id", application_id), **columns)

    def _delegation(self, kind: str, event: Any, tx: SQLConnection) -> None:
        if already_applied(tx, _DELEGATIONS, event, key="delegation_id"):
            return
        delegation_id = str(event.originator_id)
        if kind == "DelegationGranted":
            p = placeholder(tx)
            tx.execute(
                f"INSERT INTO {_DELEGATIONS} (delegation_id, branch_office, task, valid_from, "  # noqa: S608
                f"valid_until, expired, version) VALUES ({p}, {p}, {p}, {p}, {p}, 0, 1)",
                (delegation_id, event.branch_office, event.task, event.valid_from.isoformat(),
                 event.valid_until.isoformat()),
            )
            return
        columns: dict[str, object] = {"version": event.originator_version}
        if kind == "DelegationRevoked":
            columns["revoked_on"] = event.revoked_on.isoformat()
        elif kind == "DelegationExpired":
            columns["expired"] = 1
        update_row(tx, _DELEGATIONS, ("delegation_id", delegation_id), **columns)


def _insert_application(tx: SQLConnection, event: Any) -> None:
    p = placeholder(tx)
    tx.execute(
        f"INSERT INTO {_APPLICATIONS} (application_id, kind, municipality_bfs, branch_office, "  # noqa: S608
        "stage, received_on, checked, documents_present, missing, requests, "
        "applicant_person_id, applicant_sealed, version) "
        f"VALUES ({p}, {p}, {p}, {p}, 'received', {p}, 0, '[]', '[]', '[]', {p}, {p}, 1)",
        (str(event.originator_id), event.kind, event.municipality_bfs, event.branch_office,
         event.received_on.isoformat(), str(event.applicant.person_id),
         json.dumps(_sealed(event.applicant))),
    )


def _sealed(person: Any) -> dict[str, str]:
    """The person as stored (sealed); a person in clear here would be a bug upstream."""
    sealed = getattr(person, "sealed", None)
    if not isinstance(sealed, dict):
        raise TypeError("the benefit applications' read model only takes sealed personal data")
    return dict(sealed)


def _codes(codes: Collection[str]) -> str:
    return json.dumps(sorted(set(codes)))


def _request(request: Any) -> dict[str, object]:
    return {"documents": sorted(request.documents),
            "requested_on": request.requested_on.isoformat(),
            "due_on": request.due_on.isoformat()}


def _read(tx: SQLConnection, application_id: str, column: str) -> list[Any]:
    p = placeholder(tx)
    row = tx.execute(
        f"SELECT {column} FROM {_APPLICATIONS} WHERE application_id = {p}",  # noqa: S608
        (application_id,),
    ).fetchone()
    return list(json.loads(row[0])) if row is not None else []


# --- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentRequestRow:
    """Documents asked of the applicant on `requested_on`, due on `due_on`; `open`: those of
    them still missing."""

    documents: list[str]
    requested_on: date
    due_on: date
    open: list[str]


@dataclass(frozen=True)
class OfficeApplication:
    """An application as its branch office sees it; the applicant still sealed."""

    application_id: str
    kind: str
    municipality_bfs: int
    branch_office: str
    stage: str
    received_on: date
    checked: bool
    documents_present: list[str]
    missing: list[str]
    requests: list[DocumentRequestRow]
    forwarded_on: date | None
    decided_on: date | None
    granted_from: date | None
    refusal_reason: str | None
    last_month: date | None
    applicant_person_id: str
    applicant_sealed: dict[str, str]

    @property
    def open_requests(self) -> list[DocumentRequestRow]:
        """The document requests with documents still missing."""
        return [request for request in self.requests if request.open]


_COLUMNS = (
    "application_id, kind, municipality_bfs, branch_office, stage, received_on, checked, "
    "documents_present, missing, requests, forwarded_on, decided_on, granted_from, "
    "refusal_reason, last_month, applicant_person_id, applicant_sealed"
)


def office_applications(
    db: SQLConnection,
    office_id: str,
    *,
    stage: str | None = None,
    kind: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[OfficeApplication]:
    """The applications of a branch office's municipalities, newest received first (all of
    them with `limit` None, `offset` then unused)."""
    p = placeholder(db)
    query = f"SELECT {_COLUMNS} FROM {_APPLICATIONS} WHERE branch_office = {p}"  # noqa: S608
    params: list[object] = [office_id]
    for column, value in (("stage", stage), ("kind", kind)):
        if value is not None:
            query += f" AND {column} = {p}"
            params.append(value)
    query += " ORDER BY received_on DESC, application_id"
    if limit is not None:
        query += f" LIMIT {p} OFFSET {p}"
        params += [limit, offset]
    return [_application_row(row) for row in db.execute(query, params)]


def office_application(
    db: SQLConnection, office_id: str | None, application_id: str
) -> OfficeApplication | None:
    """One application if it is the office's (any office's with `office_id` None, for the
    fund); None otherwise, as if it were not there."""
    p = placeholder(db)
    query = f"SELECT {_COLUMNS} FROM {_APPLICATIONS} WHERE application_id = {p}"  # noqa: S608
    row = db.execute(query, (application_id,)).fetchone()
    if row is None or (office_id is not None and row[3] != office_id):
        return None
    return _application_row(row)


def person_applications(
    db: SQLConnection, person_ids: Collection[str]
) -> list[OfficeApplication]:
    """The applications of any of these persons (by the applicant's person id), of any
    office, oldest received first; none for no persons."""
    if not person_ids:
        return []
    p = placeholder(db)
    marks = ", ".join([p] * len(person_ids))
    query = (f"SELECT {_COLUMNS} FROM {_APPLICATIONS} "  # noqa: S608
             f"WHERE applicant_person_id IN ({marks}) ORDER BY received_on, application_id")
    return [_application_row(row) for row in db.execute(query, list(person_ids))]


def days_since_receipt(application: OfficeApplication, today: date) -> int:
    """Days from receipt to `today` (the reader's Swiss day), never negative."""
    return max(0, (today - application.received_on).days)


def _application_row(row: tuple[Any, ...]) -> OfficeApplication:
    (application_id, kind, bfs, office, stage, received_on, checked, present, missing,
     requests, forwarded_on, decided_on, granted_from, refusal, last_month, person_id,
     sealed) = row
    missing_codes = list(json.loads(missing))
    return OfficeApplication(
        application_id, kind, bfs, office, stage, date.fromisoformat(received_on),
        bool(checked), list(json.loads(present)), missing_codes,
        [_request_row(request, missing_codes) for request in json.loads(requests)],
        _day(forwarded_on), _day(decided_on), _day(granted_from), refusal, _day(last_month),
        person_id, json.loads(sealed),
    )


def _request_row(request: dict[str, Any], missing: list[str]) -> DocumentRequestRow:
    documents = list(request["documents"])
    return DocumentRequestRow(documents, date.fromisoformat(request["requested_on"]),
                              date.fromisoformat(request["due_on"]),
                              [code for code in documents if code in missing])


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@dataclass(frozen=True)
class DelegatedTask:
    """A forwarded application the office may complete under a delegation: what is left."""

    application_id: str
    task: str
    stage: str
    missing: list[str]


@dataclass(frozen=True)
class OfficeDelegation:
    """A task the fund delegated to the office, its period and status on the day of reading,
    and the tasks it leaves open to the office (only while active)."""

    delegation_id: str
    branch_office: str
    task: str
    valid_from: date
    valid_until: date
    revoked_on: date | None
    status: str
    open_tasks: list[DelegatedTask]


def office_delegations(
    db: SQLConnection, office_id: str, today: date
) -> list[OfficeDelegation]:
    """The delegations granted to the office (newest period first), each with its status on
    `today` (`active`, `not_yet_valid`, `expired`, `revoked`, as `Delegation.status_on`) and,
    if active, the open tasks it covers (`open_delegated_tasks`)."""
    p = placeholder(db)
    rows = db.execute(
        "SELECT delegation_id, branch_office, task, valid_from, valid_until, revoked_on, "  # noqa: S608
        f"expired FROM {_DELEGATIONS} WHERE branch_office = {p} "
        "ORDER BY valid_from DESC, delegation_id",
        (office_id,),
    ).fetchall()
    delegations = []
    for delegation_id, office, task, valid_from, valid_until, revoked_on, expired in rows:
        start, end = date.fromisoformat(valid_from), date.fromisoformat(valid_until)
        status = _status(start, end, revoked_on, bool(expired), today)
        tasks = open_delegated_tasks(db, office, task) if status == "active" else []
        delegations.append(OfficeDelegation(delegation_id, office, task, start, end,
                                            _day(revoked_on), status, tasks))
    return delegations


def _status(start: date, end: date, revoked_on: str | None, expired: bool, today: date) -> str:
    if revoked_on is not None:
        return "revoked"
    if expired or today > end:
        return "expired"
    return "not_yet_valid" if today < start else "active"


def open_delegated_tasks(db: SQLConnection, office_id: str, task: str) -> list[DelegatedTask]:
    """The forwarded, undecided applications of the office on which `task` is still to do:
    a completeness check not yet made; documents missing but not requested (a document
    request); documents requested and still missing (documents received)."""
    tasks = []
    for application in office_applications(db, office_id, stage="forwarded", limit=None):
        requested = {code for request in application.requests for code in request.open}
        unrequested = sorted(set(application.missing) - requested)
        todo = {
            "completeness_check": not application.checked,
            "document_request": bool(unrequested),
            "documents_received": bool(requested),
        }.get(task, False)
        if todo:
            left = unrequested if task == "document_request" else sorted(requested)
            tasks.append(DelegatedTask(application.application_id, task, application.stage,
                                       left if task != "completeness_check" else []))
    return tasks
