"""Argument checks that say what was wrong and what is allowed."""
from __future__ import annotations

import math


def check_temperature(temperature):
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"temperature must be a number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(
            f"temperature must be a finite number > 0 (1 = ordinary softmax, "
            f"larger = softer), got {temperature!r}"
        )
    return t


def check_alpha(alpha):
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number, got {alpha!r}") from None
    if not (0.0 <= a <= 1.0):  # also rejects NaN
        raise ValueError(
            f"alpha must be in [0, 1] (0 = hard labels only, 1 = teacher only), got {alpha!r}"
        )
    return a


def check_choice(what, value, allowed):
    if value not in allowed:
        valid = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"unknown {what} {value!r}; valid {what}s are: {valid}")
    return value
