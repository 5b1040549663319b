"""Commands: what a caller asks the case core to do, validated before anything happens.

Every command names its actor and carries a correlation id; both are recorded with each event
it causes. Commands have no timestamp: the store decides when it learned a fact.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from domain.errors import InvalidCommandError
from domain.money import CHF, NonNegativeCHF
from domain.personal_data import normalise_ahvn13

__all__ = [
    "COMMANDS",
    "EARLIEST_YEAR",
    "LATEST_YEAR",
    "MAX_COMBINING_MARKS",
    "Actor",
    "AdjustBasicNeeds",
    "AdvanceEndReason",
    "AgreeGoal",
    "BreakOffMeasure",
    "CaseCommand",
    "ChangeBudget",
    "CloseCase",
    "ClosureReason",
    "Command",
    "CommitmentKind",
    "CompleteAssessment",
    "CompleteMeasure",
    "CompleteReview",
    "DismissProposal",
    "EndAdvance",
    "GrantSupport",
    "HandOverCase",
    "HouseholdStructure",
    "MeasureKind",
    "OpenCase",
    "PersonInput",
    "ProposeClosure",
    "ProposeHandover",
    "RecordGoalOutcome",
    "RecordReimbursement",
    "RecordReimbursementPaid",
    "RefuseSupport",
    "ReopenCase",
    "StartAdvance",
    "StartMeasure",
    "build_validators",
    "is_invisible",
    "parse_command",
    "printable_text",
    "swiss_today",
    "with_a_letter",
]

_INVISIBLE = regex.compile(
    r"[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}"
    r"\N{BRAILLE PATTERN BLANK}]|[^\S ]"
)
"""What no name or code may hold, as it prints as nothing or not as itself: control characters
(Cc: ANSI escapes start with one), format characters (Cf: bidi overrides, zero-width spaces and
joiners, soft hyphens), surrogates, private-use and unassigned code points, line and paragraph
separators; every Default_Ignorable_Code_Point (Unicode's own list, kept current by the `regex`
module: the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, variation selectors, the combining
grapheme joiner …); the blank Braille pattern; and any white space but the plain space
(no-break, ideographic, …)."""
MAX_COMBINING_MARKS = 3
"""At most this many combining marks on one base character (after NFC): more stack into
unreadable text ("Zalgo") and hide what the base letters are."""
_MARK_RUN = regex.compile(r"\p{M}{" + str(MAX_COMBINING_MARKS + 1) + ",}")


def is_invisible(char: str) -> bool:
    """Whether `char` is one that no text may hold (see `printable_text`)."""
    return _INVISIBLE.match(char) is not None


def printable_text(value: str) -> str:
    """`value` in NFC if every character is visible or a plain space and no character carries
    more than `MAX_COMBINING_MARKS` combining marks; ValueError naming the first offending code
    points otherwise. Such characters let a name print differently from what was recorded (a
    terminal's escape sequences, reversed text, stacked accents) or look empty."""
    if value.isascii() and value.isprintable():
        # Printable ASCII is NFC and holds no invisible character or mark: the common case,
        # answered without the Unicode checks (~1 µs instead of ~15 µs; imports check
        # about three texts per record).
        return value
    value = unicodedata.normalize("NFC", value)
    bad = sorted({f"U+{ord(char):04X}" for char in _INVISIBLE.findall(value)})
    if bad:
        raise ValueError(
            f"contains control or invisible characters ({', '.join(bad[:3])}); "
            "give the text as it is printed"
        )
    stacked = _MARK_RUN.search(value)
    if stacked:
        raise ValueError(
            f"has {len(stacked.group())} combining marks on one character at position "
            f"{stacked.start()}; at most {MAX_COMBINING_MARKS} are allowed"
        )
    return value


def with_a_letter(value: str) -> str:
    """`value` if it holds at least one letter (visible: `printable_text` comes first)."""
    if not any(unicodedata.category(char).startswith("L") for char in value):
        raise ValueError("must contain at least one letter")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(printable_text),
    AfterValidator(with_a_letter),
]
"""A name, street or town: printable text with at least one letter."""
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(printable_text),
]
Role = Literal[
    "caseworker", "supervisor", "administrator", "system", "branch_office", "fund_officer"
]
"""Social-region staff (caseworker, supervisor), canton-wide roles (administrator, system),
and the compensation fund's pathway (`domain.benefits`): staff of an AKSO branch office
(organisation: the office's id, e.g. akso-olten) and the fund's officers (organisation: akso)."""
Need = Literal[
    "financial", "housing", "health", "employment", "childcare", "debt", "language", "other"
]
Employability = Literal["employable", "partially_employable", "not_employable"]
RefusalReason = Literal[
    "income_sufficient", "assets_above_limit", "not_resident", "documents_missing", "other"
]
GoalCategory = Literal["employment", "education", "health", "housing", "finances", "social"]
MeasureKind = Literal[
    "job_coaching",
    "language_course",
    "rav_registration",
    "qualification",
    "social_integration",
    "other",
]
BreakOffReason = Literal["no_show", "health", "found_employment", "unsuitable", "other"]
BudgetChangeReason = Literal[
    "income_change", "rent_change", "household_change", "premium_change", "correction"
]
ReviewOutcome = Literal["continue", "adjust", "close_recommended"]
ClosureReason = Literal["employment", "other_insurance", "moved_away", "death", "other"]
ReopenReason = Literal["reapplication", "closed_in_error"]
ProposedClosureReason = Literal["death", "moved_away"]
DismissalReason = Literal["not_applicable", "already_handled", "register_error", "other"]
CommitmentKind = Literal["commitment", "payment_order"]
"""What the person signed for an advance (SKOS F.2): a commitment to repay from the benefit
(Verpflichtung/Abtretung) or a payment order to the fund (Zahlungsanweisung)."""
AdvanceEndReason = Literal["decided", "withdrawn"]
"""Why a caller ends an advance; the closing of the case ends it too (reason case_closed)."""
ExternalReference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]
"""A connector's identity of one input record (e.g. a delivery's messageId and event index)."""


