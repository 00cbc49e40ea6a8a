"""connect() on real servers: each topology, options, event hooks, embedded:// (sync generated)."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from redkit._acompat import ASYNC
from redkit._async.cache_aside import CacheAside
from redkit._async.connection import connect, embedded_server, replica_client
from redkit._core.backoff import Backoff
from redkit._core.connection_events import ConnectionEvent
from redkit._redis_pools import SENTINEL_POOLS_WAIT
from redkit.embedded import EmbeddedServer
from redkit.errors import BackendBusy, ConfigurationError
from tests._acompat import run_concurrently

TOPOLOGY_SERVERS = ["standalone_server", "cluster_server", "sentinel_server"]
SECRET = "s3\u00e7r\u00eatK9-pw"  # non-ASCII: in no message by chance


def _key() -> str:
    return f"redkit-test:{uuid.uuid4().hex}"


def _closed_port() -> int:
    """A loopback port nobody listens on (bound then released; connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("server_name", TOPOLOGY_SERVERS)
async def test_set_get_on_every_topology(server_name: str, request: pytest.FixtureRequest) -> None:
    server: EmbeddedServer = request.getfixturevalue(server_name)
    client = connect(server.url)
    try:
        if server_name == "cluster_server":
            assert isinstance(client, RedisCluster)
        else:
            assert isinstance(client, Redis)
        key = _key()
        assert await client.set(key, "value", ex=60)
        assert await client.get(key) == b"value"  # bytes: decode_responses is off by default
        await client.delete(key)
        assert await client.get(key) is None
    finally:
        await client.aclose()


async def test_sentinel_client_talks_to_the_master(sentinel_server: EmbeddedServer) -> None:
    client = connect(sentinel_server.url)
    try:
        info = await client.info("replication")
        assert info["role"] == "master"
        assert int(info["connected_slaves"]) >= 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("server_name", TOPOLOGY_SERVERS)
async def test_client_name_is_visible(server_name: str, request: pytest.FixtureRequest) -> None:
    server: EmbeddedServer = request.getfixturevalue(server_name)
    name = f"redkit-{uuid.uuid4().hex[:8]}"
    client = connect(server.url, client_name=name)
    try:
        assert await client.client_getname() == name
        if server_name != "cluster_server":
            listing = await client.client_list()
            assert name in [entry["name"] for entry in listing]
    finally:
        await client.aclose()


async def test_client_name_from_the_url(standalone_server: EmbeddedServer) -> None:
    client = connect(standalone_server.url + "?client_name=from-url&decode_responses=true")
    try:
        assert await client.client_getname() == "from-url"  # decoded: str
    finally:
        await client.aclose()


async def test_options_reach_the_connections(standalone_server: EmbeddedServer) -> None:
    backoff = Backoff.exponential(base=0.01, cap=0.1)
    client = connect(
        standalone_server.url,
        retries=5,
        backoff=backoff,
        socket_timeout=3.5,
        socket_connect_timeout=1.25,
        health_check_interval=7,
        max_connections=4,
    )
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert pool.max_connections == 4
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            assert conn.retry.get_retries() == 5
            assert conn.retry._backoff is backoff
            assert conn.socket_timeout == 3.5
            assert conn.socket_connect_timeout == 1.25
            assert conn.health_check_interval == 7
        finally:
            await pool.release(conn)
    finally:
        await client.aclose()


async def test_cluster_options(cluster_server: EmbeddedServer) -> None:
    client = connect(cluster_server.url, max_redirections=4, read_from_replicas=True)
    try:
        assert isinstance(client, RedisCluster)
        assert client.RedisClusterRequestTTL == 4
        assert replica_client(client) is client
        key = _key()
        await client.set(key, "x", ex=60)
        # the test cluster has no replicas: reads fall back to the primaries
        assert await client.get(key) == b"x"
    finally:
        await client.aclose()


async def test_sentinel_replica_client(sentinel_server: EmbeddedServer) -> None:
    client = connect(sentinel_server.url, read_from_replicas=True, client_name="reader")
    replica = replica_client(client)
    try:
        assert replica_client(client) is replica  # made once, cached
        info = await replica.info("replication")
        assert info["role"] == "slave"
        assert await replica.client_getname() == "reader"
    finally:
        await replica.aclose()
        await client.aclose()


async def test_replica_client_needs_replicas(
    standalone_server: EmbeddedServer, cluster_server: EmbeddedServer
) -> None:
    client = connect(standalone_server.url)
    try:
        with pytest.raises(ConfigurationError, match="sentinel"):
            replica_client(client)
    finally:
        await client.aclose()
    cluster = connect(cluster_server.url)
    try:
        with pytest.raises(ConfigurationError, match="read_from_replicas"):
            replica_client(cluster)
    finally:
        await cluster.aclose()


async def test_on_connect_and_on_close_fire(standalone_server: EmbeddedServer) -> None:
    events: list[ConnectionEvent] = []
    client = connect(
        standalone_server.url,
        client_name="hooked",
        on_connect=events.append,
        on_close=events.append,
    )
    assert events == []  # lazy: nothing connects before the first command
    await client.ping()
    assert [e.kind for e in events] == ["connect"]
    event = events[0]
    assert (event.host, event.port) == ("127.0.0.1", standalone_server.port)
    assert event["port"] == standalone_server.port
    assert event.error is None
    assert event.client_name == "hooked"
    await client.ping()
    assert len(events) == 1  # the pooled connection is reused
    await client.aclose()
    assert [e.kind for e in events] == ["connect", "close"]
    assert events[1].port == standalone_server.port


async def test_hooks_fire_on_cluster_and_sentinel(
    cluster_server: EmbeddedServer, sentinel_server: EmbeddedServer
) -> None:
    for server in (cluster_server, sentinel_server):
        connected: list[ConnectionEvent] = []
        client = connect(server.url, on_connect=connected.append)
        try:
            await client.set(_key(), "v", ex=60)
            assert connected, server.url
            assert all(e.kind == "connect" and e.port for e in connected)
            data_ports = set(server.ports)
            assert {e.port for e in connected} <= data_ports  # data nodes, not sentinels
        finally:
            await client.aclose()


async def test_connect_logs(
    standalone_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="redkit.connection")
    client = connect(standalone_server.url)
    await client.ping()
    await client.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == "redkit.connection"]
    address = f"127.0.0.1:{standalone_server.port}"
    assert any("connected" in m and address in m for m in messages)
    assert any("closed" in m and address in m for m in messages)


