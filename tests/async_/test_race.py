"""The ``race`` primitive: the first of several calls to end stops the others (both faces)."""

from __future__ import annotations

import pytest

from redkit._acompat import race
from tests._acompat import Event


async def test_the_first_to_end_stops_the_others_and_its_error_is_raised() -> None:
    stop = Event()
    ended: list[str] = []

    async def waits() -> None:
        await stop.wait(timeout=30)
        ended.append("waiter")

    async def fails() -> None:
        ended.append("failer")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await race([waits, fails, waits], stop.set)
    assert stop.is_set()
    assert ended.count("failer") == 1


async def test_a_call_that_returns_ends_the_race_quietly() -> None:
    stop = Event()
    interrupted: list[bool] = []

    async def waits() -> None:
        await stop.wait(timeout=30)

    async def returns() -> None:
        return None

    def interrupt() -> None:
        interrupted.append(True)
        stop.set()

    await race([waits, returns], interrupt)
    assert interrupted == [True]
