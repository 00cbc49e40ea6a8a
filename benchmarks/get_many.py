"""3. ``get_many`` of 100 keys vs raw ``MGET`` + decode of the same 100 keys (sync face)."""

from __future__ import annotations

from typing import Any

import orjson
import redis

import redkit

from ._common import CHUNKS, Comparison, Row, Settings, Target, best_rates, make_value

RAW = "raw redis-py mget + orjson -> dict"
KIT = "redkit CacheAside.get_many"
RAW_KEYS = "raw, keys built per call (f-string)"


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    cache = redkit.CacheAside(client, "bench:many")
    ids = list(range(cfg.many_keys))
    cache.set_many({i: make_value(i) for i in ids})
    keys = [cache.keys.key(i) for i in ids]
    calls = cfg.many_calls // CHUNKS  # one chunk of a timed run
    mget, loads = client.mget, orjson.loads

    def raw_once() -> dict[int, Any]:
        return {
            i: loads(data[1:]) for i, data in zip(ids, mget(keys), strict=True) if data is not None
        }

    namespace = cache.keys.namespace

    def raw_keys_once() -> dict[int, Any]:
        built = [f"{namespace}{{{i}}}" for i in ids]
        return {
            i: loads(data[1:]) for i, data in zip(ids, mget(built), strict=True) if data is not None
        }

    def raw_keys() -> None:
        for _ in range(calls):
            raw_keys_once()

    def raw() -> None:
        for _ in range(calls):
            raw_once()

    def kit() -> None:
        get_many = cache.get_many
        for _ in range(calls):
            get_many(ids)

    assert raw_once() == raw_keys_once() == cache.get_many(ids) == {i: make_value(i) for i in ids}
    for _ in range(min(calls, 100)):  # warm-up
        raw_once()
        cache.get_many(ids)

    comparison = Comparison(f"3. get_many of {cfg.many_keys} keys, one connection (1 KB JSON)", RAW)
    for name, rate in best_rates(
        cfg.many_calls, {RAW: raw, KIT: kit, RAW_KEYS: raw_keys}, cfg.runs
    ).items():
        comparison.rows.append(Row(name, rate, unit="calls/s"))
    comparison.notes.append(f"keys/s = calls/s x {cfg.many_keys}")
    comparison.notes.append(
        "the baseline reuses a prebuilt key list; the last row builds the keys on each call, "
        "as hand-written code must (informational, not the target's baseline)"
    )
    comparison.targets.append(Target("redkit get_many >= 0.85x raw MGET", KIT, RAW, 0.85))
    client.close()
    return comparison