def _date_input(value: Any) -> Any:
    if isinstance(value, int | float | bool):
        raise ValueError("a date must be given as YYYY-MM-DD, not as a number")
    return value


_SWISS_TIME = ZoneInfo("Europe/Zurich")
"""Today is judged in Switzerland (as `domain.case.SWISS_TIME`, which imports this module)."""
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
"""Every date a command carries lies in these years (as at the CLI's and the API's edges):
far beyond any real date, with room for the arithmetic on it (next day, month, review)."""


def _within_years(value: date) -> date:
    if value.year < EARLIEST_YEAR:
        raise ValueError(f"must be {EARLIEST_YEAR} or later")
    if value.year > LATEST_YEAR:
        raise ValueError(f"must be {LATEST_YEAR} or earlier")
    return value


Day = Annotated[date, BeforeValidator(_date_input), AfterValidator(_within_years)]


def swiss_today() -> date:
    """Today in Switzerland: the day every rule about "today" judges (a server's own clock may
    be in UTC, an hour behind Swiss midnight in winter, two in summer)."""
    return datetime.now(_SWISS_TIME).date()


def _not_in_the_future(value: date) -> date:
    today = swiss_today()
    if value > today:
        raise ValueError(f"lies in the future (after {today.isoformat()})")
    return value
Count = Annotated[int, Strict()]
"""An integer given as an integer: no booleans, no strings."""


@dataclass(frozen=True)
class Actor:
    """Who issues a command: a user id, their role and their organisation."""

    user_id: Code
    role: Role
    organisation: Code


