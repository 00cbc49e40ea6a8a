"""AdaptiveTTLCache.get: one round trip per read, statistics included.

Sync hits on one connection, 1 KB JSON documents: ``AdaptiveTTLCache.get`` (one script that
reads the entry and records the hit next to it) against ``CacheAside.get`` (a GET) and raw
redis-py. The target is the round trips: one per read, counted by the server (EVALSHA calls
per read) and by the client (commands sent per read). The rates are informational: the
script writes the statistics, which a GET does not.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

import redkit
from redkit._lanes import lanes_for

from ._common import CHUNKS, Check, Comparison, Row, Settings, best_rates, make_value

KEYS = 1_000
RAW = "raw redis-py get + orjson"
ASIDE = "redkit CacheAside.get"
ADAPTIVE = "redkit AdaptiveTTLCache.get"


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    aside = redkit.CacheAside(client, "bench:aside")
    adaptive = redkit.AdaptiveTTLCache(client, "bench:adaptive")
    ids = list(range(KEYS))
    for i in ids:
        adaptive.set(i, make_value(i), ttl=3600)
    aside.set_many({i: make_value(i) for i in ids})
    keys = [aside.keys.key(i) for i in ids]
    order = [i % KEYS for i in range(cfg.sync_ops // CHUNKS)]
    get, loads = client.get, orjson.loads

    def raw() -> None:
        for i in order:
            loads(get(keys[i])[1:])

    def kit() -> None:
        cget = aside.get
        for i in order:
            cget(i)

    def adapt() -> None:
        aget = adaptive.get
        for i in order:
            aget(i)

    assert adaptive.get(7) == make_value(7) and aside.get(7) == make_value(7)
    rates = best_rates(cfg.sync_ops, {RAW: raw, ASIDE: kit, ADAPTIVE: adapt}, runs=cfg.runs)

    # Round trips: the server's count of EVALSHA calls, and the client's of commands sent
    # (through execute_command, or on the sync face's lanes).
    sent: list[tuple[Any, ...]] = []
    real = client.execute_command
    lanes = lanes_for(client)

    def counting(send: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            sent.append(args)
            return send(*args, **kwargs)

        return counted

    reads = 2_000
    client.config_resetstat()
    client.execute_command = counting(real)  # type: ignore[method-assign]
    if lanes is not None:
        lanes.execute = counting(lanes.execute)  # type: ignore[method-assign]
    try:
        for i in range(reads):
            adaptive.get(i % (KEYS * 2))  # half hits, half misses
    finally:
        client.execute_command = real  # type: ignore[method-assign]
        if lanes is not None:
            del lanes.execute
    server = _commandstats(client).get("evalsha", 0) / reads
    sent_per_read = len(sent) / reads
    comparison = Comparison("AdaptiveTTLCache.get, sync, one connection (1 KB JSON)", RAW)
    comparison.rows = [Row(name, rate) for name, rate in rates.items()]
    comparison.checks.append(
        Check(
            "AdaptiveTTLCache.get: one round trip per read (hits and misses)",
            f"{sent_per_read:.2f} commands sent and {server:.2f} EVALSHA run per read",
            sent_per_read == 1.0 and server == 1.0,
        )
    )
    comparison.notes.append(
        f"{ADAPTIVE} vs {ASIDE}: {rates[ADAPTIVE] / rates[ASIDE]:.2f}x (no target: the script "
        "also writes the hit, its time and, when needed, the statistics' expiry)"
    )
    hits = adaptive.metrics(7).hits
    comparison.notes.append(f"entry 7 was hit {hits:,} times, as every process sees it")
    client.close()
    return comparison
