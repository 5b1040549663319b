"""Errors raised by the domain, in the user's terms.

Every error names what was wrong (a field or a rule) so that the one line the CLI or an
API prints is enough to correct the input. Nothing is recorded when one is raised.
`NervenbahnError`, the root of every error of the project, lives here too: the domain imports
nothing of ours, so every package can import it.
"""

from __future__ import annotations

__all__ = [
    "ApplicationNotFoundError",
    "CaseNotFoundError",
    "ConcurrentChangeError",
    "DomainError",
    "ImportRejectedError",
    "InvalidCommandError",
    "NervenbahnError",
    "ReferenceDataError",
    "RuleViolationError",
]


class NervenbahnError(Exception):
    """Something nervenbahn refused or could not do; the root of every error of ours.

    Each package has one root under it (`DomainError`, `bus.errors.BusError`,
    `projections.framework.ProjectionError`, `connectors.errors.ConnectorError`,
    `nervenbahn.audit.errors.AuditError`, `nervenbahn.api.errors.ApiError`, `ConfigError`,
    `StoreUnavailableError`, ...): it lives here because the domain imports nothing of ours.
    """


class DomainError(NervenbahnError):
    """Something the domain refused; nothing was recorded."""


class InvalidCommandError(DomainError):
    """A command's input is malformed: a field is missing, of the wrong type or out of range."""

    def __init__(self, command: str, problems: list[tuple[str, str]]) -> None:
        self.command = command
        self.problems = problems
        detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
        super().__init__(f"{command} rejected: {detail}")


class RuleViolationError(DomainError):
    """A well-formed command breaks a rule of the case process (a forbidden transition)."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"{message} [rule: {rule}]")


class CaseNotFoundError(DomainError):
    """No case with the given id has been recorded (at the requested time)."""

    def __init__(self, case_id: object, as_of: object | None = None) -> None:
        self.case_id = case_id
        when = f" as of {as_of}" if as_of is not None else ""
        super().__init__(f"case {case_id} not found{when}")


class ApplicationNotFoundError(DomainError):
    """No benefit application with the given id has been recorded, or none the actor may see:
    an application outside an office's municipalities gets this very answer (as a case of
    another social region gets `CaseNotFoundError`)."""

    def __init__(self, application_id: object) -> None:
        self.application_id = application_id
        super().__init__(f"application {application_id} not found")


class ConcurrentChangeError(DomainError):
    """Someone else changed the case since it was read; reload and retry."""

    def __init__(self, case_id: object) -> None:
        self.case_id = case_id
        super().__init__(
            f"case {case_id} was changed by someone else in the meantime; "
            "nothing was recorded, reload the case and retry"
        )


class ReferenceDataError(DomainError):
    """Reference data (regions, municipalities, SKOS amounts) lacks what a command needs."""


class ImportRejectedError(DomainError):
    """A legacy import file was refused; nothing of it was recorded."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        where = f" at line {line}" if line is not None else ""
        super().__init__(f"import rejected{where}: {message}; nothing was imported")
