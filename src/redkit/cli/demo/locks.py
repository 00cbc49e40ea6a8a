"""Demo section: 8 workers process a queue of orders under one lock, with fencing tokens.

Each worker takes the lock, claims the next unprocessed order, "processes" it and records
the lock's fencing token with it. Nothing is processed twice, and the ledger (a store that
checks tokens) refuses a write from a holder whose token is older than one it has seen.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.table import Table

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context

TITLE = "locks"
ORDERS = 40
WORKERS = 8


def run(ctx: Context) -> bool:
    """Section: orders under a lock; whether every order was processed exactly once."""
    console = ctx.console
    console.rule("Distributed lock: 8 workers, 40 orders")
    client: Any = redkit.connect(ctx.url)
    queue, done = f"{PREFIX}:orders", f"{PREFIX}:processed"
    client.delete(queue, done)
    client.rpush(queue, *[f"order-{i:02d}" for i in range(ORDERS)])
    processed: list[tuple[str, int, str]] = []
    highest = {"token": 0}

    def worker(n: int) -> None:
        lock = redkit.Lock(client, f"{PREFIX}:orders", ttl=5)
        while True:
            with lock:
                popped = client.lpop(queue)
                if not isinstance(popped, bytes):
                    return
                order = popped
                token = lock.fencing_token
                assert token > highest["token"], "a stale holder reached the ledger"
                highest["token"] = token
                time.sleep(0.002)  # the work
                client.rpush(done, order)
                processed.append((order.decode(), token, f"worker {n}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    orders = [order for order, _, _ in processed]
    once = len(orders) == ORDERS and len(set(orders)) == ORDERS
    tokens = [token for _, token, _ in processed]
    growing = tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    table = Table(title="First and last orders processed")
    for column in ("order", "fencing token", "by"):
        table.add_column(column)
    for row in processed[:4] + processed[-2:]:
        table.add_row(*map(str, row))
    console.print(table)
    console.print(
        f"processed {len(orders)} orders, {len(set(orders))} distinct: "
        f"{OK if once else BAD} nothing twice; fencing tokens strictly growing "
        f"{OK if growing else BAD}"
    )
    client.delete(queue, done)
    client.close()
    return once and growing
