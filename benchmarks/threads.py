"""6. Sync hits from 1, 4, 16 and 32 threads on distinct keys: redkit vs raw redis-py.

Threaded servers (gunicorn gthread, Django and Flask with threads, thread pools) call the
sync face from many threads. Raw redis-py gives each thread its own connection and round
trip; redkit's read batcher sends the reads that arrive while one is in flight together as
the next MGET. Both sides read the same 1 KB JSON entries (written through redkit) and
decode them with orjson; each thread reads its own keys. Every contender runs in the same
process, interleaved run by run (A B B A), best of ``runs``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson
import redis

import redkit

from ._common import Comparison, Row, Settings, Target, make_value

THREADS = (1, 4, 16, 32)
KEYS_PER_THREAD = 20
TARGETS = {1: 0.95, 4: 1.0, 16: 3.0, 32: 3.0}


def _rate(threads: int, per_thread: int, read: Callable[[int, int], object]) -> float:
    """Reads/s of ``threads`` threads each calling ``read(thread, i)`` ``per_thread`` times."""
    start_line = threading.Barrier(threads + 1)
    finish_line = threading.Barrier(threads + 1)

    def body(t: int) -> None:
        start_line.wait()
        for i in range(per_thread):
            read(t, i)
        finish_line.wait()

    workers = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    start_line.wait()
    began = time.perf_counter()
    finish_line.wait()
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    return threads * per_thread / elapsed


def run(cfg: Settings) -> Comparison:
    total = max(THREADS) * KEYS_PER_THREAD
    raw_client = redis.Redis.from_url(cfg.url, max_connections=200)
    kit_client = redis.Redis.from_url(cfg.url, max_connections=200)
    cache = redkit.CacheAside(kit_client, "bench:threads")
    cache.set_many({i: make_value(i) for i in range(total)})
    keys = [cache.keys.key(i) for i in range(total)]
    get, loads = raw_client.get, orjson.loads

    def raw(t: int, i: int) -> object:
        return loads(get(keys[t * KEYS_PER_THREAD + i % KEYS_PER_THREAD])[1:])

    def kit(t: int, i: int) -> object:
        return cache.get(t * KEYS_PER_THREAD + i % KEYS_PER_THREAD)

    assert kit(3, 5) == raw(3, 5) == make_value(3 * KEYS_PER_THREAD + 5)
    comparison = Comparison("6. Sync hits from many threads, distinct keys (1 KB JSON)", "")
    for threads in THREADS:
        ops = cfg.sync_ops // (4 if cfg.quick else 2)
        per_thread = max(50, ops // threads)
        _rate(threads, 50, raw)  # warm-up: connections for every thread
        _rate(threads, 50, kit)
        best = {"raw": 0.0, "kit": 0.0}
        for run_index in range(cfg.runs):
            order = ("raw", "kit") if run_index % 2 == 0 else ("kit", "raw")
            for name in order:
                rate = _rate(threads, per_thread, raw if name == "raw" else kit)
                best[name] = max(best[name], rate)
        raw_name = f"raw redis-py, {threads} thread{'s' if threads > 1 else ''}"
        kit_name = f"redkit CacheAside.get, {threads} thread{'s' if threads > 1 else ''}"
        comparison.rows += [Row(raw_name, best["raw"]), Row(kit_name, best["kit"])]
        comparison.targets.append(
            Target(
                f"redkit >= {TARGETS[threads]}x raw with {threads} threads",
                kit_name,
                raw_name,
                TARGETS[threads],
            )
        )
    comparison.baseline = comparison.rows[0].name
    stats = cache.stats
    comparison.notes.append(f"redkit hits {stats.hits:,}, misses {stats.misses:,}")
    cache.close()
    raw_client.close()
    kit_client.close()
    return comparison
