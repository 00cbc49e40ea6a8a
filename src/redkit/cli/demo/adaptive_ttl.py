"""Demo section: adaptive TTL, hot keys living longer than cold ones.

200 product entries are cached with the base TTL, read by a Zipf workload (a few products
get most reads), then refreshed (stored again): each new TTL comes from the entry's read
statistics, which live in Redis next to it and which every process shares (a second cache
object, standing for another process, sees the very same numbers).
"""

from __future__ import annotations

import time

from rich.table import Table

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context
from redkit.cli.demo.caching import zipf_sampler

TITLE = "adaptive-ttl"
PRODUCTS = 200
READS = 3_000
ZIPF_S = 1.2
BASE_TTL = 3600
SHOWN = 4


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def run(ctx: Context) -> bool:
    """Whether hot entries got longer TTLs than cold ones and the statistics were shared."""
    console = ctx.console
    console.rule("Adaptive TTL")
    client = redkit.connect(ctx.url)
    ctx.stack.callback(client.close)
    prefix = f"{PREFIX}:adaptive"
    cache = redkit.AdaptiveTTLCache(client, prefix, base_ttl=BASE_TTL)
    other = redkit.AdaptiveTTLCache(client, prefix, base_ttl=BASE_TTL)  # "another process"
    ids = list(range(1, PRODUCTS + 1))
    ctx.stack.callback(lambda: [cache.invalidate(id) for id in ids])
    for id in ids:
        cache.invalidate(id)  # leftovers of an earlier run
        cache.set(id, {"id": id, "name": f"product {id}", "price": id * 3})
    console.print(
        f"{PRODUCTS} products cached for the base TTL ({_duration(BASE_TTL)}), then "
        f"{READS:,} Zipf reads (s={ZIPF_S}); then every product is stored again and gets "
        "the TTL its read statistics earn: base x (1 + hit rate), x1.5 if hit in the last "
        "minute, within [1 min, 24 h]."
    )
    started = time.perf_counter()
    for id in zipf_sampler(PRODUCTS, ZIPF_S, ctx.rng)(READS):
        cache.get(id)
    elapsed = time.perf_counter() - started
    console.print(
        f"{READS:,} reads in {elapsed * 1000:,.0f} ms: one round trip each, statistics "
        "included (one script reads the entry and records the hit)"
    )
    metrics = {id: other.metrics(id) for id in ids}  # read by "another process"
    ttls = {id: cache.set(id, {"id": id, "refreshed": True}) for id in ids}
    ranked = sorted(ids, key=lambda id: (-metrics[id].hits, id))
    table = Table(title="TTL earned by reads (statistics read by a second cache object)")
    for column in ("product", "hits", "misses", "TTL given", "TTL in Redis"):
        table.add_column(column, justify="right")
    for id in [*ranked[:SHOWN], *ranked[-SHOWN:]]:
        table.add_row(
            str(id),
            f"{metrics[id].hits:,}",
            str(metrics[id].misses),
            _duration(ttls[id]),
            _duration(client.pttl(cache.keys.key(id)) / 1000),
        )
    console.print(table)
    hot, cold = ranked[0], ranked[-1]
    entry_ttl = client.pttl(cache.keys.key(hot))
    stats_ttl = client.pttl(f"{cache.keys.key(hot)}:stats")
    longer = ttls[hot] > ttls[cold]
    follows = abs(entry_ttl - stats_ttl) < 1000
    console.print(
        f"hottest product: {_duration(ttls[hot])}, coldest: {_duration(ttls[cold])} "
        f"{OK if longer else BAD}; its statistics expire with it "
        f"(in {_duration(stats_ttl / 1000)}) {OK if follows else BAD}"
    )
    return longer and follows
