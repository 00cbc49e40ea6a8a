"""A password-protected EmbeddedServer: each topology starts, serves real clients, hides it.

The password is one a URL, a shell and a configuration file each find awkward (space, quote,
backslash, ``@:/#?%``, a newline, non-ASCII), so the URL encoding, the quoting of the
configuration file and the masking are all exercised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import EmbeddedServerError

PASSWORD = 's3c r"e\\t/@:#?%é\nx'
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries an AuthenticationError by default
ENCODED = "s3c%20r%22e%5Ct%2F%40%3A%23%3F%25%C3%A9%0Ax"
TOPOLOGIES = {"standalone": {}, "cluster": {"cluster": 3}, "sentinel": {"sentinel": True}}


@pytest.fixture(scope="module", params=list(TOPOLOGIES), ids=list(TOPOLOGIES))
def protected(request: pytest.FixtureRequest, server_kind: str) -> Iterator[EmbeddedServer]:
    """Each topology with ``requirepass``, started with the DEBUG logs recorded."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("redkit")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    server = EmbeddedServer(
        binary=server_kind, config={"requirepass": PASSWORD}, **TOPOLOGIES[request.param]
    )
    try:
        with server:
            server.log_records = records  # type: ignore[attr-defined]
            yield server
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert records, "start and stop are logged"
    for record in records:
        assert PASSWORD not in record.getMessage()


def test_redkit_connect_works_with_the_url(protected: EmbeddedServer) -> None:
    client = redkit.connect(protected.url)
    try:
        client.set("auth:key", "value")
        assert client.get("auth:key") == b"value"
    finally:
        client.close()


def test_every_data_node_requires_the_password(protected: EmbeddedServer) -> None:
    for port in protected.ports:
        anonymous = redis.Redis(
            host=protected.host, port=port, protocol=2, socket_timeout=5, retry=NO_RETRY
        )
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        authenticated = redis.Redis(
            host=protected.host, port=port, password=PASSWORD, protocol=2, socket_timeout=5
        )
        assert authenticated.ping() is True
        authenticated.close()


def test_the_password_is_in_the_url_but_nowhere_else(protected: EmbeddedServer) -> None:
    assert protected.password == PASSWORD
    assert PASSWORD not in protected.url  # URL-encoded
    assert f":{ENCODED}@" in protected.url
    assert protected.masked_url == protected.url.replace(ENCODED, "***")
    for shown in (repr(protected), protected.masked_url):
        assert ":***@" in shown
        assert "s3c" not in shown


def test_no_password_leaves_the_url_bare(standalone_server: EmbeddedServer) -> None:
    assert standalone_server.password is None
    assert "@" not in standalone_server.url
    assert standalone_server.masked_url == standalone_server.url
    assert "***" not in repr(standalone_server)


def test_the_password_is_not_on_the_command_line(protected: EmbeddedServer) -> None:
    for pid in protected.pids.values():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert "s3c" not in cmdline


def test_the_replica_and_the_sentinels_authenticate(protected: EmbeddedServer) -> None:
    if protected.topology != "sentinel":
        return  # only a Sentinel group has them
    master = redis.Redis(
        host=protected.host, port=protected.ports[0], password=PASSWORD, protocol=2
    )
    try:
        master.set("auth:replicated", "yes")
        assert master.wait(1, 5000) == 1
    finally:
        master.close()
    sentinel = redis.Redis(host=protected.host, port=protected.sentinel_ports[0], protocol=2)
    try:
        state = sentinel.sentinel_master(protected.master_name)
        assert state["num-slaves"] == 1 and not state["is_disconnected"]
    finally:
        sentinel.close()


def test_a_failed_start_does_not_show_the_password(server_kind: str) -> None:
    # The server echoes the bad line of its configuration file in its error output, which
    # EmbeddedServerError quotes: here that line holds the password.
    server = EmbeddedServer(
        binary=server_kind, config={"requirepass": PASSWORD, "no-such-option": PASSWORD}
    )
    with pytest.raises(EmbeddedServerError, match="no-such-option") as info:
        server.start()
    message = str(info.value)
    assert "***" in message
    assert "s3c" not in message
    assert not server.running
