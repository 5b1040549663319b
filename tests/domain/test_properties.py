"""Properties of the case process under random command sequences (hypothesis, stateful).

The machine issues random well-formed commands (some of them against the rules, some by
actors of another region, some with a stale expected version, some malformed) to one case of
an in-memory service, with a clock it moves forward. After every step it checks the
invariants against the stored events, and that replaying them gives the stored state.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from domain import commands
from domain.case import Case
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
)
from domain.reference import load_reference_data

from .case_desk import Desk, person_input, replay

REFERENCE = load_reference_data()
MUNICIPALITIES = sorted(REFERENCE.municipalities)
REGIONS = sorted(REFERENCE.regions)

MACHINE_SETTINGS = settings(
    max_examples=50, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PHASE_AFTER = {
    "CaseOpened": "intake", "AssessmentCompleted": "assessed", "SupportGranted": "supported",
    "SupportRefused": "refused", "CaseClosed": "closed", "CaseReopened": "intake",
}
EVENTS_OF = {
    "complete_assessment": {"AssessmentCompleted"}, "grant_support": {"SupportGranted"},
    "refuse_support": {"SupportRefused"}, "agree_goal": {"GoalAgreed"},
    "record_goal_outcome": {"GoalAchieved", "GoalMissed"}, "start_measure": {"MeasureStarted"},
    "complete_measure": {"MeasureCompleted"}, "break_off_measure": {"MeasureBrokenOff"},
    "change_budget": {"BudgetChanged"}, "complete_review": {"ReviewCompleted"},
    "hand_over_case": {"CaseHandedOver"}, "close_case": {"CaseClosed"},
    "reopen_case": {"CaseReopened"},
}
PHASE_REQUIRED = {
    "complete_assessment": "intake", "grant_support": "assessed", "refuse_support": "assessed",
    "agree_goal": "supported", "record_goal_outcome": "supported",
    "start_measure": "supported", "complete_measure": "supported",
    "break_off_measure": "supported", "change_budget": "supported",
    "complete_review": "supported", "reopen_case": "closed",
}
GOAL_NEXT = {"open": {"open", "achieved", "missed"}, "achieved": {"achieved"},
             "missed": {"missed"}}
MEASURE_NEXT = {"running": {"running", "completed", "broken_off"},
                "completed": {"completed"}, "broken_off": {"broken_off"}}
NEXT_STEPS = {
    "intake": ["complete_assessment"],
    "assessed": ["grant_support"] * 4 + ["refuse_support"],
    "supported": ["agree_goal", "record_goal_outcome", "start_measure", "complete_measure",
                  "break_off_measure", "change_budget", "complete_review", "hand_over_case",
                  "close_case"],
    "refused": ["close_case", "hand_over_case"],
    "closed": ["reopen_case"],
}
JUNK: list[Any] = [None, "", "x", -1, 0, 1.5, [], {}, "1.005", "2025-13-40", "-5.00"]

money = st.decimals(min_value=0, max_value=3000, places=2).map(str)
# Income stays below every basic-needs amount: the clamped total of a budget change whose
# income exceeds the needs is a known bug (see test_case_casework.py), not re-found here.
income = st.decimals(min_value=0, max_value=900, places=2).map(str)


class CaseProcessMachine(RuleBasedStateMachine):
    """Random command sequences against one case; invariants checked after every step."""

    def __init__(self, desk: Desk) -> None:
        super().__init__()
        self.desk = desk
        self.case_id: UUID | None = None
        self.ids = itertools.count(1)
        self.goal_ids: list[UUID] = []
        self.measure_ids: list[UUID] = []
        self.goal_status: dict[str, str] = {}
        self.measure_status: dict[str, str] = {}

    # --- commands --------------------------------------------------------------------------

    @initialize(data=st.data())
    def open_case(self, data: st.DataObject) -> None:
        bfs = data.draw(st.sampled_from(MUNICIPALITIES), label="municipality")
        size = data.draw(st.integers(min_value=1, max_value=7), label="household_size")
        members = data.draw(st.integers(min_value=0, max_value=min(2, size - 1)))
        back = data.draw(st.integers(min_value=0, max_value=300), label="days back")
        actor = commands.Actor("intake", "caseworker", REFERENCE.municipality(bfs).region_id)
        result = self.desk.run(
            "open_case", actor=actor, municipality_bfs=bfs, household_size=size,
            other_members=[person_input(n) for n in range(2, members + 2)],
            application_date=self.desk.today - timedelta(days=back),
        )
        self.case_id = result.case_id
        # A head start, so that most examples spend their steps in the later phases.
        head_start = data.draw(st.sampled_from(["intake", "assessed", "supported", "supported"]))
        if head_start != "intake":
            self.desk.run("complete_assessment", actor=actor, case_id=self.case_id)
        if head_start == "supported":
            self.desk.run("grant_support", actor=actor, case_id=self.case_id,
                          support_from=self._case().opened_on.replace(day=1),
                          housing=data.draw(money), health_insurance=data.draw(money),
                          income=data.draw(income))

    @rule(days=st.integers(min_value=0, max_value=60), hours=st.integers(0, 23))
    def time_passes(self, days: int, hours: int) -> None:
        self.desk.clock.advance(days=days, hours=hours)

    @rule(data=st.data(), name=st.sampled_from(sorted(EVENTS_OF)))
    def any_command(self, data: st.DataObject, name: str) -> None:
        """Any case command, whatever the phase, by any actor."""
        self._issue(data, name, self._fields(data, name))

    @rule(data=st.data())
    def next_step_of_the_process(self, data: st.DataObject) -> None:
        """A command the process expects in the current phase, by the responsible actor."""
        name = data.draw(st.sampled_from(NEXT_STEPS[self._case().phase]), label="next step")
        self._issue(data, name, self._fields(data, name), who="responsible")

    def _fields(self, data: st.DataObject, name: str) -> dict[str, Any]:
        today, opened = self.desk.today, self._case().opened_on
        draw = data.draw
        if name == "complete_assessment":
            return {"needs": draw(st.lists(st.sampled_from(get_args(commands.Need)), min_size=1,
                                           unique=True)),
                    "employability": draw(st.sampled_from(get_args(commands.Employability)))}
        if name == "grant_support":
            starts = [opened.replace(day=1), opened, today.replace(day=1), today,
                      today + timedelta(days=40), opened - timedelta(days=40)]
            return {"support_from": draw(st.sampled_from(starts)), "housing": draw(money),
                    "health_insurance": draw(money), "income": draw(income)}
        if name == "refuse_support":
            return {"reasons": draw(st.lists(st.sampled_from(get_args(commands.RefusalReason)),
                                             min_size=1))}
        if name == "agree_goal":
            return {"goal_id": self._new_or_known(data, self.goal_ids),
                    "category": draw(st.sampled_from(get_args(commands.GoalCategory))),
                    "due_date": today + timedelta(days=draw(st.integers(-3, 400)))}
        if name == "record_goal_outcome":
            return {"goal_id": self._known_or_new(data, self.goal_ids),
                    "outcome": draw(st.sampled_from(["achieved", "missed"])),
                    "outcome_date": self._day(data, st.integers(-30, 1))}
        if name == "start_measure":
            return {"measure_id": self._new_or_known(data, self.measure_ids),
                    "kind": draw(st.sampled_from(get_args(commands.MeasureKind))),
                    "start_date": self._day(data, st.integers(-30, 100))}
        if name in ("complete_measure", "break_off_measure"):
            fields = {"measure_id": self._known_or_new(data, self.measure_ids),
                      "end_date": self._day(data, st.integers(-30, 1))}
            if name == "break_off_measure":
                fields["reason"] = draw(st.sampled_from(get_args(commands.BreakOffReason)))
            return fields
        if name == "change_budget":
            return {"effective_date": today + timedelta(days=draw(st.integers(-400, 100))),
                    "reason": draw(st.sampled_from(get_args(commands.BudgetChangeReason))),
                    "housing": draw(money), "health_insurance": draw(money),
                    "income": draw(income),
                    "household_size": draw(st.one_of(st.none(), st.integers(1, 8)))}
        if name == "complete_review":
            return {"outcome": draw(st.sampled_from(get_args(commands.ReviewOutcome))),
                    "review_date": self._day(data, st.integers(-60, 1))}
        if name == "hand_over_case":
            return {"to_municipality_bfs": draw(st.sampled_from(MUNICIPALITIES)),
                    "effective_date": self._day(data, st.integers(-10, 100))}
        if name == "close_case":
            return {"reason": draw(st.sampled_from(get_args(commands.ClosureReason))),
                    "closing_date": self._day(data, st.integers(-30, 1))}
        assert name == "reopen_case"
        return {"reason": draw(st.sampled_from(get_args(commands.ReopenReason))),
                "reopening_date": self._day(data, st.integers(-30, 1))}

    @rule(data=st.data())
    def malformed(self, data: st.DataObject) -> None:
        """A random malformed command: rejected whole, nothing recorded."""
        name = data.draw(st.sampled_from(sorted(EVENTS_OF)), label="command")
        actor = self._actor("responsible", self._case().social_region)
        payload = self.desk.commands.payload(name, case_id=self.case_id, actor=actor)
        fields = commands.COMMANDS[name].model_fields
        required = sorted(f for f, info in fields.items() if info.is_required())
        how = data.draw(st.sampled_from(["drop", "junk", "extra"]), label="corruption")
        if how == "drop":
            payload.pop(data.draw(st.sampled_from(required)))
        elif how == "junk":
            payload[data.draw(st.sampled_from(sorted(fields)))] = data.draw(st.sampled_from(JUNK))
        else:
            payload["recorded_at"] = "2020-01-01T00:00:00+00:00"
        before = self.desk.store_state(self.case_id)
        try:
            command = commands.parse_command(name, payload)
        except InvalidCommandError as error:
            roots = {where.split(".")[0] for where, _ in error.problems}
            assert roots <= {*fields, "recorded_at", "command"}
            assert self.desk.store_state(self.case_id) == before
            return
        # The junk happened to be acceptable (e.g. None for an optional field).
        self._execute(name, command, "responsible", stale=False)

    # --- issuing and checking one command --------------------------------------------------

    def _issue(
        self, data: st.DataObject, name: str, fields: dict[str, Any], who: str | None = None
    ) -> None:
        case = self._case()
        if who is None:
            who = data.draw(st.sampled_from(["responsible"] * 4 + ["stranger", "administrator"]))
        version = data.draw(st.sampled_from([None] * 4 + ["current", "stale"]))
        expected = {None: None, "current": case.version, "stale": case.version + 1}[version]
        command = self.desk.commands(
            name, case_id=self.case_id, actor=self._actor(who, case.social_region),
            expected_version=expected, **fields,
        )
        self._execute(name, command, who, stale=version == "stale")

    def _execute(self, name: str, command: commands.Command, who: str, *, stale: bool) -> None:
        before_case = self._case()
        before = self.desk.store_state(self.case_id)
        try:
            result = self.desk.service.execute(command)
        except DomainError as error:
            assert self.desk.store_state(self.case_id) == before, "a refusal recorded something"
            self._check_refusal(name, error, before_case, who, stale=stale)
            return
        assert who != "stranger" and not stale
        assert result.version == before_case.version + 1
        assert len(result.events) == 1 and result.events[0] in EVENTS_OF[name]
        required = PHASE_REQUIRED.get(name)
        assert required is None or before_case.phase == required
        assert before_case.phase != "closed" or name == "reopen_case"

    def _check_refusal(
        self, name: str, error: DomainError, case: Case, who: str, *, stale: bool
    ) -> None:
        rule_name = getattr(error, "rule", None)
        # A stranger learns nothing about the case, not even its version: the case is not
        # found before the expected version or any rule is looked at.
        assert isinstance(error, CaseNotFoundError) == (who == "stranger")
        if who == "stranger":
            return
        if isinstance(error, ConcurrentChangeError):
            assert stale
            return
        assert not stale
        assert rule_name != "actor-responsible"
        if who != "stranger" and case.phase == "closed" and name != "reopen_case":
            assert rule_name == "closed-case-only-reopens"

    # --- helpers ---------------------------------------------------------------------------

    def _case(self) -> Case:
        assert self.case_id is not None
        return self.desk.case(self.case_id)

    def _actor(self, who: str, region: str) -> commands.Actor:
        if who == "administrator":
            return commands.Actor("admin", "administrator", "canton")
        if who == "stranger":
            other = next(r for r in REGIONS if r != region)
            return commands.Actor("stranger", "caseworker", other)
        return commands.Actor("caseworker", "caseworker", region)

    def _new_or_known(self, data: st.DataObject, known: list[UUID]) -> UUID:
        if known and data.draw(st.integers(0, 4)) == 0:
            return data.draw(st.sampled_from(known))
        known.append(UUID(int=next(self.ids)))
        return known[-1]

    def _known_or_new(self, data: st.DataObject, known: list[UUID]) -> UUID:
        if known and data.draw(st.integers(0, 4)) > 0:
            return data.draw(st.sampled_from(known))
        return UUID(int=10**6 + next(self.ids))

    def _day(self, data: st.DataObject, offsets: st.SearchStrategy[int]) -> date | None:
        offset = data.draw(st.one_of(st.none(), offsets))
        return None if offset is None else self.desk.today + timedelta(days=offset)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    @precondition(lambda self: self.case_id is not None)
    def stored_events_explain_the_state(self) -> None:
        case, events = self._case(), self.desk.events(self.case_id)  # type: ignore[arg-type]
        assert case.version == len(events) == events[-1].originator_version
        assert vars(replay(events)) == vars(case)
        assert case.phase == _phase_from(events)
        assert case.decision is None or case.assessment is not None
        timestamps = [event.timestamp for event in events]
        assert timestamps == sorted(timestamps)
        assert all(event.actor and event.correlation_id for event in events)

    @invariant()
    @precondition(lambda self: self.case_id is not None)
    def money_is_decimal_francs_and_totals_add_up(self) -> None:
        case = self._case()
        for budget in case.budgets:
            amounts = [line.amount for line in budget.lines]
            assert all(_two_places(amount) for amount in [*amounts, budget.total])
            assert budget.total == sum(amounts, Decimal("0.00"))
        assert not _has_float(vars(case))

    @invariant()
    @precondition(lambda self: self.case_id is not None)
    def goals_and_measures_only_move_forward(self) -> None:
        case = self._case()
        _advance(self.goal_status, {k: g.status for k, g in case.goals.items()}, GOAL_NEXT)
        _advance(self.measure_status, {k: m.status for k, m in case.measures.items()},
                 MEASURE_NEXT)

    @invariant()
    @precondition(lambda self: self.case_id is not None)
    def social_region_is_the_region_of_the_municipality(self) -> None:
        case = self._case()
        assert REFERENCE.municipality(case.municipality_bfs).region_id == case.social_region


def _phase_from(events: list[Any]) -> str:
    """The phase the events lead to; checks decision-after-assessment and closed-only-reopens."""
    phase = ""
    for recorded in events:
        kind = type(recorded).__name__
        if kind in ("SupportGranted", "SupportRefused"):
            assert phase == "assessed", f"{kind} without assessment"
        if kind == "AssessmentCompleted":
            assert phase == "intake"
        if phase == "closed":
            assert kind == "CaseReopened", f"{kind} recorded on a closed case"
        phase = PHASE_AFTER.get(kind, phase)
    return phase


def _advance(seen: dict[str, str], now: dict[str, str], allowed: dict[str, set[str]]) -> None:
    assert set(seen) <= set(now), "a goal or measure disappeared"
    for key, status in now.items():
        if key in seen:
            assert status in allowed[seen[key]], f"{key}: {seen[key]} -> {status}"
        seen[key] = status


def _two_places(amount: object) -> bool:
    return isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_float(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_float(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def test_random_command_sequences_keep_the_case_invariants(
    new_desk: Callable[[], Desk],
) -> None:
    class OnAFreshDesk(CaseProcessMachine):
        def __init__(self) -> None:
            super().__init__(new_desk())

    run_state_machine_as_test(OnAFreshDesk, settings=MACHINE_SETTINGS)
