"""Demo section: sessions with sliding expiry and an exact per-user index."""

from __future__ import annotations

import time

import redkit
from redkit.cli.demo._common import BAD, OK, PREFIX, Context, remove_keys

TITLE = "sessions"
TTL = 1.0


def run(ctx: Context) -> bool:
    """Section: create, slide, destroy all of a user, exact counts after expiry."""
    console = ctx.console
    console.rule("Sessions: sliding expiry, exact per-user index")
    client = redkit.connect(ctx.url)
    prefix = f"{PREFIX}:session"
    ctx.stack.callback(remove_keys, ctx.url, prefix)  # destroyed sessions' gone companions
    store = redkit.SessionStore(client, ttl=TTL, prefix=prefix)
    kept = store.create("ada", {"cart": [1, 2]})
    others = [store.create("ada", {"n": i}) for i in range(200)]
    console.print(f"created 201 sessions for ada (ttl {TTL}s): count = {store.count('ada')}")
    deadline = time.monotonic() + 3 * TTL
    while store.count("ada") > 1 and time.monotonic() < deadline:
        store.get(kept)  # reading slides its expiry; the 200 others expire unread
        time.sleep(0.1)
    after = store.count("ada")
    listed = [s.id for s in store.list("ada")]
    exact = after == 1 and listed == [kept]
    console.print(
        f"after {TTL}s, kept alive by reads: count = {after}, list = {len(listed)} session "
        f"{OK if exact else BAD} (the 200 unread ones are gone from the index too)"
    )
    for _ in range(3):
        store.create("grace")
    destroyed = store.destroy_all("grace")
    gone = store.count("grace") == 0 and destroyed == 3
    console.print(f"destroy_all(grace) = {destroyed}, count after = 0 {OK if gone else BAD}")
    store.destroy(kept)
    del others
    client.close()
    return exact and gone
