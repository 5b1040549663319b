"""What the branch office's pages share: the scope, ids from the path, today, the labels.

The labels name the domain's codes (benefit kinds, stages, documents, tasks, events, case
phases) in English source text, translated where shown; a code without a label is shown as it
is (a checklist document added to the data file before its label here).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData

from domain.case import SWISS_TIME
from domain.reference import BranchOffice
from nervenbahn.accounts import WebSession
from nervenbahn.web.auth import PageNotFound, WebState, office_in_scope
from nervenbahn.web.i18n import N_
from nervenbahn.web.labels import BENEFIT_EVENTS as EVENTS
from nervenbahn.web.labels import BENEFIT_KINDS as KINDS
from nervenbahn.web.labels import DOCUMENTS, PHASES

__all__ = [
    "DELEGATION_STATUSES",
    "DOCUMENTS",
    "EVENTS",
    "KINDS",
    "PHASES",
    "STAGES",
    "TASKS",
    "WITHDRAWAL_REASONS",
    "Office",
    "branch_office",
    "day_of",
    "id_of",
    "labelled",
    "recorded_events",
    "today",
]

Office = Annotated[WebSession, Depends(office_in_scope)]
"""The session of a user of the branch office the path names (the 404 page otherwise)."""

STAGES = {
    "received": N_("Received"),
    "forwarded": N_("Forwarded to the fund"),
    "granted": N_("Granted"),
    "refused": N_("Refused"),
    "ended": N_("Ended"),
    "withdrawn": N_("Withdrawn"),
}
TASKS = {
    "completeness_check": N_("Completeness check"),
    "document_request": N_("Requesting documents"),
    "documents_received": N_("Recording documents received"),
}
WITHDRAWAL_REASONS = {
    "applicant_request": N_("At the applicant's request"),
    "death": N_("Death"),
    "moved_away": N_("Moved away"),
    "other": N_("Other reason"),
}
DELEGATION_STATUSES = {
    "active": N_("active"),
    "not_yet_valid": N_("not yet valid"),
    "expired": N_("expired"),
    "revoked": N_("revoked"),
}
def branch_office(web: WebState, office_id: str) -> BranchOffice:
    """The office the path names (in scope already: `Office`)."""
    found = web.context.branch_offices.get(office_id)
    if found is None:
        raise PageNotFound
    return found


def id_of(text: str) -> str:
    """A path's id as the read models write it; a malformed one is the 404 page."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise PageNotFound from None


def today(web: WebState) -> date:
    """Today in Swiss time, by the context's clock."""
    return web.now().astimezone(SWISS_TIME).date()


def day_of(form: FormData, name: str) -> str:
    """A date field as typed (the domain parses and refuses it)."""
    return str(form.get(name, "")).strip()


def recorded_events(query: str | None) -> list[str]:
    """The known event names of a `?recorded=A,B` notice (anything else is left out)."""
    return [name for name in (query or "").split(",") if name in EVENTS]


def labelled(codes: Iterable[str], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(code, English label) pairs, the code itself where no label is known."""
    return [(code, labels.get(code, code)) for code in codes]
