"""Malformed input for every command: each is rejected with an error naming the field.

One table per command plus rows shared by all commands (actor, correlation id, unknown
fields) and by all commands addressed to a case. Each row starts from a well-formed payload
and changes one thing.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain import commands
from domain.commands import swiss_today
from domain.errors import InvalidCommandError

from .case_desk import OMIT, CommandFactory, person_input

ACTOR = {"user_id": "anna.keller", "role": "caseworker", "organisation": "so-solothurn"}
Row = Any
"""(what is wrong, fields to override, the field the error must name), or a pytest.param of
those three carrying marks."""

EVERY_COMMAND: list[Row] = [
    ("actor missing", {"actor": OMIT}, "actor"),
    ("actor not an object", {"actor": "anna.keller"}, "actor"),
    ("actor role unknown", {"actor": {**ACTOR, "role": "boss"}}, "actor.role"),
    ("actor without organisation", {"actor": {"user_id": "a", "role": "caseworker"}},
     "actor.organisation"),
    ("actor user id blank", {"actor": {**ACTOR, "user_id": "   "}}, "actor.user_id"),
    ("actor with unknown field", {"actor": {**ACTOR, "email": "a@b.ch"}}, "actor.email"),
    ("correlation id missing", {"correlation_id": OMIT}, "correlation_id"),
    ("correlation id not a uuid", {"correlation_id": "req-42"}, "correlation_id"),
    ("unknown extra field", {"priority": "high"}, "priority"),
    ("recorded time given", {"recorded_at": "2025-01-01T00:00:00+00:00"}, "recorded_at"),
]

CASE_COMMAND: list[Row] = [
    ("case id missing", {"case_id": OMIT}, "case_id"),
    ("case id of wrong type", {"case_id": 42}, "case_id"),
    ("case id not a uuid", {"case_id": "case-42"}, "case_id"),
    ("expected version zero", {"expected_version": 0}, "expected_version"),
    ("expected version of wrong type", {"expected_version": "two"}, "expected_version"),
]

_BAD_AHVN13 = "756.1234.5678.98"  # check digit should be 7
_FUTURE = date(swiss_today().year + 2, 1, 1).isoformat()
"""A day in the future however long the run takes (taken at collection)."""
"""A birth date that lies in the future whatever the day the tests run."""

PER_COMMAND: dict[str, list[Row]] = {
    "open_case": [
        ("municipality missing", {"municipality_bfs": OMIT}, "municipality_bfs"),
        ("municipality of wrong type", {"municipality_bfs": "Solothurn"}, "municipality_bfs"),
        ("municipality number zero", {"municipality_bfs": 0}, "municipality_bfs"),
        ("municipality number too long", {"municipality_bfs": 26010}, "municipality_bfs"),
        ("household size missing", {"household_size": OMIT}, "household_size"),
        ("household size zero", {"household_size": 0}, "household_size"),
        ("household size above 20", {"household_size": 21}, "household_size"),
        ("household size smaller than members",
         {"household_size": 2, "other_members": [person_input(2), person_input(3)]},
         "household_size"),
        ("household structure not a BFS code", {"household_structure": "flat_share"},
         "household_structure"),
        ("household structure of the wrong type", {"household_structure": 1},
         "household_structure"),
        ("one-person structure for three persons",
         {"household_size": 3, "household_structure": "one_person"}, "household_structure"),
        ("couple with children of two persons",
         {"household_size": 2, "household_structure": "couple_with_children"},
         "household_structure"),
        ("applicant missing", {"applicant": OMIT}, "applicant"),
        ("ahvn13 with bad check digit", {"applicant": person_input(1, ahvn13=_BAD_AHVN13)},
         "applicant.ahvn13"),
        ("ahvn13 without 756 prefix",
         {"applicant": person_input(1, ahvn13="755.1234.5678.97")}, "applicant.ahvn13"),
        ("ahvn13 too short", {"applicant": person_input(1, ahvn13="756.1234.5678")},
         "applicant.ahvn13"),
        ("postal code with letters", {"applicant": person_input(1, postal_code="45A0")},
         "applicant.postal_code"),
        ("postal code with leading zero", {"applicant": person_input(1, postal_code="0450")},
         "applicant.postal_code"),
        ("postal code of five digits", {"applicant": person_input(1, postal_code="45000")},
         "applicant.postal_code"),
        ("given name blank", {"applicant": person_input(1, given_name="  ")},
         "applicant.given_name"),
        ("family name missing", {"applicant": person_input(1, family_name=OMIT)},
         "applicant.family_name"),
        ("birth date before 1900", {"applicant": person_input(1, birth_date="1899-12-31")},
         "applicant.birth_date"),
        ("birth date not a date", {"applicant": person_input(1, birth_date="12.04.1980")},
         "applicant.birth_date"),
        ("birth date in the future", {"applicant": person_input(1, birth_date=_FUTURE)},
         "applicant.birth_date"),
        ("birth date of a member in the future",
         {"household_size": 2, "other_members": [person_input(2, birth_date=_FUTURE)]},
         "other_members.0.birth_date"),
        ("given name with an ANSI escape",
         {"applicant": person_input(1, given_name="Zora\x1b[2J\x1b[31m")},
         "applicant.given_name"),
        ("family name with a bidi override",
         {"applicant": person_input(1, family_name="\u202eQuellmatt")},
         "applicant.family_name"),
        ("given name only a zero-width space",
         {"applicant": person_input(1, given_name="\u200b")}, "applicant.given_name"),
        ("family name only a zero-width joiner between spaces",
         {"applicant": person_input(1, family_name=" \u200d ")}, "applicant.family_name"),
        ("family name without a letter", {"applicant": person_input(1, family_name="1234")},
         "applicant.family_name"),
        ("given name only a Hangul choseong filler",
         {"applicant": person_input(1, given_name="\u115f")}, "applicant.given_name"),
        ("family name only a halfwidth Hangul filler",
         {"applicant": person_input(1, family_name="\uffa0")}, "applicant.family_name"),
        ("street a Hangul filler and a number",
         {"applicant": person_input(1, street="\u3164 1")}, "applicant.street"),
        ("town only a Hangul jungseong filler",
         {"applicant": person_input(1, town="\u1160")}, "applicant.town"),
        ("given name with a Hangul filler inside",
         {"applicant": person_input(1, given_name="Zo\u3164ra")}, "applicant.given_name"),
        ("family name with a combining grapheme joiner",
         {"applicant": person_input(1, family_name="Quell\u034fmatt")}, "applicant.family_name"),
        ("given name with a variation selector",
         {"applicant": person_input(1, given_name="Zora\ufe0f")}, "applicant.given_name"),
        ("town only a blank Braille pattern",
         {"applicant": person_input(1, town="\u2800")}, "applicant.town"),
        ("street only no-break and ideographic spaces",
         {"applicant": person_input(1, street="\u00a0\u3000")}, "applicant.street"),
        ("family name with eight combining accents on one letter",
         {"applicant": person_input(1, family_name="Q" + "\u0301\u0300\u0302\u0303" * 2)},
         "applicant.family_name"),
        ("member name with four combining marks on a letter (after composing i + acute)",
         {"household_size": 2,
          "other_members": [person_input(2, given_name="Li\u0301\u0300\u0302\u0303\u0304a")]},
         "other_members.0.given_name"),
        ("town with a line break inside", {"applicant": person_input(1, town="Ol\nten")},
         "applicant.town"),
        ("street with a bell character", {"applicant": person_input(1, street="Weg\x07 1")},
         "applicant.street"),
        ("member name with a line separator",
         {"household_size": 2,
          "other_members": [person_input(2, given_name="Lia\u2028Admin")]},
         "other_members.0.given_name"),
        ("applicant with unknown field", {"applicant": person_input(1, nickname="Ueli")},
         "applicant.nickname"),
        ("person id not a uuid", {"applicant": person_input(1, person_id="p-1")},
         "applicant.person_id"),
        ("other member with bad ahvn13",
         {"household_size": 2, "other_members": [person_input(2, ahvn13=_BAD_AHVN13)]},
         "other_members.0.ahvn13"),
        ("other members not a list", {"other_members": person_input(2)}, "other_members"),
        ("more than 19 other members",
         {"household_size": 20, "other_members": [person_input(n) for n in range(2, 22)]},
         "other_members"),
        ("application date malformed", {"application_date": "2025-13-01"}, "application_date"),
        pytest.param("household size given as a bool", {"household_size": True},
                     "household_size"),
    ],
    "complete_assessment": [
        ("needs missing", {"needs": OMIT}, "needs"),
        ("needs empty", {"needs": []}, "needs"),
        ("need unknown", {"needs": ["money"]}, "needs.0"),
        ("needs repeated", {"needs": ["housing", "housing"]}, "needs"),
        ("needs not a list", {"needs": "housing"}, "needs"),
        ("employability missing", {"employability": OMIT}, "employability"),
        ("employability unknown", {"employability": "lazy"}, "employability"),
        ("assessment date malformed", {"assessment_date": "yesterday"}, "assessment_date"),
    ],
    "grant_support": [
        ("support start missing", {"support_from": OMIT}, "support_from"),
        ("support start malformed", {"support_from": "1.11.2025"}, "support_from"),
        ("housing missing", {"housing": OMIT}, "housing"),
        ("housing as float", {"housing": 1200.5}, "housing"),
        ("premium with three decimals", {"health_insurance": "350.125"}, "health_insurance"),
        ("income negative", {"income": "-1.00"}, "income"),
        ("income not a number", {"income": "a lot"}, "income"),
        ("housing not finite", {"housing": "NaN"}, "housing"),
        ("housing infinite", {"housing": "Infinity"}, "housing"),
        ("housing beyond ten integer digits", {"housing": "12345678901.00"}, "housing"),
        ("premium as bool", {"health_insurance": True}, "health_insurance"),
        ("decision date before 1900", {"decision_date": "1899-01-01"}, "decision_date"),
        pytest.param("support start given as a number", {"support_from": 0}, "support_from",
                     ),
    ],
    "refuse_support": [
        ("reasons missing", {"reasons": OMIT}, "reasons"),
        ("reasons empty", {"reasons": []}, "reasons"),
        ("reason unknown", {"reasons": ["too_rich"]}, "reasons.0"),
        ("decision date malformed", {"decision_date": "soon"}, "decision_date"),
    ],
    "agree_goal": [
        ("category missing", {"category": OMIT}, "category"),
        ("category unknown", {"category": "leisure"}, "category"),
        ("title too short", {"title": "ok"}, "title"),
        ("title too long", {"title": "x" * 121}, "title"),
        ("title with an ANSI escape", {"title": "Find a job\x1b]0;owned\x07"}, "title"),
        ("title blank", {"title": "     "}, "title"),
        ("due date missing", {"due_date": OMIT}, "due_date"),
        ("due date malformed", {"due_date": "next year"}, "due_date"),
        ("goal id not a uuid", {"goal_id": "goal-1"}, "goal_id"),
    ],
    "record_goal_outcome": [
        ("goal id missing", {"goal_id": OMIT}, "goal_id"),
        ("outcome missing", {"outcome": OMIT}, "outcome"),
        ("outcome unknown", {"outcome": "partly"}, "outcome"),
        ("outcome date malformed", {"outcome_date": "2025-02-30"}, "outcome_date"),
    ],
    "start_measure": [
        ("kind missing", {"kind": OMIT}, "kind"),
        ("kind unknown", {"kind": "yoga"}, "kind"),
        ("measure id not a uuid", {"measure_id": 7}, "measure_id"),
        ("start date malformed", {"start_date": "monday"}, "start_date"),
    ],
    "complete_measure": [
        ("measure id missing", {"measure_id": OMIT}, "measure_id"),
        ("measure id not a uuid", {"measure_id": "m-1"}, "measure_id"),
        ("end date malformed", {"end_date": "2025/12/01"}, "end_date"),
    ],
    "break_off_measure": [
        ("measure id missing", {"measure_id": OMIT}, "measure_id"),
        ("reason missing", {"reason": OMIT}, "reason"),
        ("reason unknown", {"reason": "bored"}, "reason"),
    ],
    "adjust_basic_needs": [
        ("year missing", {"year": OMIT}, "year"),
        ("year before 2000", {"year": 1999}, "year"),
        ("year as text", {"year": "next"}, "year"),
    ],
    "change_budget": [
        ("effective date missing", {"effective_date": OMIT}, "effective_date"),
        ("effective date malformed", {"effective_date": "2025-11"}, "effective_date"),
        ("reason missing", {"reason": OMIT}, "reason"),
        ("reason unknown", {"reason": "inflation"}, "reason"),
        ("housing missing", {"housing": OMIT}, "housing"),
        ("income as float", {"income": 100.0}, "income"),
        ("housing with three decimals", {"housing": "1200.005"}, "housing"),
        ("premium negative", {"health_insurance": "-0.05"}, "health_insurance"),
        ("premium negative integer", {"health_insurance": -5}, "health_insurance"),
        ("household size zero", {"household_size": 0}, "household_size"),
        ("household size above 20", {"household_size": 21}, "household_size"),
        ("household size of wrong type", {"household_size": "three"}, "household_size"),
    ],
    "complete_review": [
        ("outcome missing", {"outcome": OMIT}, "outcome"),
        ("outcome unknown", {"outcome": "fine"}, "outcome"),
        ("review date malformed", {"review_date": "today"}, "review_date"),
    ],
    "hand_over_case": [
        ("municipality missing", {"to_municipality_bfs": OMIT}, "to_municipality_bfs"),
        ("municipality number zero", {"to_municipality_bfs": 0}, "to_municipality_bfs"),
        ("municipality of wrong type", {"to_municipality_bfs": "Olten"}, "to_municipality_bfs"),
        ("effective date malformed", {"effective_date": "1.1.2026"}, "effective_date"),
    ],
    "close_case": [
        ("reason missing", {"reason": OMIT}, "reason"),
        ("reason unknown", {"reason": "bored"}, "reason"),
        ("closing date malformed", {"closing_date": "end of month"}, "closing_date"),
    ],
    "reopen_case": [
        ("reason missing", {"reason": OMIT}, "reason"),
        ("reason unknown", {"reason": "boredom"}, "reason"),
        ("reopening date before 1900", {"reopening_date": "1800-01-01"}, "reopening_date"),
    ],
    "propose_handover": [
        ("reference missing", {"external_reference": OMIT}, "external_reference"),
        ("reference empty", {"external_reference": "  "}, "external_reference"),
        ("source missing", {"source": OMIT}, "source"),
        ("municipality of wrong type", {"to_municipality_bfs": "Olten"}, "to_municipality_bfs"),
        ("effective date missing", {"effective_date": OMIT}, "effective_date"),
    ],
    "propose_closure": [
        ("reference too long", {"external_reference": "x" * 121}, "external_reference"),
        ("reason not proposable", {"reason": "employment"}, "reason"),
        ("effective date malformed", {"effective_date": "2026-13-01"}, "effective_date"),
    ],
    "dismiss_proposal": [
        ("reference missing", {"external_reference": OMIT}, "external_reference"),
        ("reason unknown", {"reason": "lazy"}, "reason"),
    ],
    "start_advance": [
        ("application missing", {"application_id": OMIT}, "application_id"),
        ("application not a uuid", {"application_id": "el-17"}, "application_id"),
        ("advance start missing", {"advance_from": OMIT}, "advance_from"),
        ("commitment kind unknown", {"commitment_kind": "promise"}, "commitment_kind"),
        ("commitment date malformed", {"commitment_date": "3.11.2025"}, "commitment_date"),
    ],
    "end_advance": [
        ("application missing", {"application_id": OMIT}, "application_id"),
        ("reason missing", {"reason": OMIT}, "reason"),
        ("reason unknown", {"reason": "case_closed"}, "reason"),
        ("end date malformed", {"ended_on": "today"}, "ended_on"),
    ],
    "record_reimbursement": [
        ("decision day missing", {"decided_on": OMIT}, "decided_on"),
        ("EL month malformed", {"el": {"May": "1900.00"}}, "el"),
        ("EL negative", {"el": {"2025-11-01": "-1.00"}}, "el"),
        ("paid as a float", {"paid": {"2025-11-01": 2400.5}}, "paid"),
        ("monthly EL missing", {"monthly_el": OMIT}, "monthly_el"),
    ],
    "record_reimbursement_paid": [
        ("claim version missing", {"claim_version": OMIT}, "claim_version"),
        ("claim version zero", {"claim_version": 0}, "claim_version"),
        ("claim version as text", {"claim_version": "5"}, "claim_version"),
        ("paid day malformed", {"paid_on": "today"}, "paid_on"),
        ("region amount negative", {"to_region": "-1.00"}, "to_region"),
        ("person amount as a float", {"to_person": 200.5}, "to_person"),
        ("message id too long", {"message_id": "m" * 36}, "message_id"),
        ("message id empty", {"message_id": " "}, "message_id"),
    ],
}


def _table() -> list[Any]:
    rows: list[Any] = []
    for name, command_class in commands.COMMANDS.items():
        is_case_command = issubclass(command_class, commands.CaseCommand)
        shared = EVERY_COMMAND + (CASE_COMMAND if is_case_command else [])
        for row in [*shared, *PER_COMMAND[name]]:
            # A row is a plain tuple, or a pytest.param (itself a tuple) carrying marks.
            values, marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
            label, overrides, field = values
            rows.append(pytest.param(name, overrides, field, marks=marks, id=f"{name}: {label}"))
    return rows


def _names(field: str, where: str, reason: str) -> bool:
    """True if a problem is about `field`: at it, inside it, or (model checks) naming it."""
    return where == field or where.startswith(f"{field}.") or field in reason


@pytest.mark.parametrize(("name", "overrides", "field"), _table())
def test_invalid_input_is_rejected_naming_the_field(
    make_command: CommandFactory, name: str, overrides: dict[str, Any], field: str
) -> None:
    payload = make_command.payload(name, **overrides)

    with pytest.raises(InvalidCommandError) as info:
        commands.parse_command(name, payload)

    error = info.value
    assert error.command == name
    assert str(error).startswith(f"{name} rejected: ")
    assert field in str(error)
    assert error.problems
    assert all(_names(field, where, reason) for where, reason in error.problems)


@pytest.mark.parametrize(("name", "overrides", "field"), _table())
def test_building_a_command_directly_rejects_the_same_input(
    make_command: CommandFactory, name: str, overrides: dict[str, Any], field: str
) -> None:
    payload = make_command.payload(name, **overrides)

    with pytest.raises(InvalidCommandError) as info:
        commands.COMMANDS[name](**payload)

    assert field in str(info.value)


def test_every_command_has_a_table_of_invalid_inputs() -> None:
    assert set(PER_COMMAND) == set(commands.COMMANDS)
    assert all(len(rows) >= 2 for rows in PER_COMMAND.values())


@pytest.mark.parametrize("name", sorted(commands.COMMANDS))
def test_the_well_formed_payload_of_every_command_is_accepted(
    make_command: CommandFactory, name: str
) -> None:
    command = commands.parse_command(name, make_command.payload(name))
    assert isinstance(command, commands.COMMANDS[name])
    assert command.name == name


def test_unknown_command_name_is_rejected_listing_the_known_ones() -> None:
    with pytest.raises(InvalidCommandError) as info:
        commands.parse_command("delete_case", {})

    assert info.value.problems[0][0] == "command"
    assert all(name in str(info.value) for name in commands.COMMANDS)


def test_every_problem_of_a_command_is_reported(make_command: CommandFactory) -> None:
    payload = make_command.payload("grant_support", housing=1.5, income="-1", support_from=OMIT)

    with pytest.raises(InvalidCommandError) as info:
        commands.parse_command("grant_support", payload)

    assert {field for field, _ in info.value.problems} == {"housing", "income", "support_from"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("1200.50", Decimal("1200.50")), (1200, Decimal("1200")), ("0", Decimal("0")),
     ("1200.500", Decimal("1200.5"))],
)
def test_money_input_is_kept_as_decimal(
    make_command: CommandFactory, given: object, kept: Decimal
) -> None:
    command = make_command("change_budget", housing=given)

    assert isinstance(command, commands.ChangeBudget)
    assert isinstance(command.housing, Decimal)
    assert command.housing == kept


@pytest.mark.parametrize("written", ["7561234567897", "756.1234.5678.97", " 756.1234.5678.97 "])
def test_ahvn13_is_kept_in_its_printed_form(make_command: CommandFactory, written: str) -> None:
    command = make_command("open_case", applicant=person_input(1, ahvn13=written))

    assert isinstance(command, commands.OpenCase)
    assert command.applicant.ahvn13 == "756.1234.5678.97"


def test_text_input_is_stripped(make_command: CommandFactory) -> None:
    command = make_command("agree_goal", title="  Find a job  ")

    assert isinstance(command, commands.AgreeGoal)
    assert command.title == "Find a job"


@pytest.mark.parametrize("name", [
    "Zoë", "Nguye\u0302\u0303n", "김민준", "Ægir O'Brien-Müller", "Łukasz", "Ἀλέξανδρος",
    "Q\u0301\u0300\u0302", "Ŝ\u0323\u0307",
])
def test_visible_names_of_any_script_are_accepted_in_nfc(
    make_command: CommandFactory, name: str
) -> None:
    command = make_command(
        "open_case", applicant=person_input(1, given_name=name, family_name=name))

    assert isinstance(command, commands.OpenCase)
    assert command.applicant.given_name == unicodedata.normalize("NFC", name)


def test_commands_cannot_be_changed_after_validation(make_command: CommandFactory) -> None:
    command = make_command("close_case")
    assert isinstance(command, commands.CloseCase)

    with pytest.raises(ValueError, match="frozen"):
        command.reason = "death"


@pytest.mark.parametrize("name", ["Zoë", "Zo\u0308e", "O'Brien-Müller", "Ærøskøbing",
                                  "Nguyễn", "Jean Pierre"])
def test_names_as_printed_are_accepted_in_composed_form(
    make_command: CommandFactory, name: str
) -> None:
    command = commands.parse_command(
        "open_case", make_command.payload("open_case", applicant=person_input(1, given_name=name)))

    assert isinstance(command, commands.OpenCase)
    assert command.applicant.given_name == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize("code_point", range(128))
def test_each_ascii_character_is_judged_as_the_unicode_rules_judge_it(code_point: int) -> None:
    # printable_text answers printable ASCII without the Unicode checks: the same answer.
    text = f"a{chr(code_point)}b"
    if commands.is_invisible(chr(code_point)):
        with pytest.raises(ValueError, match="control or invisible"):
            commands.printable_text(text)
    else:
        assert commands.printable_text(text) == text