async def test_on_connection_error_fires_and_logs_when_nothing_listens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="redkit.connection")
    port = _closed_port()
    errors: list[ConnectionEvent] = []
    connects: list[ConnectionEvent] = []
    client = connect(
        f"redis://127.0.0.1:{port}/0",
        retries=2,
        backoff=Backoff.exponential(base=0.001, cap=0.002),
        on_connection_error=errors.append,
        on_connect=connects.append,
    )
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()
    assert connects == []
    assert len(errors) == 3  # the first attempt and two retries
    for event in errors:
        assert event.kind == "error"
        assert (event.host, event.port) == ("127.0.0.1", port)
        assert isinstance(event.error, (RedisConnectionError, OSError))
    warnings = [
        r for r in caplog.records if r.name == "redkit.connection" and r.levelno == logging.WARNING
    ]
    assert warnings
    assert f"127.0.0.1:{port}" in warnings[0].getMessage()


async def test_on_connection_error_fires_when_the_server_drops_the_connection(
    standalone_server: EmbeddedServer,
) -> None:
    events: list[ConnectionEvent] = []
    client = connect(
        standalone_server.url,
        on_connect=events.append,
        on_connection_error=events.append,
        on_close=events.append,
    )
    killer = redis.Redis(host="127.0.0.1", port=standalone_server.port)
    try:
        await client.ping()
        client_id = await client.client_id()
        assert killer.client_kill_filter(_id=str(client_id)) == 1
        assert await client.ping()  # retried on a new connection
        kinds = [e.kind for e in events]
        assert kinds.count("connect") == 2
        assert "close" in kinds
        errors = [e for e in events if e.kind == "error"]
        assert len(errors) == 1
        assert isinstance(errors[0].error, RedisConnectionError)
        assert errors[0].port == standalone_server.port
    finally:
        killer.close()
        await client.aclose()


async def test_retries_zero_tries_once() -> None:
    port = _closed_port()
    errors: list[ConnectionEvent] = []
    client = connect(f"redis://127.0.0.1:{port}/0", retries=0, on_connection_error=errors.append)
    try:
        with pytest.raises(RedisConnectionError):
            await client.get("k")
    finally:
        await client.aclose()
    assert len(errors) == 1


async def test_a_failing_callback_does_not_break_the_client(
    standalone_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: Any) -> None:
        raise RuntimeError("observer bug")

    client = connect(standalone_server.url, on_connect=explode)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    assert any("callback failed" in r.getMessage() for r in caplog.records)


async def test_unix_socket(tmp_path: Path, server_kind: str) -> None:
    sock = tmp_path / "r.sock"
    with EmbeddedServer(binary=server_kind, config={"unixsocket": str(sock)}) as server:
        events: list[ConnectionEvent] = []
        client = connect(f"unix://{sock}?db=2", on_connect=events.append)
        try:
            key = _key()
            await client.set(key, "over-unix")
            assert await client.get(key) == b"over-unix"
            assert events and events[0].path == str(sock)
            # db=2 was selected: the key is not in db 0
            other = connect(server.url)
            try:
                assert await other.get(key) is None
            finally:
                await other.aclose()
        finally:
            await client.aclose()


