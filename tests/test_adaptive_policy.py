"""The adaptive TTL policy (pure): the article's formula, on an injected clock."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit import ArticlePolicy, KeyMetrics
from redkit._core.adaptive_ttl import check_bounds, clamp
from redkit.errors import ConfigurationError

NOW = 1_700_000_000.0


def test_an_unread_entry_gets_the_base_ttl() -> None:
    assert ArticlePolicy(base_ttl=3600)(KeyMetrics(), NOW) == 3600


def test_the_hit_rate_lengthens_the_ttl() -> None:
    # hit rate = 3 / (3 + 0 + 1) = 0.75; last hit long ago: no boost
    metrics = KeyMetrics(hits=3, misses=0, last_hit=NOW - 3600)
    assert ArticlePolicy(base_ttl=100)(metrics, NOW) == pytest.approx(175.0)


def test_a_hit_within_the_last_minute_multiplies_by_one_and_a_half() -> None:
    policy = ArticlePolicy(base_ttl=100)
    metrics = KeyMetrics(hits=1, misses=1, last_hit=NOW - 59.9)  # rate 1/3
    assert policy(metrics, NOW) == pytest.approx(100 * (4 / 3) * 1.5)
    assert policy(metrics, NOW + 0.2) == pytest.approx(100 * (4 / 3)), "the minute is over"


def test_the_ttl_is_clamped() -> None:
    hot = KeyMetrics(hits=10**6, misses=0, last_hit=NOW)
    assert ArticlePolicy(base_ttl=3600, max_ttl=5000)(hot, NOW) == 5000
    assert ArticlePolicy(base_ttl=10, min_ttl=60)(KeyMetrics(), NOW) == 60


@given(
    hits=st.integers(0, 10**9),
    misses=st.integers(0, 10**9),
    age=st.one_of(st.none(), st.floats(0, 10**7)),
)
def test_the_policy_stays_within_its_bounds(hits: int, misses: int, age: float | None) -> None:
    policy = ArticlePolicy(base_ttl=3600, min_ttl=60, max_ttl=86400)
    last = None if age is None else NOW - age
    ttl = policy(KeyMetrics(hits, misses, last), NOW)
    assert 60 <= ttl <= 86400
    assert ttl >= 3600, "reads never shorten the base TTL"


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((0, 100, 50), "min_ttl must be a positive"),
        ((10, -1, 50), "max_ttl must be a positive"),
        ((10, 100, math.nan), "base_ttl must be a positive"),
        ((10, 100, True), "base_ttl must be a number"),
        ((10, "100", 50), "max_ttl must be a number"),
        ((200, 100, 50), r"min_ttl \(200\) must not exceed max_ttl \(100\)"),
        ((10, 1e300, 50), "max_ttl=1e\\+300 seconds is longer"),
    ],
)
def test_bad_bounds_are_refused_by_name(bounds: tuple[Any, Any, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_bounds(*bounds)


def test_a_policy_answer_is_checked_and_clamped() -> None:
    assert clamp(1e9, 60, 3600, "p") == 3600
    assert clamp(-5, 60, 3600, "p") == 60
    assert clamp(math.inf, 60, 3600, "p") == 3600
    for bad in (None, "600", math.nan, True):
        with pytest.raises(ConfigurationError, match="must return a number of seconds"):
            clamp(bad, 60, 3600, "p")
