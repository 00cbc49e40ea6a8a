"""Property-based tests of CacheAside and ``cached`` on a real server (standalone and Cluster).

Any id, value, TTL and option either round-trips exactly (up to the serializer's documented
normalisations) or raises an error from ``redkit.errors`` (whose bases are TypeError and
ValueError where documented) -- never a raw redis-py error, never a silent wrong answer.
Example counts follow the profile in ``conftest.py`` (``REDKIT_HYPOTHESIS=deep`` for more).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import RedkitError

# JSON-able values as they read back: str keys, no tuples, finite floats.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Anything at all: some of it the codec must refuse, with a typed error.
hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.sets(st.integers(), max_size=3)
    | st.complex_numbers(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.one_of(st.text(), st.integers(), st.none(), st.floats()), inner, max_size=3
        )
    ),
    max_leaves=8,
)
ids = st.one_of(st.text(min_size=1, max_size=40), st.integers())
hostile_ids = st.one_of(
    ids, st.none(), st.floats(), st.binary(), st.booleans(), st.text(max_size=0)
)
# long enough to outlive the test's reads (shorter ones expire: that is not a failure)
ttls = st.one_of(
    st.floats(min_value=30, max_value=1e7),
    st.integers(min_value=30, max_value=10**7),
)
hostile_ttls = st.one_of(ttls, st.floats(), st.integers(), st.text(), st.none(), st.booleans())

SLOW = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(params=["standalone", "cluster"])
def cache_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    server: EmbeddedServer = request.getfixturevalue(f"{request.param}_server")
    client = redkit.connect(server.url)
    yield client
    client.close()


def _normal(value: Any) -> Any:
    """``value`` as JSON reads it back (what CacheAside promises for the json serializer)."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


@SLOW
@given(id=ids, value=json_values, ttl=ttls)
def test_any_id_value_and_ttl_round_trip(
    cache_client: Any, id: Any, value: Any, ttl: float
) -> None:
    cache = redkit.CacheAside(cache_client, "prop")
    cache.set(id, value, ttl=ttl)
    expected = _normal(value)
    assert cache.get(id, default="MISSING") == (expected if value is not None else "MISSING")
    assert cache.get_many([id]) == ({} if value is None else {id: expected})
    assert cache.get_or_fetch(id, lambda: "not called") == expected
    assert cache.invalidate(id) is True
    assert cache.get(id, default="MISSING") == "MISSING"


@SLOW
@given(id=hostile_ids, value=hostile_values, ttl=hostile_ttls)
def test_anything_else_gets_a_typed_error(cache_client: Any, id: Any, value: Any, ttl: Any) -> None:
    cache = redkit.CacheAside(cache_client, "hostile")
    try:
        cache.set(id, value, ttl=ttl)
    except RedkitError as exc:
        assert isinstance(exc, TypeError | ValueError), type(exc)
        return
    read = cache.get(id, default="MISSING")
    if read == "MISSING" and ttl is not None and ttl < 30:
        return  # expired already: a short TTL did its job
    expected = _normal(value)
    assert read == (expected if value is not None else "MISSING") or _nan_free_equal(read, expected)


def _nan_free_equal(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


@SLOW
@given(
    options=st.fixed_dictionaries(
        {},
        optional={
            "ttl": hostile_ttls,
            "negative_ttl": hostile_ttls,
            "lock_ttl": hostile_ttls,
            "lock_wait": st.one_of(st.floats(), st.integers(), st.text()),
            "breaker": st.one_of(st.floats(), st.integers(), st.none()),
            "beta": st.one_of(st.none(), st.floats(), st.integers()),
            "compress_threshold": st.one_of(st.none(), st.integers(), st.text(), st.floats()),
            "max_value_size": st.one_of(st.none(), st.integers(), st.text(), st.floats()),
            "serializer": st.sampled_from(["json", "msgpack", "raw", "pickle", "yaml", 3]),
            "on_error": st.sampled_from(["fallback", "raise", "ignore", None]),
            "version": st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats()),
        },
    )
)
def test_any_option_is_accepted_or_refused_with_a_typed_error(
    cache_client: Any, options: dict[str, Any]
) -> None:
    try:
        cache = redkit.CacheAside(cache_client, "options", **options)
    except RedkitError as exc:
        assert isinstance(exc, TypeError | ValueError)
        return
    value: Any = b"bytes" if options.get("serializer") == "raw" else {"a": [1, 2.5, "x"]}
    try:
        cache.set("k", value)
    except RedkitError as exc:
        assert isinstance(exc, TypeError | ValueError)
        return
    assert cache.get_or_fetch("k", lambda: "not called") == value


@SLOW
@given(args=st.lists(st.one_of(json_values, st.floats(), st.datetimes(), st.uuids()), max_size=3))
def test_cached_gives_each_distinct_call_its_own_entry(cache_client: Any, args: list[Any]) -> None:
    cache = redkit.CacheAside(cache_client, "prop-cached")
    calls: list[tuple[Any, ...]] = []

    @redkit.cached(cache)
    def echo(*received: Any) -> int:
        calls.append(received)
        return len(calls)

    try:
        first = echo(*args)
    except RedkitError as exc:  # an argument no key can be built from
        assert isinstance(exc, TypeError | ValueError)
        return
    assert echo(*args) == first, "the same call must hit"
    assert echo(*args, "extra") != first, "another call must not share the entry"
    echo.invalidate(*args)
    echo.invalidate(*args, "extra")
