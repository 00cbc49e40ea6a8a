"""What a client is, on every topology and both faces: is_async_client and decode_responses_of."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

import redkit
import redkit.asyncio
from redkit._redis_compat import decode_responses_of, is_async_client
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigurationError

TOPOLOGY_SERVERS = ["standalone_server", "cluster_server", "sentinel_server"]


def _variants(client: Any) -> list[Any]:
    """The client and what patterns may be given in its place: its pipelines."""
    return [client, client.pipeline(), client.pipeline(transaction=False)]


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
@pytest.mark.parametrize("server_name", TOPOLOGY_SERVERS)
async def test_connect_clients_of_both_faces(
    server_name: str, decode: bool, request: pytest.FixtureRequest
) -> None:
    server: EmbeddedServer = request.getfixturevalue(server_name)
    sync_client = redkit.connect(server.url, decode_responses=decode)
    async_client = redkit.asyncio.connect(server.url, decode_responses=decode)
    try:
        for variant in _variants(sync_client):
            assert is_async_client(variant) is False, variant
            assert decode_responses_of(variant) is decode, variant
        for variant in _variants(async_client):
            assert is_async_client(variant) is True, variant
            assert decode_responses_of(variant) is decode, variant
        # and they are what they claim: each face talks to its server
        assert sync_client.ping()
        assert await async_client.ping()
    finally:
        sync_client.close()
        await async_client.aclose()


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
async def test_plain_redis_py_clients(
    standalone_server: EmbeddedServer,
    cluster_server: EmbeddedServer,
    sentinel_server: EmbeddedServer,
    decode: bool,
) -> None:
    host, port = "127.0.0.1", standalone_server.port
    cluster_url = f"redis://127.0.0.1:{cluster_server.ports[0]}"
    sentinels = [("127.0.0.1", p) for p in sentinel_server.sentinel_ports]
    sync_sentinel = redis.sentinel.Sentinel(sentinels)
    async_sentinel = redis.asyncio.sentinel.Sentinel(sentinels)
    sync_clients: list[Any] = [
        redis.Redis(host=host, port=port, decode_responses=decode),
        redis.Redis.from_url(standalone_server.url, decode_responses=decode),
        redis.RedisCluster.from_url(cluster_url, decode_responses=decode),
        sync_sentinel.master_for("mymaster", decode_responses=decode),
        sync_sentinel.slave_for("mymaster", decode_responses=decode),
    ]
    async_clients: list[Any] = [
        redis.asyncio.Redis(host=host, port=port, decode_responses=decode),
        redis.asyncio.Redis.from_url(standalone_server.url, decode_responses=decode),
        redis.asyncio.RedisCluster.from_url(cluster_url, decode_responses=decode),
        async_sentinel.master_for("mymaster", decode_responses=decode),
        async_sentinel.slave_for("mymaster", decode_responses=decode),
    ]
    try:
        for client in sync_clients:
            for variant in _variants(client):
                assert (is_async_client(variant), decode_responses_of(variant)) == (False, decode)
        for client in async_clients:
            for variant in _variants(client):
                assert (is_async_client(variant), decode_responses_of(variant)) == (True, decode)
    finally:
        for client in sync_clients:
            client.close()
        for client in async_clients:
            await client.aclose()
        for sentinel_client in sync_sentinel.sentinels:
            sentinel_client.close()
        for async_sentinel_client in async_sentinel.sentinels:
            await async_sentinel_client.aclose()


@pytest.mark.parametrize(
    "thing",
    [
        None,
        "redis://localhost:6379/0",
        object(),
        redis.ConnectionPool(),
        redis.asyncio.ConnectionPool(),
        redis.sentinel.Sentinel([("127.0.0.1", 1)]),
        redis.asyncio.sentinel.Sentinel([("127.0.0.1", 1)]),
    ],
    ids=lambda thing: type(thing).__name__,
)
def test_things_that_are_not_clients(thing: object) -> None:
    assert is_async_client(thing) is None
    with pytest.raises(ConfigurationError, match="expected a redis-py client"):
        decode_responses_of(thing)


async def test_an_asyncio_connection_closed_while_in_use_is_a_lost_connection(
    standalone_server: Any,
) -> None:
    """redis-py's asyncio Cluster can disconnect a connection another task is writing on; the
    write then finds no stream. redkit's connections report a lost connection instead of a
    raw AttributeError, so it is retried and translated like one."""
    import asyncio

    import redis.exceptions

    import redkit.asyncio

    client = redkit.asyncio.connect(standalone_server.url)
    try:
        conn = client.connection_pool.make_connection()
        await conn.connect()
        sent, _ = await asyncio.gather(
            conn.send_packed_command(conn.pack_command("PING")),
            conn.disconnect(nowait=True),
            return_exceptions=True,
        )
        assert isinstance(sent, redis.exceptions.ConnectionError), repr(sent)
        assert "closed while in use" in str(sent)
    finally:
        await client.aclose()
