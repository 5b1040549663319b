"""What every area of the web app does the same way: record a command as the signed-in user,
read a read model, and log a read of personal data.

- `record_case(web, session, "change_budget", {...})`: validates the fields into the domain's
  command (`domain.commands.parse_command`) with the user as actor and a new correlation id,
  and executes it through the case service, recorded by the signed-in account
  (`web:<user name>`, `nervenbahn.identity.web_identity`); `record_benefit` the same for the benefit
  commands (`domain.benefit_commands`), recorded by the signed-in account too. A refusal is the
  domain's error (`DomainError`), for `nervenbahn.web.forms.refusal_of` to show next to its
  field; nothing is recorded then.
- `read_model(web, "region")`: a read-only connection to a read model.
- `log_read(...)`: the access-log entry of a read, before the page is answered (the consumer is
  `web:<user name>`, the scope `<role>:<organisation>`, the endpoint the route's template).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from domain.application.benefits import BenefitResult
from domain.application.ports import CommandResult
from domain.benefit_commands import BENEFIT_COMMANDS
from domain.commands import invalid_command, parse_command
from domain.errors import InvalidCommandError
from nervenbahn.accounts import WebSession
from nervenbahn.api.errors import ReadModelUnavailableError
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.identity import web_identity
from nervenbahn.web.auth import WebState, actor_of
from projections import READ_MODELS
from projections.errors import ReadModelUnreadableError
from projections.read_connections import reused_read_model
from projections.storage import SQLConnection

__all__ = ["consumer_of", "endpoint_of", "log_read", "read_model", "record_benefit",
           "record_case", "scope_of"]

_TARGETS = {
    "region": "region_db", "branch_office": "branch_office_db", "reporting": "reporting_db",
    "benefit_applications": "benefit_applications_db",
}


def record_case(
    web: WebState, session: WebSession, name: str, data: dict[str, Any]
) -> CommandResult:
    """Validate and execute case command `name` as the signed-in user (empty text fields are
    left out, so the domain names a missing one; an empty list is an answer: none)."""
    service = web.context.service
    if service is None:
        raise InvalidCommandError(name, [("", "the case store is not available")])
    payload = {k: v for k, v in data.items() if v is not None and v != ""}
    payload |= {"actor": actor_of(session.user), "correlation_id": str(uuid.uuid4())}
    return service.execute(parse_command(name, payload),
                           recorded_by=web_identity(session.user.username))


def record_benefit(
    web: WebState, session: WebSession, name: str, data: dict[str, Any]
) -> BenefitResult:
    """Validate and execute benefit command `name` as the signed-in user."""
    if web.context.benefits is None:
        raise InvalidCommandError(name, [("", "the benefits store is not available")])
    payload = {k: v for k, v in data.items() if v is not None and v != ""}
    payload |= {"actor": actor_of(session.user), "correlation_id": str(uuid.uuid4())}
    try:
        command = BENEFIT_COMMANDS[name].model_validate(payload)
    except ValidationError as exc:
        raise invalid_command(name, exc) from exc
    result = web.context.benefits().execute(
        command, recorded_by=web_identity(session.user.username))
    if web.context.refresh_benefit_applications is not None:
        web.context.refresh_benefit_applications()  # the office sees it at once
    return result


@contextmanager
def read_model(web: WebState, name: str) -> Iterator[SQLConnection]:
    """A read-only connection to read model `name` (region, branch_office, reporting,
    benefit_applications), the benefit applications' brought up to date first."""
    target = getattr(web.context, _TARGETS[name])
    if target is None:
        raise ReadModelUnavailableError(name, "not configured")
    try:
        if name == "benefit_applications" and web.context.refresh_benefit_applications:
            web.context.refresh_benefit_applications()
        with reused_read_model(target, READ_MODELS[name].tables[0]) as db:
            yield db
    except ReadModelUnreadableError as exc:
        raise ReadModelUnavailableError(name, exc.reason) from exc


def consumer_of(session: WebSession) -> str:
    """The access log's consumer of a web user."""
    return f"web:{session.user.username}"


def scope_of(session: WebSession) -> str:
    """The access log's scope of a web user."""
    return f"{session.user.role}:{session.user.organisation}"


def endpoint_of(request: Request) -> str:
    """`GET /web/office/{office_id}/cases/{case_id}`: the route's template, no ids."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def log_read(
    web: WebState, session: WebSession, request: Request, *, record_id: str, person_ids:
    Iterable[str], fields: tuple[str, ...],
) -> None:
    """Append one access-log entry per person read (before the page is answered: if the
    log cannot take it, the page is not shown)."""
    for person_id in person_ids:
        web.context.access_log.append(AccessEntry(
            at=web.now(), consumer=consumer_of(session), scope=scope_of(session),
            case_id=record_id, person_id=person_id, fields=fields,
            endpoint=endpoint_of(request)))
