"""Validating and converting time-to-live and duration arguments."""

from __future__ import annotations

import math

from redkit.errors import ConfigurationError

#: The longest TTL redkit sends: 2**53 ms (about 285,000 years). Past it a value stops being
#: exact as a double (Lua numbers are doubles) and, further on, the server refuses the expiry.
MAX_TTL_MS = 2**53


def seconds_to_ms(seconds: float, name: str = "ttl") -> int:
    """``seconds`` (a positive int or float) as whole milliseconds, at least 1."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(
            f"{name} must be a number of seconds, got {type(seconds).__name__}: {seconds!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {seconds!r}")
    if seconds > MAX_TTL_MS / 1000 or (ms := max(1, round(seconds * 1000))) > MAX_TTL_MS:
        raise ConfigurationError(
            f"{name}={seconds!r} seconds is longer than the {MAX_TTL_MS // 1000} seconds "
            "redkit can store"
        )
    return ms


def non_negative(seconds: float, name: str) -> float:
    """``seconds`` checked to be a finite number >= 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(f"{name} must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {seconds!r}")
    return float(seconds)
