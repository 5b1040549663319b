"""Forms: a refusal of the domain shown next to the field it names.

The web layer checks nothing itself: a form's fields go into the domain's command as they
are, and whatever the domain refuses comes back here as (field, reason) pairs:
`InvalidCommandError.problems` name the command's field (`applicant.given_name`, `housing`);
a rule (`RuleViolationError`) names its field at the start of its message (`office: …`), by
the domain's convention. What names no field of the form is shown above it. The domain's
reasons are English: the page introduces them with a sentence in the user's language and
marks them `lang="en"` (`_forms.html`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.errors import (
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
    RuleViolationError,
)

__all__ = ["Refusal", "refusal_of"]

_RULE = re.compile(r"(?P<field>[a-z_][a-z0-9_.]*): (?P<reason>.*) \[rule: (?P<rule>[^\]]+)\]$",
                   re.DOTALL)


@dataclass
class Refusal:
    """Why a form was refused: reasons by form field, and those that name no field."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    conflict: bool = False
    """The case or application changed since the form was loaded (optimistic concurrency)."""
    conflict_text: str = ""
    """What the page says of the conflict (who changed what meanwhile), if the area says it in
    the summary."""
    translated: bool = False
    """The reasons are the page's own words in the user's language; otherwise they are the
    domain's (English), which the page introduces and marks as English."""

    def __bool__(self) -> bool:
        return bool(self.fields or self.general or self.conflict)


def refusal_of(error: DomainError, form_fields: Iterable[str]) -> Refusal:
    """The refusal of `error` for a form with these field names (a command field
    `applicant.given_name` is shown at the form field `given_name` if there is no
    `applicant.given_name`)."""
    names = set(form_fields)
    refusal = Refusal()
    if isinstance(error, ConcurrentChangeError):
        refusal.conflict = True
        return refusal
    if isinstance(error, InvalidCommandError):
        problems = list(error.problems)
    elif isinstance(error, RuleViolationError) and (match := _RULE.match(str(error))):
        problems = [(match["field"], f"{match['reason']} [{match['rule']}]")]
    else:
        problems = [("", str(error))]
    for name, reason in problems:
        target = _form_field(name, names)
        if target is None:
            refusal.general.append(f"{name}: {reason}" if name else reason)
        else:
            refusal.fields.setdefault(target, []).append(reason)
    return refusal


def _form_field(name: str, names: set[str]) -> str | None:
    if name in names:
        return name
    last = name.rsplit(".", 1)[-1]
    return last if last in names else None