class Command(BaseModel):
    """Base of all commands: immutable, no unknown fields, actor and correlation id required.

    Each command's validator is built when it is first used, not when this module is imported
    (`defer_build`): a CLI command validates one of them, and building all took about 20 ms
    of every start (benchmarks/cli_start.py)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )
    name: ClassVar[str]

    actor: Actor
    correlation_id: UUID

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_command(self.name, exc) from exc


class CaseCommand(Command):
    """A command addressed to an existing case."""

    case_id: UUID
    expected_version: Count | None = Field(default=None, ge=1, le=2**63 - 1)


class PersonInput(BaseModel):
    """Identifying data of a household member as entered; only ever stored encrypted."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )

    person_id: UUID | None = None
    given_name: Name
    family_name: Name
    ahvn13: Annotated[str, AfterValidator(normalise_ahvn13)]
    birth_date: Annotated[Day, AfterValidator(_not_in_the_future)]
    street: Name
    postal_code: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{3}$")]
    town: Name


HouseholdStructure = Literal[
    "one_person", "single_parent", "couple_with_children", "couple_without_children", "other"
]
"""The household structure (case type) the federal social-assistance statistics (BFS SHS)
publish their case counts by: one-person cases (Einpersonenfälle), single parents
(Alleinerziehende), couples with children (Paare mit Kindern), couples without children (Paare
ohne Kinder); `other` for any other household (e.g. siblings, an adult child with a parent).
Source: the BFS annual social-assistance statistics' case types as summarised in "Einsame
Fälle" (Die Sozialzahl, Surprise street magazine, citing the BFS statistics of 2014: 40 %
one-person cases, 29 % single parents, 25 % couples with children, 6 % couples without
children), https://surprise.ngo/angebote/strassenmagazin/news/news/einsame-faelle/ .
`other` is ours (no published share). Not personal data by itself."""

_LEAST_PERSONS: dict[str, int] = {
    "one_person": 1, "single_parent": 2, "couple_with_children": 3,
    "couple_without_children": 2, "other": 2,
}
"""The fewest persons a household of each structure has (`other` is never one person alone)."""


class OpenCase(Command):
    """Intake (Anmeldung): a household applies in its municipality."""

    name: ClassVar[str] = "open_case"
    case_id: UUID | None = None
    municipality_bfs: Count = Field(ge=1, le=9999)
    household_size: Count = Field(ge=1, le=20)
    applicant: PersonInput
    other_members: list[PersonInput] = Field(default_factory=list, max_length=19)
    application_date: Day | None = None
    household_structure: HouseholdStructure | None = None
    """For the federal statistics; None when not recorded (cases opened before CaseOpened v2)."""

    @model_validator(mode="after")
    def _members_fit_household(self) -> OpenCase:
        if 1 + len(self.other_members) > self.household_size:
            raise ValueError(
                "household_size is smaller than the applicant plus the other members given"
            )
        structure = self.household_structure
        if structure is not None and (
            self.household_size < _LEAST_PERSONS[structure]
            or (structure == "one_person" and self.household_size != 1)
        ):
            raise ValueError(
                f"household_structure: {structure} does not fit a household of "
                f"{self.household_size} person(s)"
            )
        return self


class CompleteAssessment(CaseCommand):
    """Initial assessment (Erstabklärung): situation, needs and resources documented."""

    name: ClassVar[str] = "complete_assessment"
    needs: list[Need] = Field(min_length=1)
    employability: Employability
    assessment_date: Day | None = None

    @model_validator(mode="after")
    def _needs_unique(self) -> CompleteAssessment:
        if len(set(self.needs)) != len(self.needs):
            raise ValueError("needs must not repeat")
        return self


class GrantSupport(CaseCommand):
    """Decision (Entscheid): support granted with a monthly budget from `support_from`."""

    name: ClassVar[str] = "grant_support"
    support_from: Day
    housing: NonNegativeCHF
    health_insurance: NonNegativeCHF
    income: NonNegativeCHF
    decision_date: Day | None = None


class RefuseSupport(CaseCommand):
    """Decision (Entscheid): support refused, with reasons."""

    name: ClassVar[str] = "refuse_support"
    reasons: list[RefusalReason] = Field(min_length=1)
    decision_date: Day | None = None


