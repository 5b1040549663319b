"""Money in Swiss francs: `Decimal` with two decimals, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

__all__ = ["CHF", "ZERO", "NonNegativeCHF", "chf"]

ZERO = Decimal("0.00")
_CENT = Decimal("0.01")


def chf(value: Decimal | int | str) -> Decimal:
    """Return `value` as a CHF amount with exactly two decimals (half-up rounding)."""
    try:
        return Decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def _reject_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("amounts must be given as a string or integer, never as a float")
    return value


CHF = Annotated[
    Decimal,
    BeforeValidator(_reject_float),
    Field(max_digits=12, decimal_places=2, allow_inf_nan=False),
]
"""A CHF amount as accepted in commands: at most two decimals, no floats."""

NonNegativeCHF = Annotated[CHF, Field(ge=0)]
"""A CHF amount that cannot be negative (rent, premiums, income)."""
