"""Fault injection: kill, pause and resume one process of a topology by port."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

import redkit
from redkit.embedded import EmbeddedServer
from redkit.embedded import server as embedded_server_module
from redkit.errors import ConfigurationError, EmbeddedServerError

_STOP_BOUND = 3.0  # seconds: stop() never waits out its 5 s SIGKILL grace for a paused node
_FAILOVER_BOUND = 30.0


def _client(server: EmbeddedServer, port: int, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis(
        host=server.host,
        port=port,
        password=server.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=None,
        protocol=2,
    )


def _exit_code(pid: int, timeout: float = 30.0) -> int:
    """Wait for the forked child ``pid``; kill it (and fail) if it hangs."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"forked child {pid} hung")
        time.sleep(0.01)


@pytest.fixture
def own_server(server_kind: str) -> Iterator[EmbeddedServer]:
    """A standalone server of this test's own, free to be broken."""
    with EmbeddedServer(binary=server_kind) as server:
        yield server


def test_kill_crashes_one_process(own_server: EmbeddedServer) -> None:
    pid, directory = own_server.pids[own_server.port], own_server.directory
    own_server.kill(own_server.port)
    assert not own_server.running
    with pytest.raises(redis.ConnectionError):
        _client(own_server, own_server.port, timeout=1).ping()
    own_server.kill(own_server.port)  # already dead: nothing to do
    assert own_server.pids == {own_server.port: pid}
    own_server.stop()
    assert directory is not None and not directory.exists()
    own_server.start()
    assert _client(own_server, own_server.port).ping()


def test_pause_hangs_a_server_until_resumed(own_server: EmbeddedServer) -> None:
    client = _client(own_server, own_server.port, timeout=0.3)
    assert client.ping()
    own_server.pause(own_server.port)
    assert own_server.running  # paused, not dead
    with pytest.raises(redis.TimeoutError):
        client.ping()
    own_server.resume(own_server.port)
    assert client.ping()
    client.close()


def test_stop_resumes_paused_processes(server_kind: str) -> None:
    server = EmbeddedServer(binary=server_kind, sentinel=True).start()
    for port in [*server.ports, *server.sentinel_ports]:
        server.pause(port)
    pids = list(server.pids.values())
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < _STOP_BOUND
    assert not server.running
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_fault_injection_needs_a_port_of_ours(own_server: EmbeddedServer) -> None:
    for act in (own_server.kill, own_server.pause, own_server.resume):
        with pytest.raises(ConfigurationError, match=r"port 1 is not a process of this server"):
            act(1)
    own_server.kill(own_server.port)
    with pytest.raises(EmbeddedServerError, match="is not running"):
        own_server.pause(own_server.port)
    stopped = EmbeddedServer()
    with pytest.raises(EmbeddedServerError, match="not started"):
        stopped.kill(6379)


def test_sentinels_fail_over_when_the_protected_primary_is_killed(server_kind: str) -> None:
    """The group is ready for a failover at once, with a password (auth-pass, masterauth)."""
    with EmbeddedServer(
        binary=server_kind, sentinel=True, config={"requirepass": "failover pw"}
    ) as server:
        primary, replica = server.ports
        client = redkit.connect(server.url)
        client.set("before", "1")
        assert client.wait(1, 5000) == 1
        server.kill(primary)
        sentinels = [redis.Redis(server.host, p, socket_timeout=1) for p in server.sentinel_ports]
        deadline = time.monotonic() + _FAILOVER_BOUND
        while any(
            s.sentinel_get_master_addr_by_name(server.master_name)[1] != replica  # type: ignore[index]
            for s in sentinels
        ):
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        for sentinel in sentinels:
            sentinel.close()
        promoted = _client(server, replica)
        assert promoted.info("replication")["role"] == "master"
        assert promoted.get("before") == b"1"
        promoted.close()
        client.set("after", "2")  # the client follows the sentinels to the new primary
        assert client.get("after") == b"2"
        client.close()


def test_a_forked_child_does_not_stop_the_owners_servers(own_server: EmbeddedServer) -> None:
    directory = own_server.directory
    pid = os.fork()
    if pid == 0:  # the child: what its atexit hook and an inherited `with` block would do
        try:
            embedded_server_module._stop_all_at_exit()
            own_server.stop()
        finally:
            os._exit(0)
    assert _exit_code(pid) == 0
    assert own_server.running
    assert directory is not None and directory.is_dir()
    assert _client(own_server, own_server.port).ping()


def test_a_forked_child_starts_servers_of_its_own(own_server: EmbeddedServer) -> None:
    """The spawner thread does not survive a fork; the child gets its own."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with EmbeddedServer(binary=own_server.binary) as child_server:
                code = 0 if _client(child_server, child_server.port).ping() else 2
        finally:
            os._exit(code)
    assert _exit_code(pid) == 0
    assert own_server.running


def test_sentinels_see_the_group_up_as_soon_as_start_returns(server_kind: str) -> None:
    with EmbeddedServer(binary=server_kind, sentinel=True) as server:
        for port in server.sentinel_ports:
            sentinel = redis.Redis(server.host, port, socket_timeout=5, protocol=2, retry=None)
            try:
                master = sentinel.sentinel_master(server.master_name)
                replicas = sentinel.sentinel_slaves(server.master_name)
                others = sentinel.sentinel_sentinels(server.master_name)
            finally:
                sentinel.close()
            assert master["flags"] == "master", master
            assert master["port"] == server.ports[0]
            assert [(r["port"], r["flags"]) for r in replicas] == [(server.ports[1], "slave")]
            assert len(others) == 2
