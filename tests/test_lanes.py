"""The sync face's lanes (GET, MGET and EVALSHA on connections kept out of the pool): a lane
never carries a half-read reply, survives a dropped connection through the client's retry
policy, keeps few connections out of the pool, and is not shared with a forked child."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import redkit
from redkit._lanes import MAX_IDLE, Lanes, lanes_for
from tests._compat import run_concurrently, wait_until


@pytest.fixture
def url(standalone_server: Any) -> str:
    from tests.servers import flush_all

    flush_all(standalone_server.url)
    return str(standalone_server.url)


@pytest.fixture
def admin(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url)
    client.mset({"a": "A", "b": "B"})
    yield client
    client.close()


def test_a_timed_out_lane_never_hands_its_late_reply_to_the_next_command(
    url: str, admin: redis.Redis
) -> None:
    client = redis.Redis.from_url(url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    lanes = lanes_for(client)
    assert lanes is not None
    lanes.execute("GET", "a")  # a lane now idle
    admin.execute_command("CLIENT", "PAUSE", 600, "ALL")
    with pytest.raises(redis.TimeoutError):
        lanes.execute("GET", "a")  # its reply comes when the pause ends
    admin.execute_command("CLIENT", "UNPAUSE")
    assert lanes.execute("GET", "b") == b"B", "read the late reply of the timed-out GET"
    client.close()


def test_an_error_reply_keeps_the_lane(url: str, admin: redis.Redis) -> None:
    client = redis.Redis.from_url(url)
    lanes = lanes_for(client)
    assert lanes is not None
    before = lanes.execute("CLIENT", "ID")
    with pytest.raises(redis.exceptions.NoScriptError):
        lanes.execute("EVALSHA", "0" * 40, 0)
    assert lanes.execute("CLIENT", "ID") == before, "reconnected after a complete reply"
    assert len(lanes._idle) == 1 and len(client.connection_pool._in_use_connections) == 1
    client.close()


def test_a_dropped_connection_is_retried_by_the_clients_policy(
    url: str, admin: redis.Redis
) -> None:
    client = redkit.connect(url)
    lanes = lanes_for(client)
    assert lanes is not None and lanes.execute("GET", "a") == b"A"
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    assert lanes.execute("GET", "b") == b"B"
    client.close()


def test_a_lane_the_server_closed_while_idle_is_replaced_without_a_retry(
    url: str, admin: redis.Redis
) -> None:
    """The server's ``timeout`` (here a CLIENT KILL) closes an idle connection: the next
    command must not fail, even with retries off (the pool probes what it hands out too)."""
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    lanes = lanes_for(client)
    assert lanes is not None
    lanes._probe_after = 0.0  # every idle lane counts as idle for long
    killed = lanes.execute("CLIENT", "ID")
    admin.client_kill_filter(_id=killed)
    wait_until(lambda: killed not in [int(c["id"]) for c in admin.client_list()])
    assert lanes.execute("GET", "a") == b"A"
    assert lanes.execute("CLIENT", "ID") != killed
    client.close()


def test_few_lanes_stay_out_of_the_pool(url: str, admin: redis.Redis) -> None:
    client = redis.Redis.from_url(url, max_connections=64)
    lanes = lanes_for(client)
    assert lanes is not None
    barrier = threading.Barrier(32)

    def read(i: int) -> Any:
        barrier.wait()
        return [lanes.execute("MGET", "a", "b") for _ in range(50)]

    results = run_concurrently(32, read)
    assert all(r == [[b"A", b"B"]] * 50 for r in results)
    pool = client.connection_pool
    assert len(lanes._idle) <= MAX_IDLE
    assert len(pool._in_use_connections) == len(lanes._idle)
    client.close()


def test_a_forked_child_never_uses_the_parents_lanes(url: str, admin: redis.Redis) -> None:
    client = redis.Redis.from_url(url)
    lanes = lanes_for(client)
    assert lanes is not None
    parents = lanes.execute("CLIENT", "ID")  # the parent's lane, idle at the fork
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it reads on a connection of its own, within 5 s
        signal.alarm(5)
        try:
            os._exit(0 if lanes.execute("CLIENT", "ID") != parents else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child used the parent's connection"
    assert lanes.execute("CLIENT", "ID") == parents, "the parent lost its lane"
    client.close()


def test_clients_that_need_their_own_path_get_no_lanes(url: str, cluster_server: Any) -> None:
    assert isinstance(lanes_for(redis.Redis.from_url(url)), Lanes)
    assert lanes_for(redis.Redis.from_url(url, single_connection_client=True)) is None
    assert lanes_for(redkit.connect(cluster_server.url)) is None
    assert lanes_for(redis.asyncio.Redis.from_url(url)) is None


@pytest.mark.protocols
def test_no_connection_from_before_a_maintenance_notification_serves_a_read(
    url: str, admin: redis.Redis, protocol: int | None
) -> None:
    """A RESP3 maintenance notification (``MOVING``: the endpoint is about to move) makes the
    pool mark its connections in use for reconnection and drop its free ones (what redis-py's
    handler does, ``run_proactive_reconnect``); the next read must not travel on a connection
    from before it. With explicit RESP3 and notifications on, the client keeps its own path
    (no lanes); lanes themselves honour the mark (the default client: RESP3, "auto")."""
    kwargs: dict[str, Any] = {} if protocol is None else {"protocol": protocol}
    name = f"maint-{protocol}"
    client = redis.Redis.from_url(url, client_name=name, **kwargs)
    notified = bool(client.connection_pool.maint_notifications_enabled())
    if protocol == 3:
        assert notified and lanes_for(client) is None, "lanes with RESP3 maintenance notifications"
    cache = redkit.CacheAside(client, "maint")
    cache.set("k", "v")
    assert cache.get("k") == "v"

    def ours() -> set[int]:
        return {int(c["id"]) for c in admin.client_list() if c.get("name") == name}

    before = ours()
    client.connection_pool.update_active_connections_for_reconnect()
    client.connection_pool.disconnect_free_connections()
    lanes = lanes_for(client)
    if lanes is not None:
        assert lanes.execute("CLIENT", "ID") not in before, "an idle lane kept its connection"
    assert cache.get("k") == "v"
    assert cache.get_many(["k"]) == {"k": "v"}
    if notified:
        assert not before & ours(), "a connection from before the notification served a read"
    client.close()
