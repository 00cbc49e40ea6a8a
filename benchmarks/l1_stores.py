"""In-process stores for TieredCache's L1: what redkit uses against cachebox, cachetools, theine.

L1 needs a bounded store with a TTL per entry and a real eviction policy (LRU or better), a
cheap hit, a cheap insert that evicts, and a cheap delete (invalidations). Each contender is
driven the way TieredCache would drive it, on 10,000 entries keyed by id:

- redkit L1: ``OrderedDict`` of ``(value, expires_at)``; a hit checks the expiry and moves
  the entry to the end (LRU); an insert past the bound pops the front.
- cachebox ``LRUCache`` of the same tuples (Rust; a hit moves the entry too): cachebox's own
  ``TTLCache`` evicts first-in-first-out and its ``VTTLCache`` evicts the nearest expiry, so
  LRU with a TTL per entry means ``LRUCache`` plus the tuple; both are measured as well.
- cachetools ``TTLCache`` (pure Python LRU with a TTL per insert), by ``get`` and by ``[]``.
- theine ``Cache`` (W-TinyLFU, a TTL per entry; better hit ratios than LRU on skewed loads).

No target: the table is the record of the choice (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ._common import CHUNKS, Comparison, Row, Settings, best_rates

SIZE = 10_000
TTL = 3600.0

GET = "get"
INSERT = "insert+evict"
DELETE = "delete+refill"


def _keys(ops: int) -> list[int]:
    return [(i * 7919) % SIZE for i in range(ops // CHUNKS)]


def _redkit(order: list[int], fresh: Iterator[int]) -> dict[str, Callable[[], object]]:
    data: OrderedDict[int, tuple[Any, float]] = OrderedDict()
    now = time.monotonic
    for i in range(SIZE):
        data[i] = (i, now() + TTL)

    def get() -> None:
        lookup, touch = data.get, data.move_to_end
        for key in order:
            entry = lookup(key)
            if entry is not None and entry[1] > now():
                touch(key)

    def insert() -> None:
        for key in itertools.islice(fresh, len(order)):
            data[key] = (key, now() + TTL)
            data.move_to_end(key)
            while len(data) > SIZE:
                data.popitem(last=False)

    def delete() -> None:
        pop = data.pop
        for key in order:
            pop(key, None)
            data[key] = (key, now() + TTL)
            data.move_to_end(key)

    return {GET: get, INSERT: insert, DELETE: delete}


def _cachebox_lru(order: list[int], fresh: Iterator[int]) -> dict[str, Callable[[], object]] | None:
    try:
        import cachebox
    except ImportError:
        return None
    data = cachebox.LRUCache(SIZE)
    now = time.monotonic
    for i in range(SIZE):
        data[i] = (i, now() + TTL)

    def get() -> None:
        lookup = data.get
        for key in order:
            entry = lookup(key)
            if entry is not None and entry[1] > now():
                pass

    def insert() -> None:
        for key in itertools.islice(fresh, len(order)):
            data[key] = (key, now() + TTL)  # evicts the least recently used itself

    def delete() -> None:
        pop = data.pop
        for key in order:
            pop(key, None)
            data[key] = (key, now() + TTL)

    return {GET: get, INSERT: insert, DELETE: delete}


def _cachebox_other(order: list[int]) -> dict[str, Callable[[], object]]:
    import cachebox

    fifo = cachebox.TTLCache(SIZE, TTL)
    nearest = cachebox.VTTLCache(SIZE)
    for i in range(SIZE):
        fifo[i] = i
        nearest.insert(i, i, TTL)

    def fifo_get() -> None:
        lookup = fifo.get
        for key in order:
            lookup(key)

    def nearest_get() -> None:
        lookup = nearest.get
        for key in order:
            lookup(key)

    return {"fifo": fifo_get, "nearest": nearest_get}


def _cachetools(
    order: list[int], fresh: Iterator[int], *, by_item: bool
) -> dict[str, Callable[[], object]] | None:
    try:
        import cachetools
    except ImportError:
        return None
    data: Any = cachetools.TTLCache(SIZE, TTL)
    for i in range(SIZE):
        data[i] = i

    if by_item:

        def get() -> None:
            for key in order:
                data[key]  # every key is there: no KeyError to catch

    else:

        def get() -> None:
            lookup = data.get
            for key in order:
                lookup(key)

    def insert() -> None:
        for key in itertools.islice(fresh, len(order)):
            data[key] = key

    def delete() -> None:
        pop = data.pop
        for key in order:
            pop(key, None)
            data[key] = key

    return {GET: get, INSERT: insert, DELETE: delete}


def _theine(order: list[int], fresh: Iterator[int]) -> dict[str, Callable[[], object]] | None:
    try:
        import theine
    except ImportError:
        return None
    data = theine.Cache(SIZE)
    ttl = datetime.timedelta(seconds=TTL)
    for i in range(SIZE):
        data.set(i, i, ttl)

    def get() -> None:
        lookup = data.get
        for key in order:
            lookup(key)

    def insert() -> None:
        for key in itertools.islice(fresh, len(order)):
            data.set(key, key, ttl)

    def delete() -> None:
        remove = data.delete
        for key in order:
            remove(key)
            data.set(key, key, ttl)

    return {GET: get, INSERT: insert, DELETE: delete}


def run(cfg: Settings) -> Comparison:
    ops = cfg.sync_ops * (5 if cfg.quick else 25)
    order = _keys(ops)

    def fresh_keys() -> Iterator[int]:
        """New keys, never seen by the store: every insert evicts."""
        return itertools.count(SIZE)

    stores: dict[str, dict[str, Callable[[], object]] | None] = {
        "redkit OrderedDict LRU": _redkit(order, fresh_keys()),
        "cachebox LRUCache": _cachebox_lru(order, fresh_keys()),
        "cachetools TTLCache.get": _cachetools(order, fresh_keys(), by_item=False),
        "cachetools TTLCache getitem": _cachetools(order, fresh_keys(), by_item=True),
        "theine W-TinyLFU": _theine(order, fresh_keys()),
    }
    available = {name: ops_ for name, ops_ in stores.items() if ops_ is not None}
    baseline = "redkit OrderedDict LRU"
    comparison = Comparison(
        f"L1 stores, {SIZE:,} entries, one thread",
        f"{baseline}: {GET}",
    )
    for op in (GET, INSERT, DELETE):
        contenders = {name: per_op[op] for name, per_op in available.items()}
        rates = best_rates(len(order) * CHUNKS, contenders, runs=cfg.runs)
        for name, rate in rates.items():
            comparison.rows.append(Row(f"{name}: {op}", rate))
    if available.get("cachebox LRUCache") is not None:
        others = _cachebox_other(order)
        rates = best_rates(
            len(order) * CHUNKS,
            {
                "cachebox TTLCache (FIFO!): get": others["fifo"],
                "cachebox VTTLCache (no LRU): get": others["nearest"],
            },
            runs=cfg.runs,
        )
        comparison.rows += [Row(name, rate) for name, rate in rates.items()]
    comparison.notes += [
        "insert+evict: a new key into a full store (each evicts one); delete+refill: an "
        "invalidation and the read that refills",
        "LRU + TTL per entry: redkit and cachebox store (value, expires_at) and check it on a "
        "hit; cachebox TTLCache evicts first-in-first-out, VTTLCache the nearest expiry",
    ]
    return comparison
