"""The Lua scripts and their in-process twins give the same answers, at injected times.

One table of cases (``limiter_cases.CASES``, with the expected verdicts written out) runs
against both; a property then drives both with random steps and compares every verdict. The
scripts run on real servers (standalone and Cluster) with ``TIME`` replaced by the case's
clock; everything else in them is the shipped text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit._core.ratelimit_algorithms import (
    GCRA,
    Algorithm,
    FixedWindow,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
)
from redkit._sync.connection import connect
from tests.limiter_cases import CASES, T0, Case, S, Twin, run_lua


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = request.getfixturevalue(f"{request.param}_server")
    redis = connect(server.url)
    yield redis
    redis.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_scripts_answer_as_the_table_says(client: Any, case: Case) -> None:
    algorithm = case.make()
    key = f"twins:{{{case.name}}}"
    client.delete(key)
    for at, cost, consume, expected in case.steps:
        got = run_lua(client, algorithm, key, T0 + at, cost, consume)
        assert tuple(got) == expected, (case.name, at, cost, consume)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_twins_answer_as_the_table_says(case: Case) -> None:
    twin = Twin(case.make())
    for at, cost, consume, expected in case.steps:
        assert tuple(twin.step(T0 + at, cost, consume)) == expected, (case.name, at, cost)


def _algorithms() -> st.SearchStrategy[Algorithm]:
    limits = st.integers(1, 6)
    seconds = st.sampled_from([0.001, 0.3, 1.0, 2.5, 10.0])
    return st.one_of(
        st.builds(FixedWindow, limits, seconds),
        st.builds(SlidingWindowLog, limits, seconds),
        st.builds(SlidingWindowLog, st.integers(7, 60), seconds),  # longer logs to search
        st.builds(SlidingWindowCounter, limits, seconds),
        st.builds(TokenBucket, limits, st.sampled_from([0.1, 0.5, 1.0, 3.0, 7.3]), seconds),
        st.builds(GCRA, limits, seconds, st.one_of(st.none(), limits)),
    )


def _window_of(algorithm: Algorithm) -> int:
    if isinstance(algorithm, TokenBucket):
        return algorithm.interval_us
    if isinstance(algorithm, GCRA):
        return algorithm.period_us // algorithm.limit
    return algorithm.window_us


def _gaps(window: int) -> st.SearchStrategy[int]:
    """Gaps between steps: anything, none at all, and the edges of windows (k * window +- 1)."""
    edges = st.builds(
        lambda k, d: max(0, k * window + d), st.integers(1, 2), st.sampled_from([-1, 0, 1])
    )
    return st.one_of(st.integers(0, 3 * S), st.just(0), edges)


@given(data=st.data(), algorithm=_algorithms())
def test_script_and_twin_agree_on_any_sequence(
    standalone_server: Any, data: st.DataObject, algorithm: Algorithm
) -> None:
    steps = data.draw(
        st.lists(
            st.tuples(_gaps(_window_of(algorithm)), st.integers(0, 7), st.booleans()),
            min_size=1,
            max_size=25,
        )
    )
    client = _shared_client(standalone_server.url)
    key = "twins:{property}"
    client.delete(key)
    twin = Twin(algorithm)
    now = T0
    for gap, cost, consume in steps:
        now += gap
        assert run_lua(client, algorithm, key, now, cost, consume) == twin.step(now, cost, consume)


def test_a_flood_of_expired_log_entries_goes_a_thousand_per_hit_and_never_counts(
    client: Any,
) -> None:
    """1,500 hits a microsecond apart, then a time when 1,201 of them have expired: a hit
    removes 1,000 (no hit pays for a whole flood), counts only the live 299, and the next
    denial's retry is found among the live entries behind the 201 expired ones left."""
    algorithm = SlidingWindowLog(5000, 10)
    key = "twins:{flood}"
    client.delete(key)
    twin = Twin(algorithm)
    for i in range(1500):
        assert run_lua(client, algorithm, key, T0 + i, 1, True) == twin.step(T0 + i, 1, True)
    now = T0 + 10 * S + 1200
    assert run_lua(client, algorithm, key, now, 1, True) == twin.step(now, 1, True)
    assert twin.step(now, 0, False).remaining == 5000 - 300
    assert client.zcard(key) == 1500 - 1000 + 1
    denied = run_lua(client, algorithm, key, now, 4701, True)
    assert denied == twin.step(now, 4701, True) == (0, 4700, 10 * S, 1)
    assert client.zcard(key) == 300  # the denied hit removed the 201 left, added nothing


_CLIENTS: dict[str, Any] = {}


def _shared_client(url: str) -> Any:
    if url not in _CLIENTS:
        _CLIENTS[url] = connect(url)
    return _CLIENTS[url]


@pytest.mark.parametrize(
    "make",
    [lambda: TokenBucket(1, 0.5), lambda: GCRA(1, 2.0)],
    ids=["token bucket", "GCRA"],
)
def test_half_a_request_per_second_admits_five_in_ten_seconds(client: Any, make: Any) -> None:
    """One attempt every 100 ms for 10 s at 0.5 requests/s: admitted at 0, 2, 4, 6 and 8 s."""
    algorithm = make()
    key = "twins:{half-rate}"
    client.delete(key)
    twin = Twin(algorithm)
    admitted_lua, admitted_twin = [], []
    for tick in range(100):
        now = T0 + tick * S // 10
        if run_lua(client, algorithm, key, now, 1, True).allowed:
            admitted_lua.append(tick / 10)
        if twin.step(now, 1, True).allowed:
            admitted_twin.append(tick / 10)
    assert admitted_lua == admitted_twin == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_the_sliding_counter_stays_within_its_documented_error_under_concurrency(
    client: Any,
) -> None:
    """A previous window that took all 100 at its very end (the worst case), then 64 clients
    x 4 hits at once halfway through the next window: the estimate admits exactly 50, so the
    span of one window ending now holds 150 = limit + previous * elapsed share, the bound the
    limiter documents (and no more: the script is atomic under concurrency)."""
    from concurrent.futures import ThreadPoolExecutor

    algorithm = SlidingWindowCounter(100, 10)
    key = "twins:{counter-bound}"
    client.delete(key)
    assert run_lua(client, algorithm, key, T0, 1, True).allowed  # the window starts at T0
    assert run_lua(client, algorithm, key, T0 + 10 * S - 1, 99, True).allowed  # its very end
    halfway = T0 + 15 * S

    def one_client(_: int) -> int:
        return sum(run_lua(client, algorithm, key, halfway, 1, True).allowed for _ in range(4))

    with ThreadPoolExecutor(64) as pool:
        admitted = sum(pool.map(one_client, range(64)))
    assert admitted == 50
    previous, elapsed_share = 100, 0.5
    assert 100 + admitted <= algorithm.limit + previous * elapsed_share
