"""Who may read what through the CLI, and the access log of what was read.

The CLI reads with the same scope as it writes (docs/privacy.md, "Reads through the CLI"):

- a caseworker or supervisor reads the cases of their own organisation (social region) only;
  any other case is answered exactly like a case that does not exist (same message, exit 1);
- administrators and system actors read canton-wide;
- an `auditor` reads canton-wide but without personal data (`audit state|budget|diff|case`,
  `case history`, `case list`, `payments orders`); `case show` is refused to auditors, and
  every command that records something refuses the auditor role;
- the access log (`audit access`, `audit access-purge`) and the auditor's population
  (`audit extract`, logged per case it names) are for auditors, administrators and system
  actors only.

Every read of a case is appended to the access log (the API's, NERVENBAHN_ACCESS_LOG) before
anything is shown, one entry per person of the household: who (`cli:USER`, `ROLE:ORGANISATION`),
which case and person, which fields, when, through which command. If the log cannot be
written, nothing is shown (exit 3). Lists (`case list`, region work lists) are not logged, as
the API's lists are not: they show no person and no case's details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from domain.case import Case
from domain.errors import CaseNotFoundError, InvalidCommandError, RuleViolationError
from nervenbahn.audit.access_log import APPLICANT_FIELDS, AccessEntry, case_read_entries
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.audit.errors import AccessLogUnavailableError
from nervenbahn.config import ConfigError

from .audit_store import require_case_verified
from .session import Session

__all__ = [
    "CANTON_WIDE_ROLES",
    "PERSONAL_FIELDS",
    "READ_ROLES",
    "Reader",
    "log_case_read",
    "log_reads",
    "readable_case",
    "reader",
    "require_canton_wide",
    "require_personal_data",
    "require_region",
]

READ_ROLES = ("caseworker", "supervisor", "administrator", "system", "auditor")
"""The roles the CLI knows; `auditor` reads only (commands refuse it)."""
CANTON_WIDE_ROLES = frozenset({"administrator", "system", "auditor"})
"""Roles that read every region's cases."""
PERSONAL_FIELDS = (*APPLICANT_FIELDS, "case_state")
"""What `case show` shows of each person of the household, and the case's state."""


@dataclass(frozen=True)
class Reader:
    """The acting user of a read: USER:ROLE:ORGANISATION."""

    user_id: str
    role: str
    organisation: str

    def may_read(self, region: str) -> bool:
        """Whether this user reads cases of `region`."""
        return self.role in CANTON_WIDE_ROLES or self.organisation == region

    @property
    def consumer(self) -> str:
        """The name the access log records for this user."""
        return f"cli:{self.user_id}"

    @property
    def scope(self) -> str:
        """The scope the access log records for this user."""
        return f"{self.role}:{self.organisation}"


def reader(rt: Session) -> Reader:
    """The acting user (--actor or NERVENBAHN_ACTOR), with a role the CLI knows."""
    who = Reader(**rt.actor())
    if who.role not in READ_ROLES:
        raise InvalidCommandError(
            "command", [("actor", f"role {who.role!r} is not one of {', '.join(READ_ROLES)}")]
        )
    return who


def readable_case(rt: Session, case_id: UUID, as_of: datetime | None = None, *,
                  verified: bool = True) -> Case:
    """The case (now, or as recorded up to `as_of`) if the acting user may read it; a case
    of another region is not found, with the very message of a missing one. With `verified`,
    its stored events are first checked against their hash-chain links (exit 4 if one does
    not match: `nervenbahn.audit.read_check`)."""
    missing = CaseNotFoundError(case_id, as_of.isoformat() if as_of else None)
    if verified:  # first: an event deleted or garbled may not even replay
        require_case_verified(rt, case_id)
    try:
        current = rt.service.get_case(case_id)
    except CaseNotFoundError:
        raise missing from None
    if not reader(rt).may_read(current.social_region):
        raise missing
    return current if as_of is None else rt.service.case_as_of(case_id, as_of)


def require_region(rt: Session, region: str) -> None:
    """Refuse a region's figures to caseworkers and supervisors of another region."""
    who = reader(rt)
    if not who.may_read(region):
        raise RuleViolationError(
            "actor-responsible",
            f"actor.organisation: {who.organisation} may not read the cases of {region}",
        )


def require_canton_wide(rt: Session, what: str) -> None:
    """Refuse `what` to caseworkers and supervisors (the access log names persons of every
    region and who read them: auditors, administrators and system actors read it)."""
    who = reader(rt)
    if who.role not in CANTON_WIDE_ROLES:
        raise RuleViolationError(
            "canton-wide-reader",
            f"actor.role: {what} is read by auditors, administrators and system actors, "
            f"not by a {who.role}",
        )


def require_personal_data(rt: Session) -> None:
    """Refuse personal data to auditors (they read cases without it)."""
    if reader(rt).role == "auditor":
        raise RuleViolationError(
            "auditor-without-personal-data",
            "actor.role: an auditor reads cases without personal data (`audit state`, "
            "`case history`)",
        )


def log_case_read(rt: Session, case: Case, fields: tuple[str, ...], command: str) -> None:
    """Append the read of `case` to the access log before anything is shown; ConfigError
    (exit 3, nothing shown) if the log cannot be written."""
    who = reader(rt)
    entries = case_read_entries(
        case, at=datetime.now(UTC), consumer=who.consumer, scope=who.scope, fields=fields,
        endpoint=f"nervenbahn {command}",
    )
    log_reads(rt, entries, "case")


def log_reads(rt: Session, entries: list[AccessEntry], what: str) -> None:
    """Append `entries` to the access log before anything is shown; ConfigError (exit 3,
    nothing shown) naming `what` if the log cannot be written."""
    path = rt.settings.api.access_log
    try:
        log = SQLiteAccessLog(path)
        try:
            for entry in entries:
                log.append(entry)
        finally:
            log.close()
    except AccessLogUnavailableError as exc:
        raise ConfigError(
            f"NERVENBAHN_ACCESS_LOG: {exc}; the {what} is not shown without an access-log entry"
        ) from None