class AgreeGoal(CaseCommand):
    """Goal agreement (Zielvereinbarung): one goal with a due date."""

    name: ClassVar[str] = "agree_goal"
    goal_id: UUID | None = None
    category: GoalCategory
    title: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=120),
        AfterValidator(printable_text),
    ]
    due_date: Day
    agreed_on: Day | None = None


class RecordGoalOutcome(CaseCommand):
    """A goal was achieved or missed."""

    name: ClassVar[str] = "record_goal_outcome"
    goal_id: UUID
    outcome: Literal["achieved", "missed"]
    outcome_date: Day | None = None


class StartMeasure(CaseCommand):
    """An integration measure starts (job coaching, language course, RAV registration…)."""

    name: ClassVar[str] = "start_measure"
    measure_id: UUID | None = None
    kind: MeasureKind
    start_date: Day | None = None


class CompleteMeasure(CaseCommand):
    """An integration measure was completed."""

    name: ClassVar[str] = "complete_measure"
    measure_id: UUID
    end_date: Day | None = None


class BreakOffMeasure(CaseCommand):
    """An integration measure was broken off."""

    name: ClassVar[str] = "break_off_measure"
    measure_id: UUID
    reason: BreakOffReason
    end_date: Day | None = None


class ChangeBudget(CaseCommand):
    """The budget changes from an effective date, which may lie in the past (bounded)."""

    name: ClassVar[str] = "change_budget"
    effective_date: Day
    reason: BudgetChangeReason
    housing: NonNegativeCHF
    health_insurance: NonNegativeCHF
    income: NonNegativeCHF
    household_size: Count | None = Field(default=None, ge=1, le=20)


class AdjustBasicNeeds(CaseCommand):
    """The yearly adjustment: basic needs at `year`'s rate from 1 January, for the household
    size the line in force was priced for; only that line changes, and nothing is recorded
    where it is at that rate already. A system actor's command (`budgets adjust-basic-needs`)."""

    name: ClassVar[str] = "adjust_basic_needs"
    year: int = Field(ge=2000, le=2100)


class CompleteReview(CaseCommand):
    """Periodic review, at least yearly."""

    name: ClassVar[str] = "complete_review"
    outcome: ReviewOutcome
    review_date: Day | None = None


class HandOverCase(CaseCommand):
    """Handover (Fallübergabe): the household moves to a municipality of another region."""

    name: ClassVar[str] = "hand_over_case"
    to_municipality_bfs: Count = Field(ge=1, le=9999)
    effective_date: Day | None = None


class CloseCase(CaseCommand):
    """Closure (Ablösung) with a reason from the fixed list."""

    name: ClassVar[str] = "close_case"
    reason: ClosureReason
    closing_date: Day | None = None


class ReopenCase(CaseCommand):
    """A closed case is reopened; it starts again with an assessment."""

    name: ClassVar[str] = "reopen_case"
    reason: ReopenReason
    reopening_date: Day | None = None


class ProposeHandover(CaseCommand):
    """A connected register reports a move to a municipality of another social region: put a
    handover on the case's work list (never a handover itself)."""

    name: ClassVar[str] = "propose_handover"
    external_reference: ExternalReference
    source: Code
    to_municipality_bfs: Count = Field(ge=1, le=9999)
    effective_date: Day


class ProposeClosure(CaseCommand):
    """A connected register reports a death or a move out of the canton: put a closure on the
    case's work list (never a closure itself)."""

    name: ClassVar[str] = "propose_closure"
    external_reference: ExternalReference
    source: Code
    reason: ProposedClosureReason
    effective_date: Day


class DismissProposal(CaseCommand):
    """A caseworker takes a proposal off the work list without acting on it."""

    name: ClassVar[str] = "dismiss_proposal"
    external_reference: ExternalReference
    reason: DismissalReason


class StartAdvance(CaseCommand):
    """Advance living costs in view of a pending benefit application (EL to AHV or IV) of the
    case's applicant or a household member, from `advance_from`, with the person's written
    commitment or payment order (both fields required by rule `advance-requires-commitment`,
    SKOS F.2)."""

    name: ClassVar[str] = "start_advance"
    application_id: UUID
    advance_from: Day
    commitment_kind: CommitmentKind | None = None
    commitment_date: Day | None = None


