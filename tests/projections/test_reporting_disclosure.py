"""Small-count protection of published quarterly figures, on figures worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from projections.reporting import CANTON, CLOSURE_REASONS, RegionQuarter
from projections.reporting_disclosure import DEFAULT_MIN_COUNT, withheld


def figures(region: str, closed: dict[str, int], **counts: Any) -> RegionQuarter:
    values: dict[str, Any] = {
        "new_cases": 0, "decisions": 0, "supported_cases": 0, "with_goal_agreement": 0,
        "measures_started": 0, "measures_completed": 0, "median_duration_days": None,
        "median_days_to_decision": None, **counts,
    }
    reasons = {reason: closed.get(reason, 0) for reason in CLOSURE_REASONS}
    return RegionQuarter(region=region, quarter="2026Q1", closed_cases=sum(reasons.values()),
                         closures_by_reason=reasons, **values)


# Three regions and their canton (every count of the canton the sum of the regions'):
#
#            new  closed (employment, other)  decisions  supported  with goal  started  done
#   r1        12   7 (4, 3)                    9          20         18 (2 without) 6     0
#   r2         3   5 (5, 0)                    4           8          6 (2 without) 7     5
#   r3        10   0                           6           9          3 (6 without) 0     0
#   canton    25  12 (9, 3)                   19          37         27 (10 without) 13   5
R1 = figures("r1", {"employment": 4, "other": 3}, new_cases=12, decisions=9,
             supported_cases=20, with_goal_agreement=18, measures_started=6,
             median_duration_days=80.0, median_days_to_decision=14.0)
R2 = figures("r2", {"employment": 5}, new_cases=3, decisions=4, supported_cases=8,
             with_goal_agreement=6, measures_started=7, measures_completed=5,
             median_duration_days=40.0, median_days_to_decision=11.5)
R3 = figures("r3", {}, new_cases=10, decisions=6, supported_cases=9, with_goal_agreement=3,
             median_days_to_decision=20.0)
ALL = figures(CANTON, {"employment": 9, "other": 3}, new_cases=25, decisions=19,
              supported_cases=37, with_goal_agreement=27, measures_started=13,
              measures_completed=5, median_duration_days=60.0, median_days_to_decision=14.0)


def test_small_counts_and_what_would_reveal_them_are_withheld() -> None:
    cells = withheld([R1, R2, R3], ALL, min_count=5)

    assert cells == {
        # primary: counts 1..4, medians and shares over fewer than 5 cases
        ("r1", "closed_employment"), ("r1", "closed_other"),                     # 4, 3
        ("r1", "with_goal_agreement"), ("r1", "goal_agreement_share"),           # 2 without
        ("r2", "new_cases"), ("r2", "decisions"), ("r2", "median_days_to_decision"),  # 3, 4
        ("r2", "with_goal_agreement"), ("r2", "goal_agreement_share"),           # 2 without
        ("r3", "with_goal_agreement"), ("r3", "goal_agreement_share"),           # 3
        (CANTON, "closed_other"),                                                # 3
        # secondary: the canton's other closures (3) = 12 - 9 employment: 9 withheld too;
        # r2's new cases (3) = 25 - 12 - 10: the smaller other, r3's 10, withheld too;
        # r2's decisions (4) = 19 - 9 - 6: r3's 6 withheld too
        (CANTON, "closed_employment"), ("r3", "new_cases"), ("r3", "decisions"),
    }
    # r3's median days to decision is over 6 decisions: shown though the count is withheld
    assert ("r3", "median_days_to_decision") not in cells


def test_a_lone_small_reason_withholds_its_partner_in_the_row() -> None:
    # 2 deaths = 6 closures - 4 other: the 4 is withheld too, though it is not small.
    region = figures("r1", {"death": 2, "other": 4})
    canton = figures(CANTON, {"death": 2, "other": 4})

    cells = withheld([region], canton, min_count=3)

    assert cells == {("r1", "closed_death"), (CANTON, "closed_death"),
                     ("r1", "closed_other"), (CANTON, "closed_other")}


@pytest.mark.parametrize("min_count", [0, 1])
def test_a_minimum_of_one_or_less_withholds_nothing(min_count: int) -> None:
    assert withheld([R1, R2, R3], ALL, min_count) == frozenset()


def test_the_default_minimum_is_five_and_a_negative_one_is_refused() -> None:
    assert DEFAULT_MIN_COUNT == 5
    assert withheld([R1, R2, R3], ALL) == withheld([R1, R2, R3], ALL, 5)
    with pytest.raises(ValueError, match="min_count: -1 is negative"):
        withheld([R1, R2, R3], ALL, -1)
