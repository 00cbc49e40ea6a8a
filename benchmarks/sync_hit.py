"""1. Sync hits on one connection: ``CacheAside.get`` vs ``Redis.get`` + ``orjson.loads``."""

from __future__ import annotations

import orjson
import redis

import redkit

from ._common import CHUNKS, Comparison, Row, Settings, Target, best_rates, make_value

KEYS = 1_000


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    cache = redkit.CacheAside(client, "bench:sync")
    ids = list(range(KEYS))
    cache.set_many({i: make_value(i) for i in ids})
    keys = [cache.keys.key(i) for i in ids]
    ops = cfg.sync_ops
    order = [i % KEYS for i in range(ops // CHUNKS)]  # one chunk of a timed run
    get = client.get
    loads = orjson.loads

    def raw() -> None:
        for i in order:
            loads(get(keys[i])[1:])

    def kit() -> None:
        cget = cache.get
        for i in order:
            cget(i)

    # warm-up: connection, script cache, branch predictors
    for i in range(min(ops, 2_000)):
        loads(get(keys[i % KEYS])[1:])
        cache.get(i % KEYS)
    assert cache.get(7) == make_value(7)

    raw_name, kit_name = "raw redis-py get + orjson", "redkit CacheAside.get"
    comparison = Comparison("1. Sync hit, one connection (1 KB JSON)", raw_name)
    for name, rate in best_rates(ops, {raw_name: raw, kit_name: kit}, cfg.runs).items():
        comparison.rows.append(Row(name, rate))
    comparison.targets.append(
        Target(
            "redkit sync get >= 0.90x raw",
            kit_name,
            raw_name,
            0.90,
        )
    )
    client.close()
    return comparison
