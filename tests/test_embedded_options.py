"""EmbeddedServer options: every bad one is a ConfigurationError naming it, before any process.

Pure checks: no server is started here (a bad option must fail in the constructor, not after
a start timeout).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from redkit.embedded import EmbeddedServer
from redkit.embedded.options import conf_text, make_options, quote
from redkit.errors import ConfigurationError

_FAST = 2.0  # seconds: a refused option never waits for anything


def _refused(match: str, **options: Any) -> ConfigurationError:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=match) as info:
        EmbeddedServer(**options)
    assert time.monotonic() - started < _FAST
    return info.value


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cluster": "3"}, r"cluster must be .*str '3'"),
        ({"cluster": True}, r"cluster must be a number of primaries .*True"),
        ({"cluster": False}, r"cluster must be a number of primaries .*False"),
        ({"cluster": 3.0}, r"cluster must be .*float"),
        ({"cluster": -1}, r"cluster must be 0 or a number of primaries, not -1"),
        ({"sentinel": "yes"}, r"sentinel must be True or False, not str 'yes'"),
        ({"sentinel": 1}, r"sentinel must be True or False"),
        ({"cluster": 3, "sentinel": True}, r"either a cluster or a sentinel group"),
        ({"startup_timeout": "5"}, r"startup_timeout must be a number of seconds, not str '5'"),
        ({"startup_timeout": 0}, r"startup_timeout must be a positive number .* 0"),
        ({"startup_timeout": -1.5}, r"startup_timeout must be a positive"),
        ({"startup_timeout": float("nan")}, r"startup_timeout must be a positive"),
        ({"startup_timeout": float("inf")}, r"startup_timeout must be a positive"),
        ({"startup_timeout": True}, r"startup_timeout must be a number"),
        ({"host": "example.com"}, r"host='example.com' is not an IP address"),
        ({"host": ""}, r"host='' is not an IP address"),
        ({"host": 127}, r"host must be an IP address string, not int"),
        ({"host": "0.0.0.0"}, r"host='0.0.0.0' cannot be put in a URL"),
        ({"host": "::"}, r"host='::' cannot be put in a URL"),
        ({"config": [("maxmemory", "1mb")]}, r"config must be a mapping"),
        ({"config": {1: "x"}}, r"config option names must be str, not int 1"),
        ({"config": {b"maxmemory": "1mb"}}, r"config option names must be str, not bytes"),
        ({"config": {"max memory": "1mb"}}, r"config option name 'max memory'"),
        ({"config": {"a\nb": "1"}}, r"config option name"),
        ({"config": {"maxmemory": 1.5}}, r"'maxmemory' must be a str, int or bool, not float 1.5"),
        ({"config": {"maxmemory": None}}, r"'maxmemory' must be a str, int or bool, not NoneType"),
        ({"config": {"maxmemory": ["1mb"]}}, r"'maxmemory' must be a str, int or bool"),
        ({"config": {"maxmemory": "1\0"}}, r"'maxmemory' contains a NUL"),
        ({"config": {"port": "6379"}}, r"'port' is set by EmbeddedServer itself"),
        ({"config": {"--bind": "0.0.0.0"}}, r"'bind' is set by EmbeddedServer itself"),
        ({"config": {"Cluster-Enabled": "yes"}}, r"'cluster-enabled' is set by"),
        ({"config": {"replicaof": "h 1"}}, r"'replicaof' is set by"),
        ({"config": {"maxmemory": "1mb", "--maxmemory": "2mb"}}, r"'maxmemory' is given twice"),
        ({"binary": 3}, r"binary must be 'valkey', 'redis' or a path, not int 3"),
    ],
)
def test_bad_option_is_a_configuration_error_naming_it(options: dict[str, Any], match: str) -> None:
    _refused(match, **options)


def test_a_secret_config_value_is_never_shown() -> None:
    error = _refused(r"'requirepass' must be a str", config={"requirepass": 12.5})
    assert "12.5" not in str(error)


def test_config_values_are_converted_as_documented() -> None:
    options = make_options(
        cluster=0,
        sentinel=False,
        host="127.0.0.1",
        config={"--MaxMemory": 64, "lazyfree-lazy-eviction": True, "appendonly": False, "x": "a"},
        startup_timeout=1,
    )
    assert options.config == {
        "maxmemory": "64",
        "lazyfree-lazy-eviction": "yes",
        "appendonly": "no",
        "x": "a",
    }
    assert options.startup_timeout == 1.0


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("127.0.0.2", "127.0.0.2"),
    ],
)
def test_host_is_normalised(host: str, expected: str) -> None:
    assert EmbeddedServer(host=host).host == expected


def test_cluster_takes_any_integer_type() -> None:
    class Three:
        def __index__(self) -> int:
            return 3

    assert EmbeddedServer(cluster=Three()).cluster == 3  # type: ignore[arg-type]


def test_options_cannot_be_changed_after_construction() -> None:
    server = EmbeddedServer()
    with pytest.raises(AttributeError):
        server.cluster = "3"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("64mb", '"64mb"'),
        ("a b", '"a b"'),
        ('x"y', '"x\\"y"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\x0abreak"'),
        ("cr\rtab\t", '"cr\\x0dtab\\x09"'),
        ("é", '"é"'),
    ],
)
def test_config_values_are_quoted_so_no_value_adds_a_line(value: str, quoted: str) -> None:
    assert quote(value) == quoted
    text = conf_text([("requirepass", value), ("port", "1")])
    assert text.count("\n") == 2
    assert text.splitlines()[1] == 'port "1"'
