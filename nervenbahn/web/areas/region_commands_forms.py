"""The caseworker's command forms, described once each: which fields, labelled how, entered
how (a date, an amount, a number, text, one of the command's `Literal` values, several of
them as checkboxes, or one of the case's own goals, measures, proposals or advances, or one of
the pending EL applications of the household's persons).

`FORMS` holds a `CommandForm` per command of `domain.commands` a caseworker issues (not the
connectors' `propose_*` and `record_reimbursement*`); one template renders them all. What a
field accepts and whether it is required is read from the command's model, never repeated
here: the domain decides, the form only collects (`payload_of`) and shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from starlette.datastructures import FormData

from domain.commands import COMMANDS, PersonInput
from nervenbahn.web.i18n import N_

__all__ = ["FORMS", "CommandForm", "Input", "literal_values",
           "payload_of", "values_of"]

Kind = Literal["date", "amount", "number", "text", "select", "checkboxes", "municipality",
               "goal", "measure", "proposal", "advance", "application"]
"""How a field is entered: `select`/`checkboxes` offer the command's Literal values;
`municipality`, `goal`, `measure`, `proposal`, `advance` offer the region's municipalities or
the case's open goals, running measures, open proposals or open advances; `application` the
pending EL applications of the household's persons."""


_NO_PERSONAL_DATA = N_(
    "No names or other personal data: a goal's title is not erased with the person.")
"""Free text is kept in clear and erasure does not reach it (docs/privacy.md), as the CLI's
`case goal --title` help says too."""


@dataclass(frozen=True)
class Input:
    """One field of a command form: the command's field name, its label (English source
    text), how it is entered, a hint, and the nested object it belongs to (`applicant`)."""

    name: str
    label: str
    kind: Kind = "text"
    hint: str = ""
    group: str = ""

    @property
    def integer(self) -> bool:
        """Whether the command takes the field as an integer (a form sends text)."""
        return self.kind in ("number", "municipality")


