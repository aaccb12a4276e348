"""Whether a setting is a number of the kind it must be: checked where settings are given
(a worker class, a budget, a supervisor), so that a wrong one fails there, not in a run."""

from __future__ import annotations

import math

__all__ = ["is_amount", "is_count"]


def is_count(value: object, least: int) -> bool:
    """An int of at least `least` (a bool is not a count, though Python takes it for an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def is_amount(value: object, *, positive: bool = False) -> bool:
    """A real number, 0 or more (more than 0 when `positive`): no bool, no NaN; infinity is
    an amount (no limit)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return False
    return value > 0 if positive else value >= 0
