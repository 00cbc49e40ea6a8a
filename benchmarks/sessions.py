"""Sessions: get (sliding expiry, one round trip) and create, against raw redis-py."""

from __future__ import annotations

import secrets

import orjson
import redis

import redkit

from ._common import CHUNKS, Comparison, Row, Settings, Target, best_rates

DATA = {"user": "ada", "cart": [1, 2, 3], "theme": "dark"}


def run(cfg: Settings) -> Comparison:
    client = redis.Redis.from_url(cfg.url)
    store = redkit.SessionStore(client, ttl=3600, prefix="bench-session")
    ops = cfg.sync_ops // 2
    per_chunk = ops // CHUNKS
    ids = [store.create(f"user{i % 100}", DATA) for i in range(1000)]
    payload = orjson.dumps(DATA)

    def raw_create() -> None:  # what a hand-written store sends: SET + ZADD, pipelined
        for i in range(per_chunk):
            sid = secrets.token_urlsafe(32)
            pipe = client.pipeline(transaction=False)
            pipe.set(f"raw-session:{{{sid}}}", payload, px=3_600_000)
            pipe.zadd(f"raw-session:user:{{user{i % 100}}}", {sid: 0})
            pipe.execute()

    def kit_create() -> None:
        for i in range(per_chunk):
            store.create(f"user{i % 100}", DATA)

    def raw_get() -> None:  # GET + PEXPIRE pipelined (no access time, no index horizon)
        for i in range(per_chunk):
            pipe = client.pipeline(transaction=False)
            pipe.get(f"raw-session:{{{ids[i % 1000]}}}")
            pipe.pexpire(f"raw-session:{{{ids[i % 1000]}}}", 3_600_000)
            pipe.execute()

    def kit_get() -> None:
        for i in range(per_chunk):
            store.get(ids[i % 1000])

    contenders = {
        "raw pipelined SET + ZADD": raw_create,
        "redkit SessionStore.create": kit_create,
        "raw pipelined GET + PEXPIRE": raw_get,
        "redkit SessionStore.get (slides)": kit_get,
    }
    for fn in contenders.values():
        fn()
    comparison = Comparison("Sessions (sync, one connection)", "raw pipelined SET + ZADD")
    for name, rate in best_rates(ops, contenders, cfg.runs).items():
        comparison.rows.append(Row(name, rate))
    comparison.targets.append(
        Target(
            "create >= 0.8x raw pipelined SET + ZADD",
            "redkit SessionStore.create",
            "raw pipelined SET + ZADD",
            0.8,
        )
    )
    comparison.notes.append(
        "get is one EVALSHA (read, slide, access time); the raw row is one pipelined round "
        "trip too; see the 'vs raw' column against its own row"
    )
    client.close()
    return comparison
