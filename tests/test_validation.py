"""Argument validation of the patterns: pure checks, run once per face, no server needed.

The clients point at a closed port and connect lazily: a check that let a bad argument reach
Redis would fail with a connection error instead of the expected typed error.
"""

from __future__ import annotations

from typing import Any

import pytest

import redkit
import redkit.asyncio
from redkit.errors import ConfigurationError, InvalidKey

FACES = {"sync": redkit, "async": redkit.asyncio}
NOWHERE = "redis://127.0.0.1:1/0"


@pytest.fixture(params=list(FACES), ids=list(FACES))
def face(request: pytest.FixtureRequest) -> Any:
    return FACES[request.param]


@pytest.mark.parametrize("name", ["ttl", "lock_ttl"])
@pytest.mark.parametrize(
    "bad", [-1, 0, float("nan"), float("inf"), "10", True, None, 1e16, 1.7e305, 2**80]
)
def test_bad_durations_are_refused_at_construction(face: Any, name: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        face.CacheAside(face.connect(NOWHERE), "v", **{name: bad})


@pytest.mark.parametrize("name", ["negative_ttl", "lock_wait", "breaker", "beta"])
@pytest.mark.parametrize("bad", [-1, float("nan"), "1", True])
def test_bad_non_negative_options_are_refused(face: Any, name: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        face.CacheAside(face.connect(NOWHERE), "v", **{name: bad})


@pytest.mark.parametrize("bad", ["ignore", None, True])
def test_bad_on_error_is_refused(face: Any, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="on_error"):
        face.CacheAside(face.connect(NOWHERE), "v", on_error=bad)


@pytest.mark.parametrize("bad", ["{users}", "a}b", "", None, 3])
def test_bad_prefixes_are_refused(face: Any, bad: Any) -> None:
    with pytest.raises(InvalidKey):
        face.CacheAside(face.connect(NOWHERE), bad)


def test_a_huge_per_call_ttl_is_refused_before_sending() -> None:
    cache = redkit.CacheAside(redkit.connect(NOWHERE), "v")
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.set("k", 1, ttl=1e16)


@pytest.mark.parametrize("bad_id", ["", None, 1.5, b"bytes", True, ("a",)])
def test_bad_ids_are_refused_before_sending_sync(bad_id: Any) -> None:
    cache = redkit.CacheAside(redkit.connect(NOWHERE), "ids")
    for call in (
        lambda: cache.get(bad_id),
        lambda: cache.set(bad_id, 1),
        lambda: cache.invalidate(bad_id),
        lambda: cache.get_or_fetch(bad_id, lambda: 1),
        lambda: cache.get_many(["ok", bad_id]),
        lambda: cache.set_many({"ok": 1, bad_id: 2}),
    ):
        with pytest.raises(InvalidKey):
            call()


@pytest.mark.parametrize("bad_id", ["", None, 1.5, b"bytes", True, ("a",)])
async def test_bad_ids_are_refused_before_sending_async(bad_id: Any) -> None:
    cache = redkit.asyncio.CacheAside(redkit.asyncio.connect(NOWHERE), "ids")
    for call in (
        lambda: cache.get(bad_id),
        lambda: cache.set(bad_id, 1),
        lambda: cache.invalidate(bad_id),
        lambda: cache.get_or_fetch(bad_id, lambda: 1),
        lambda: cache.get_many(["ok", bad_id]),
        lambda: cache.set_many({"ok": 1, bad_id: 2}),
    ):
        with pytest.raises(InvalidKey):
            await call()


async def test_the_sync_face_refuses_coroutine_fetchers() -> None:
    cache = redkit.CacheAside(redkit.connect(NOWHERE), "coro", breaker=0)

    async def fetch() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="awaitable"):
        cache.get_or_fetch("k", lambda: fetch())
    with pytest.raises(ConfigurationError, match=r"redkit\.asyncio\.cached"):
        redkit.cached(cache)(fetch)


def test_cached_needs_a_cache_of_its_face() -> None:
    sync_cache = redkit.CacheAside(redkit.connect(NOWHERE), "c")
    with pytest.raises(ConfigurationError, match="CacheAside"):
        redkit.asyncio.cached(sync_cache)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="key"):
        redkit.cached(sync_cache, key="not callable")  # type: ignore[arg-type]


def test_write_through_checks_its_arguments(face: Any) -> None:
    class NotARepository:
        pass

    with pytest.raises(ConfigurationError, match="find_by_id"):
        face.WriteThrough(face.connect(NOWHERE), "w", NotARepository())


@pytest.mark.parametrize("bad", [None, 3, "not callable"])
def test_a_fetcher_must_be_callable_sync(bad: Any) -> None:
    cache = redkit.CacheAside(redkit.connect(NOWHERE), "f")
    with pytest.raises(ConfigurationError, match="fetcher"):
        cache.get_or_fetch("k", bad)


async def test_a_coroutine_fetcher_is_refused_even_on_a_hit_path() -> None:
    # refused before any I/O: the client points nowhere and breaker=0 would surface it
    cache = redkit.CacheAside(redkit.connect(NOWHERE), "coro", on_error="raise")

    async def fetch() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="coroutine"):
        cache.get_or_fetch("k", fetch)
