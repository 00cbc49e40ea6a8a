"""Validating and converting time-to-live and duration arguments."""

from __future__ import annotations

import math

from redkit.errors import ConfigurationError


def seconds_to_ms(seconds: float, name: str = "ttl") -> int:
    """``seconds`` (a positive int or float) as whole milliseconds, at least 1."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(
            f"{name} must be a number of seconds, got {type(seconds).__name__}: {seconds!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {seconds!r}")
    return max(1, round(seconds * 1000))


def non_negative(seconds: float, name: str) -> float:
    """``seconds`` checked to be a finite number >= 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(f"{name} must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {seconds!r}")
    return float(seconds)