async def test_url_from_environment(
    standalone_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", standalone_server.url)
    client = connect()
    try:
        assert await client.ping()
        assert isinstance(client, Redis)
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["port"] == standalone_server.port
    finally:
        await client.aclose()


async def test_env_parts(
    standalone_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(standalone_server.port))
    monkeypatch.setenv("REDIS_DB", "3")
    client = connect()
    try:
        key = _key()
        await client.set(key, "db3", ex=60)
        assert (await client.client_info())["db"] == 3
    finally:
        await client.aclose()


async def test_unknown_option_raises_before_connecting() -> None:
    with pytest.raises(ConfigurationError) as info:
        connect("redis://127.0.0.1:1/0", retry=3)
    assert "retry" in str(info.value)
    assert "retries" in str(info.value)  # lists the valid options


async def test_bad_url_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\+sentinel://:\*\*\*@h"):
        connect("redis+sentinel://:hunter2@h")


async def test_embedded_starts_and_stops() -> None:
    client = connect("embedded://", client_name="emb")
    server = embedded_server(client)
    assert server is not None
    url = server.url
    try:
        assert server.running
        assert await client.ping()
        assert await client.client_getname() == "emb"
    finally:
        await client.aclose()
        server.stop()
    assert not server.running
    again = connect(url, retries=0)
    try:
        with pytest.raises(RedisConnectionError):
            await again.ping()
    finally:
        await again.aclose()


async def test_embedded_cluster() -> None:
    client = connect("embedded://?cluster=3")
    server = embedded_server(client)
    try:
        assert isinstance(client, RedisCluster)
        assert server is not None and len(server.ports) == 3
        for i in range(10):
            await client.set(f"k{i}", i)
        assert await client.get("k7") == b"7"
    finally:
        await client.aclose()
        if server is not None:
            server.stop()


async def test_other_urls_start_no_server(standalone_server: EmbeddedServer) -> None:
    client = connect(standalone_server.url)
    try:
        assert embedded_server(client) is None
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- authentication


@pytest.fixture(scope="module")
def protected_server(server_kind: str) -> Iterator[EmbeddedServer]:
    """A standalone server of its own that requires the password ``SECRET``."""
    with EmbeddedServer(binary=server_kind) as server:
        admin = redis.Redis(host="127.0.0.1", port=server.port)
        admin.config_set("requirepass", SECRET)
        admin.close()
        try:
            yield server
        finally:
            admin = redis.Redis(host="127.0.0.1", port=server.port, password=SECRET)
            admin.config_set("requirepass", "")
            admin.close()


def _no_secret_in(exc: BaseException, caplog: pytest.LogCaptureFixture, secret: str) -> None:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for error in seen:
        assert secret not in str(error) and secret not in repr(error)
    for record in caplog.records:
        assert secret not in record.getMessage()


@pytest.mark.parametrize("password", [f"wrong-{SECRET}", None], ids=["wrong", "missing"])
async def test_authentication_failure_is_a_configuration_error_never_retried(
    protected_server: EmbeddedServer, password: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ConnectionEvent] = []
    client = connect(
        protected_server.url,
        password=password,
        retries=3,
        backoff=Backoff.exponential(base=0.001, cap=0.002),
        on_connection_error=errors.append,
    )
    try:
        with pytest.raises(redis.exceptions.AuthenticationError) as info:  # what redis-py raises
            await client.ping()
    finally:
        await client.aclose()
    assert len(errors) == 1  # one attempt: a wrong password does not get better with retries
    assert isinstance(info.value, ConfigurationError)  # and what redkit's errors call it
    assert "authentication failed" in str(info.value)
    _no_secret_in(info.value, caplog, "wrong-")
    _no_secret_in(info.value, caplog, SECRET)


async def test_the_right_password_works(protected_server: EmbeddedServer) -> None:
    for client in (
        connect(protected_server.url, password=SECRET),
        connect(protected_server.url.replace("://", f"://:{quote(SECRET, safe='')}@", 1)),
    ):
        try:
            assert await client.ping()
        finally:
            await client.aclose()


# -- the pool: commands wait for a free connection ------------------------------------------


def _pool_of(client: Any, key: str) -> Any:
    """The pool ``key``'s commands take their connection from (its node's on a Cluster)."""
    if isinstance(client, RedisCluster):
        return client.get_node_from_key(key).redis_connection.connection_pool
    return client.connection_pool


REDIS_PY_MAJOR = int(redis.__version__.split(".")[0])


def _waits(server_name: str) -> bool:
    """Whether this face's client for ``server_name`` has pools that wait."""
    if ASYNC:
        return server_name != "cluster_server"
    else:
        return server_name != "sentinel_server" or SENTINEL_POOLS_WAIT


@pytest.mark.parametrize("server_name", TOPOLOGY_SERVERS)
async def test_ten_times_more_concurrent_commands_than_connections_all_succeed(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    server: EmbeddedServer = request.getfixturevalue(server_name)
    size = 4
    client = connect(server.url, max_connections=size)
    key = _key()  # BLPOP on an empty list holds its connection for 10 ms on the server

    async def pop(_: int) -> Any:
        return await client.blpop([key], timeout=0.01)

    try:
        await client.ping()  # an asyncio Cluster client must not start cold (FIELD-NOTES)
        if server_name == "sentinel_server" and not _waits(server_name):
            pytest.skip("this redis-py's sync Sentinel pool cannot wait (SENTINEL_POOLS_WAIT)")
        if not _waits(server_name):  # redis-py's asyncio RedisCluster (documented)
            with pytest.raises(MaxConnectionsError):
                await run_concurrently(10 * size, pop)
            return
        assert await run_concurrently(10 * size, pop) == [None] * (10 * size)
        assert _pool_of(client, key).max_connections == size
    finally:
        await client.aclose()


@pytest.mark.parametrize("server_name", TOPOLOGY_SERVERS)
async def test_a_command_finding_no_free_connection_within_pool_timeout_is_busy(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    if not _waits(server_name):
        pytest.skip("redis-py's asyncio RedisCluster has no pool that waits")
    server: EmbeddedServer = request.getfixturevalue(server_name)
    client = connect(server.url, max_connections=2, pool_timeout=0.3)
    cache = CacheAside(client, "busy", on_error="raise")
    key = cache.keys.key("k")
    try:
        await cache.set("k", "v")
        pool = _pool_of(client, key)
        held = [await pool.get_connection(), await pool.get_connection()]
        try:
            started = time.monotonic()
            with pytest.raises(BackendBusy, match=r"pool_timeout=0\.3s"):
                await cache.get("k")
            waited = time.monotonic() - started
            assert 0.3 <= waited < 10, f"gave up after {waited:.2f}s"
            if server_name != "cluster_server" or REDIS_PY_MAJOR >= 8:
                # (redis-py 6.0's own Cluster client does not raise it)
                with pytest.raises(MaxConnectionsError):
                    await client.get(key)
        finally:
            for conn in held:
                await pool.release(conn)
        assert await cache.get("k") == "v"
        await cache.aclose()
    finally:
        await client.aclose()


async def test_lanes_and_the_application_share_a_pool_that_waits(
    standalone_server: EmbeddedServer,
) -> None:
    """The sync face keeps some of the pool's connections checked out (lanes): the rest
    still serve many more concurrent callers than connections, redkit's and the app's."""
    client = connect(standalone_server.url, max_connections=8, pool_timeout=30)
    cache = CacheAside(client, "shared")
    key = _key()
    try:
        await cache.set("k", "v")
        if not ASYNC:
            from redkit._lanes import lanes_for

            assert lanes_for(client) is not None  # one lane for a pool of 8

        async def work(index: int) -> Any:
            if index % 2:
                return await cache.get("k")
            return await client.blpop([key], timeout=0.01) or "v"

        assert await run_concurrently(160, work) == ["v"] * 160
        await cache.aclose()
    finally:
        await client.aclose()


async def test_pool_options_come_from_the_url_too(standalone_server: EmbeddedServer) -> None:
    client = connect(f"{standalone_server.url}?max_connections=7&pool_timeout=2.5")
    never = connect(standalone_server.url, pool_timeout=0)
    default = connect(standalone_server.url, max_connections=None)
    try:
        assert isinstance(client.connection_pool, BlockingConnectionPool)
        assert (client.connection_pool.max_connections, client.connection_pool.timeout) == (7, 2.5)
        assert not isinstance(never.connection_pool, BlockingConnectionPool)
        assert default.connection_pool.max_connections == 100  # redis-py has no unbounded pool
        assert default.connection_pool.timeout == 5.0
    finally:
        for each in (client, never, default):
            await each.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pool_timeout": -1}, "pool_timeout=-1 is invalid"),
        ({"pool_timeout": "soon"}, "pool_timeout='soon' is invalid"),
        ({"pool_timeout": True}, "pool_timeout=True is invalid"),
        ({"pool_timeout": float("nan")}, "pool_timeout=nan is invalid"),
        ({"max_connections": 0}, "max_connections=0 is invalid"),
        ({"max_connections": 2**31}, "more than a pool that waits may hold"),
    ],
)
async def test_bad_pool_options_are_configuration_errors(
    standalone_server: EmbeddedServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        connect(standalone_server.url, **options)
