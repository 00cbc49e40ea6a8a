"""Locks: uncontended acquire + release against raw redis-py and peers; hand-off latency
from a release to a waiter in another process."""

from __future__ import annotations

import multiprocessing
import secrets
import time
from typing import Any

import redis

import redkit

from ._common import CHUNKS, Comparison, Row, Settings, Target, best_rates

_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0"""
HANDOFFS = 300


def run(cfg: Settings) -> Comparison:
    """Acquire + release of a free lock, one connection each, sync."""
    client = redis.Redis.from_url(cfg.url)
    ops = cfg.sync_ops // 2
    per_chunk = ops // CHUNKS
    release = client.register_script(_RELEASE)
    lock = redkit.Lock(client, "bench-lock", ttl=10)

    def raw() -> None:  # SET NX PX with a random token, then the checking release script
        for _ in range(per_chunk):
            token = secrets.token_hex(16)
            client.set("raw-lock", token, nx=True, px=10_000)
            release(keys=["raw-lock"], args=[token])

    def kit() -> None:
        for _ in range(per_chunk):
            lock.acquire()
            lock.release()

    contenders: dict[str, Any] = {
        "raw SET NX PX + EVALSHA release": raw,
        "redkit Lock (with fencing token)": kit,
    }
    try:
        from pottery import Redlock as PotteryRedlock

        pottery_lock = PotteryRedlock(key="bench-pottery", masters={client}, auto_release_time=10)

        def pottery() -> None:
            for _ in range(per_chunk):
                pottery_lock.acquire()
                pottery_lock.release()

        contenders["pottery Redlock, one master"] = pottery
    except ImportError:  # pragma: no cover - a dev dependency
        pass
    try:
        import redis_lock

        prl = redis_lock.Lock(client, "bench-prl", expire=10)

        def python_redis_lock() -> None:
            for _ in range(per_chunk):
                prl.acquire()
                prl.release()

        contenders["python-redis-lock"] = python_redis_lock
    except ImportError:  # pragma: no cover
        pass
    for fn in contenders.values():  # warm-up: connections, script caches
        for _ in range(5):
            fn()
    comparison = Comparison("Lock acquire + release, uncontended (sync)", next(iter(contenders)))
    for name, rate in best_rates(ops, contenders, cfg.runs).items():
        comparison.rows.append(Row(name, rate, "locks/s"))
    kit_name = "redkit Lock (with fencing token)"
    comparison.targets.append(
        Target("redkit Lock >= 0.95x raw", kit_name, "raw SET NX PX + EVALSHA release", 0.95)
    )
    if "pottery Redlock, one master" in contenders:
        comparison.targets.append(
            Target("redkit Lock >= 2x pottery", kit_name, "pottery Redlock, one master", 2.0)
        )
    if "python-redis-lock" in contenders:
        comparison.targets.append(
            Target("redkit Lock >= 1.1x python-redis-lock", kit_name, "python-redis-lock", 1.1)
        )
    client.close()
    return comparison


def _waiter(url: str, rounds: int) -> None:
    """In another process: take the lock each time it is handed over; report when."""
    client = redis.Redis.from_url(url)
    lock = redkit.Lock(client, "bench-handoff", ttl=30, retry_interval=30)
    for _ in range(rounds):
        client.blpop(["bench-handoff-go"], timeout=30)  # the holder is ready: wait for it
        lock.acquire()
        taken = time.monotonic_ns()
        lock.release()
        client.rpush("bench-handoff-times", taken)
    client.close()


def run_handoff(cfg: Settings) -> Comparison:
    """Release in this process -> acquire in another, waiting (BLPOP) for the release."""
    rounds = 50 if cfg.quick else HANDOFFS
    client = redis.Redis.from_url(cfg.url)
    client.delete("bench-handoff-times", "bench-handoff-go")
    lock = redkit.Lock(client, "bench-handoff", ttl=30)
    lock.acquire()
    child = multiprocessing.get_context("spawn").Process(target=_waiter, args=(cfg.url, rounds))
    child.start()
    latencies = []
    for i in range(rounds):
        client.rpush("bench-handoff-go", 1)
        deadline = time.monotonic() + 30
        while int(client.info("clients")["blocked_clients"]) < 1:  # the waiter is in BLPOP
            if time.monotonic() > deadline:
                raise RuntimeError("the waiter never blocked")
            time.sleep(0.0005)
        released = time.monotonic_ns()
        lock.release()
        _, taken = client.blpop(["bench-handoff-times"], timeout=30)
        latencies.append((int(taken) - released) / 1e6)
        if i < rounds - 1:
            lock.acquire()
    child.join(30)
    client.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    comparison = Comparison(
        f"Lock hand-off: release -> acquire in another process ({rounds} hand-offs)", "p50"
    )
    comparison.rows.append(Row("p50", 1000 / p50, "hand-offs/s at p50"))
    comparison.notes.append(
        f"p50 {p50:.3f} ms (target < 1 ms: {'PASS' if p50 < 1 else 'FAIL'}); "
        f"p99 {p99:.3f} ms (target < 5 ms: {'PASS' if p99 < 5 else 'FAIL'}); "
        f"max {latencies[-1]:.3f} ms"
    )
    comparison.failed = int(p50 >= 1) + int(p99 >= 5)  # type: ignore[attr-defined]
    return comparison