class EndAdvance(CaseCommand):
    """End the advance for a benefit application that was decided or withdrawn."""

    name: ClassVar[str] = "end_advance"
    application_id: UUID
    reason: AdvanceEndReason
    ended_on: Day | None = None


class RecordReimbursement(CaseCommand):
    """Record what the social service claims back from an EL decision for the months it
    advanced (ELV Art. 22 para. 4 and 5), from the facts as known now: the EL owed per month
    (`el`, first days of months), what the case was paid per month (`paid`, netted), the
    premium reductions the canton paid (`ipv`), the decision's day and the monthly EL from the
    decision's month on (`monthly_el`, for the budget proposal). The case computes the claim
    and records only the difference to what it claimed before; a system actor's command."""

    name: ClassVar[str] = "record_reimbursement"
    application_id: UUID
    decided_on: Day
    el: dict[Day, NonNegativeCHF]
    paid: dict[Day, CHF]
    ipv: dict[Day, NonNegativeCHF] = Field(default_factory=dict)
    monthly_el: NonNegativeCHF


PaymentMessageId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=35)
]
"""The fund's payment file as ISO 20022 names it (pain.001 `MsgId`, at most 35 characters)."""


class RecordReimbursementPaid(CaseCommand):
    """Record that the fund paid a claim the case recorded (the `ReimbursementRecorded` at
    `claim_version`, of `application_id`): `to_region` to the social region and `to_person` to
    the person on `paid_on`, in its payment file `message_id`. The case checks the amounts
    against the claim; the same payment twice records nothing; a system actor's command (the
    fund-decisions connector)."""

    name: ClassVar[str] = "record_reimbursement_paid"
    application_id: UUID
    claim_version: Count = Field(ge=1, le=2**31 - 1)
    paid_on: Day
    to_region: NonNegativeCHF
    to_person: NonNegativeCHF
    message_id: PaymentMessageId


COMMANDS: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        OpenCase,
        CompleteAssessment,
        GrantSupport,
        RefuseSupport,
        AgreeGoal,
        RecordGoalOutcome,
        StartMeasure,
        CompleteMeasure,
        BreakOffMeasure,
        ChangeBudget,
        AdjustBasicNeeds,
        CompleteReview,
        HandOverCase,
        CloseCase,
        ReopenCase,
        ProposeHandover,
        ProposeClosure,
        DismissProposal,
        StartAdvance,
        EndAdvance,
        RecordReimbursement,
        RecordReimbursementPaid,
    )
}
"""Every command by its snake_case name, as used in import files and the CLI's JSON input."""


def parse_command(name: str, data: dict[str, Any]) -> Command:
    """Validate `data` as the command called `name`; raise InvalidCommandError naming each field."""
    try:
        command_class = COMMANDS[name]
    except KeyError:
        known = ", ".join(sorted(COMMANDS))
        raise InvalidCommandError(name, [("command", f"unknown command; known: {known}")]) from None
    try:
        return command_class.model_validate(data)
    except ValidationError as exc:
        raise invalid_command(name, exc) from exc


def invalid_command(name: str, exc: ValidationError) -> InvalidCommandError:
    """Translate pydantic's errors into an InvalidCommandError naming field and reason."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "command"
        reason = error["msg"].removeprefix("Value error, ")
        problems.append((field, reason))
    return InvalidCommandError(name, problems)


def build_validators() -> None:
    """Build now the validator of every command class defined so far, and of `PersonInput`
    (each is otherwise built on its first use, see `Command`). A server calls this before
    it serves: no request then pays for a build, and no two of its threads build the same
    validator at once (pydantic releases before the rebuild lock gave a wrong validator or
    an error then)."""
    pending: list[type[BaseModel]] = [PersonInput, Command]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if not model.__pydantic_complete__:
            model.model_rebuild()