@dataclass(frozen=True)
class CommandForm:
    """A command's form: its command name, heading, submit button and fields."""

    command: str
    title: str
    submit: str
    inputs: tuple[Input, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The form's field names (where a refusal may be shown)."""
        return tuple(i.name for i in self.inputs)

    def required(self, item: Input) -> bool:
        """Whether the command requires the field (read from its model)."""
        model: type[BaseModel] = PersonInput if item.group else COMMANDS[self.command]
        return model.model_fields[item.name].is_required()

    def choices(self, item: Input) -> tuple[str, ...]:
        """The command's Literal values of a select or checkbox field."""
        model: type[BaseModel] = PersonInput if item.group else COMMANDS[self.command]
        return literal_values(model.model_fields[item.name].annotation)


def literal_values(annotation: Any) -> tuple[str, ...]:
    """The values of the Literal in `annotation` (also inside `list[…]` or `… | None`)."""
    if get_origin(annotation) is Literal:
        return tuple(str(value) for value in get_args(annotation))
    if get_origin(annotation) in (list, Union, UnionType):
        for arg in get_args(annotation):
            if found := literal_values(arg):
                return found
    return ()


def payload_of(form: CommandForm, data: FormData) -> dict[str, Any]:
    """The command's fields from a posted form, as entered (integers where the command
    takes one and the text is one; anything else is left for the domain to refuse)."""
    payload: dict[str, Any] = {}
    for item in form.inputs:
        value: Any
        if item.kind == "checkboxes":
            value = [str(v) for v in data.getlist(item.name)]
        else:
            value = str(data.get(item.name, "")).strip()
            if item.kind == "amount":  # CHF 1'234.50 as written in Switzerland
                value = value.replace("'", "").replace("\u2019", "")
            value = integer_or_text(value) if item.integer else value
        if item.group:
            if value not in ("", []):
                payload.setdefault(item.group, {})[item.name] = value
        else:
            payload[item.name] = value
    return payload


def integer_or_text(text: str) -> int | str:
    """`text` as an int if it is one (the commands take counts strictly as integers)."""
    return int(text) if text.isascii() and text.isdigit() else text


def values_of(form: CommandForm, data: FormData) -> dict[str, Any]:
    """What the user entered, to show the form again."""
    return {
        item.name: [str(v) for v in data.getlist(item.name)] if item.kind == "checkboxes"
        else str(data.get(item.name, ""))
        for item in form.inputs
    }


_EMPTY_IS_TODAY = N_("Empty: today.")
_PER_MONTH = N_("CHF per month.")


def _day(name: str, label: str) -> Input:
    return Input(name, label, "date", _EMPTY_IS_TODAY)


def _chf(name: str, label: str) -> Input:
    return Input(name, label, "amount", _PER_MONTH)


_BUDGET = (
    _chf("housing", N_("Housing costs (rent incl. ancillary costs)")),
    _chf("health_insurance", N_("Health-insurance premiums")),
    _chf("income", N_("Income")),
)
_PERSON = (
    Input("given_name", N_("Given name"), group="applicant"),
    Input("family_name", N_("Family name"), group="applicant"),
    Input("ahvn13", N_("AHV number"), group="applicant"),
    Input("birth_date", N_("Date of birth"), "date", group="applicant"),
    Input("street", N_("Street and number"), group="applicant"),
    Input("postal_code", N_("Postal code"), group="applicant"),
    Input("town", N_("Town"), group="applicant"),
)

FORMS: dict[str, CommandForm] = {f.command: f for f in (
    CommandForm("open_case", N_("Open a case"), N_("Open the case"), (
        Input("municipality_bfs", N_("Municipality"), "municipality"),
        Input("household_size", N_("Household size (persons)"), "number"),
        Input("household_structure", N_("Household structure"), "select"),
        _day("application_date", N_("Application date")),
        *_PERSON,
    )),
    CommandForm("complete_assessment", N_("Initial assessment (Erstabklärung)"),
                N_("Record the assessment"), (
        Input("needs", N_("Needs"), "checkboxes"),
        Input("employability", N_("Employability"), "select"),
        _day("assessment_date", N_("Assessment date")),
    )),
    CommandForm("grant_support", N_("Grant support"), N_("Grant support"), (
        Input("support_from", N_("Support from"), "date"),
        *_BUDGET,
        _day("decision_date", N_("Decision date")),
    )),
    CommandForm("refuse_support", N_("Refuse support"), N_("Refuse support"), (
        Input("reasons", N_("Reasons"), "checkboxes"),
        _day("decision_date", N_("Decision date")),
    )),
    CommandForm("agree_goal", N_("Agree a goal (Zielvereinbarung)"), N_("Record the goal"), (
        Input("category", N_("Category"), "select"),
        Input("title", N_("Goal"), hint=_NO_PERSONAL_DATA),
        Input("due_date", N_("Due date"), "date"),
        _day("agreed_on", N_("Agreed on")),
    )),
    CommandForm("record_goal_outcome", N_("Outcome of a goal"), N_("Record the outcome"), (
        Input("goal_id", N_("Goal"), "goal"),
        Input("outcome", N_("Outcome"), "select"),
        _day("outcome_date", N_("Outcome date")),
    )),
    CommandForm("start_measure", N_("Start a measure"), N_("Start the measure"), (
        Input("kind", N_("Kind of measure"), "select"),
        _day("start_date", N_("Start date")),
    )),
    CommandForm("complete_measure", N_("Complete a measure"), N_("Complete the measure"), (
        Input("measure_id", N_("Measure"), "measure"),
        _day("end_date", N_("End date")),
    )),
    CommandForm("break_off_measure", N_("Break off a measure"), N_("Break off the measure"), (
        Input("measure_id", N_("Measure"), "measure"),
        Input("reason", N_("Reason"), "select"),
        _day("end_date", N_("End date")),
    )),
    CommandForm("change_budget", N_("Change the budget"), N_("Change the budget"), (
        Input("effective_date", N_("Effective date"), "date"),
        Input("reason", N_("Reason"), "select"),
        *_BUDGET,
        Input("household_size", N_("Household size (persons)"), "number",
              N_("Empty: as recorded.")),
    )),
    CommandForm("complete_review", N_("Periodic review"), N_("Record the review"), (
        Input("outcome", N_("Outcome"), "select"),
        _day("review_date", N_("Review date")),
    )),
    CommandForm("hand_over_case", N_("Hand the case over (Fallübergabe)"), N_("Hand over"), (
        Input("to_municipality_bfs", N_("New municipality"), "municipality"),
        _day("effective_date", N_("Effective date")),
    )),
    CommandForm("close_case", N_("Close the case (Ablösung)"), N_("Close the case"), (
        Input("reason", N_("Reason"), "select"),
        _day("closing_date", N_("Closing date")),
    )),
    CommandForm("reopen_case", N_("Reopen the case"), N_("Reopen the case"), (
        Input("reason", N_("Reason"), "select"),
        _day("reopening_date", N_("Reopening date")),
    )),
    CommandForm("dismiss_proposal", N_("Dismiss a proposal"), N_("Dismiss the proposal"), (
        Input("external_reference", N_("Proposal"), "proposal"),
        Input("reason", N_("Reason"), "select"),
    )),
    CommandForm("start_advance", N_("Advance in view of a benefit"), N_("Start the advance"), (
        Input("application_id", N_("Benefit application"), "application",
              N_("A pending EL application of a person of the household, as the branch "
                 "office recorded it.")),
        Input("advance_from", N_("Advance from"), "date"),
        Input("commitment_kind", N_("Signed by the person"), "select"),
        Input("commitment_date", N_("Signed on"), "date"),
    )),
    CommandForm("end_advance", N_("End an advance"), N_("End the advance"), (
        Input("application_id", N_("Advance"), "advance"),
        Input("reason", N_("Reason"), "select"),
        _day("ended_on", N_("Ended on")),
    )),
)}
"""Every command a caseworker issues, by name."""
