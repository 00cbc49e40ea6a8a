"""URL parsing, environment fallbacks, option validation and backoff shape: no server needed."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

import pytest
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from redkit._core.backoff import Backoff, BackoffPolicy
from redkit._core.connection_events import ConnectionEvent
from redkit._core.options import (
    OPTIONS,
    URL_OPTIONS,
    VALID_OPTIONS,
    ConnectOptions,
    options_help,
    resolve_options,
)
from redkit._core.specs import (
    ClusterSpec,
    ConnectionSpec,
    EmbeddedSpec,
    SentinelSpec,
    TcpSpec,
    UnixSpec,
)
from redkit._core.urls import mask_url, parse_url, resolve_spec
from redkit._redis_compat import async_retry_policy, retry_policy
from redkit.errors import ConfigurationError

# --------------------------------------------------------------------------- good URLs


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("redis://localhost:6379/0", TcpSpec, dict(host="localhost", port=6379, db=0, ssl=False)),
        ("redis://example.com", TcpSpec, dict(host="example.com", port=6379, db=0)),
        ("redis://h:7000/5", TcpSpec, dict(host="h", port=7000, db=5)),
        ("redis://h/", TcpSpec, dict(host="h", port=6379, db=0)),
        ("redis://h?db=3", TcpSpec, dict(db=3)),
        ("redis://h?", TcpSpec, dict(db=0)),
        ("REDIS://H:1/2", TcpSpec, dict(host="H", port=1, db=2)),
        (
            "redis://:s3cret@h:6380/1",
            TcpSpec,
            dict(username=None, password="s3cret", host="h", port=6380, db=1),
        ),
        ("redis://alice:p%40ss%3Aw@h", TcpSpec, dict(username="alice", password="p@ss:w")),
        ("redis://alice:p@ss:w@h", TcpSpec, dict(username="alice", password="p@ss:w")),
        ("redis://alice:p[s]s@h", TcpSpec, dict(username="alice", password="p[s]s")),
        ("redis://alice@h", TcpSpec, dict(username="alice", password=None)),
        ("redis://[::1]:6390/0", TcpSpec, dict(host="::1", port=6390)),
        ("redis://[::1]", TcpSpec, dict(host="::1", port=6379)),
        ("rediss://h:6380/0", TcpSpec, dict(ssl=True, host="h", port=6380)),
        ("unix:///var/run/redis.sock?db=2", UnixSpec, dict(path="/var/run/redis.sock", db=2)),
        ("unix:///tmp/r.sock", UnixSpec, dict(path="/tmp/r.sock", db=0)),
        ("unix:///tmp/a%40b.sock", UnixSpec, dict(path="/tmp/a@b.sock")),
        ("unix://:pw@/tmp/r.sock", UnixSpec, dict(path="/tmp/r.sock", password="pw")),
        ("unix:///tmp/r.sock?password=pw", UnixSpec, dict(path="/tmp/r.sock", password="pw")),
        (
            "redis+cluster://a:7000,b:7001,[::1]:7002",
            ClusterSpec,
            dict(nodes=(("a", 7000), ("b", 7001), ("::1", 7002))),
        ),
        ("redis+cluster://a:7000/0", ClusterSpec, dict(nodes=(("a", 7000),))),
        ("redis+cluster://a", ClusterSpec, dict(nodes=(("a", 6379),))),
        ("rediss+cluster://u:p@a:7000", ClusterSpec, dict(ssl=True, password="p", username="u")),
        (
            "redis+sentinel://s1:26379,s2:26380/mymaster",
            SentinelSpec,
            dict(sentinels=(("s1", 26379), ("s2", 26380)), master="mymaster", db=0),
        ),
        ("redis+sentinel://s1/mymaster", SentinelSpec, dict(sentinels=(("s1", 26379),))),
        ("redis+sentinel://s1/mymaster/", SentinelSpec, dict(master="mymaster", db=0)),
        ("redis+sentinel://:pw@s1,s2/mm/4", SentinelSpec, dict(master="mm", db=4, password="pw")),
        (
            "redis+sentinel://s1/mm?sentinel_password=spw&sentinel_username=su",
            SentinelSpec,
            dict(master="mm", sentinel_password="spw", sentinel_username="su", password=None),
        ),
        ("rediss+sentinel://s1/mm", SentinelSpec, dict(ssl=True)),
        ("embedded://", EmbeddedSpec, dict(cluster=0, sentinel=False)),
        ("embedded://?cluster=3", EmbeddedSpec, dict(cluster=3)),
        ("embedded://?sentinel=true", EmbeddedSpec, dict(sentinel=True)),
        ("embedded:///", EmbeddedSpec, dict()),
        ("  redis://h:1/0\n", TcpSpec, dict(host="h", port=1)),  # pasted from a file
    ],
)
def test_parse_url(url: str, kind: type[ConnectionSpec], expected: dict[str, object]) -> None:
    spec = parse_url(url)
    assert type(spec) is kind
    for name, value in expected.items():
        assert getattr(spec, name) == value, name


def test_query_options_are_typed() -> None:
    spec = parse_url(
        "redis://h/0?socket_timeout=1.5&socket_connect_timeout=none&retries=7"
        "&read_from_replicas=false&client_name=web-1&decode_responses=yes&max_connections=20"
        "&health_check_interval=30&ssl_cert_reqs=none"
    )
    assert spec.options == {
        "socket_timeout": 1.5,
        "socket_connect_timeout": None,
        "retries": 7,
        "read_from_replicas": False,
        "client_name": "web-1",
        "decode_responses": True,
        "max_connections": 20,
        "health_check_interval": 30.0,
        "ssl_cert_reqs": "none",
    }


def test_spec_is_frozen_and_hides_passwords_in_repr() -> None:
    spec = parse_url("redis+sentinel://:topsecret@s1/mm?sentinel_password=alsosecret")
    with pytest.raises(AttributeError):
        spec.db = 3  # type: ignore[misc]
    assert "topsecret" not in repr(spec)
    assert "alsosecret" not in repr(spec)
    assert "topsecret" not in spec.url and "alsosecret" not in spec.url
    same = parse_url("redis+sentinel://:topsecret@s1/mm?sentinel_password=alsosecret")
    assert spec == same and hash(spec) == hash(same)
    assert spec != parse_url("redis+sentinel://:topsecret@s1/mm?sentinel_password=x")


def test_address() -> None:
    assert parse_url("redis+cluster://a:1,[::1]:2").address == "a:1,[::1]:2"
    assert parse_url("unix:///tmp/x.sock").address == "/tmp/x.sock"
    assert parse_url("redis://[::1]:5").address == "[::1]:5"
    assert parse_url("redis+sentinel://s:1,t:2/mm").address == "s:1,t:2/mm"
    assert parse_url("embedded://?cluster=3").address == "embedded Cluster of 3"


# --------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty URL"),
        ("localhost:6379", "missing scheme"),
        ("http://h:80", "unknown scheme 'http://'"),
        ("memcached://h", "unknown scheme"),
        ("redis://", "missing host"),
        ("redis://:6379/0", "missing host"),
        ("redis://h:notaport", "bad port 'notaport'"),
        ("redis://h:0", "bad port '0'"),
        ("redis://h:65536", "bad port '65536'"),
        ("redis://h:", "bad port ''"),
        ("redis://h/abc", "db 'abc' is not a non-negative integer"),
        ("redis://h/-1", "db '-1'"),
        ("redis://h/1/2", "unexpected path"),
        ("redis://h?db=x", "db 'x'"),
        ("redis://h/1?db=2", "db given both"),
        ("redis://a:1,b:2", "takes one host"),
        ("redis://::1:6379", "must be in brackets"),
        ("redis://[::1:6379", "unclosed '['"),
        ("redis://h]:1", "unexpected ']'"),
        ("redis://h?bogus=1", "unknown option bogus"),
        ("redis://h?socket_timeout=soon", "socket_timeout='soon'"),
        ("redis://h?socket_timeout=0", "socket_timeout='0'"),
        ("redis://h?retries=-1", "retries='-1'"),
        ("redis://h?read_from_replicas=maybe", "read_from_replicas='maybe'"),
        ("redis://h?client_name=two words", "client_name='two words'"),
        ("redis://h?retries=1&retries=2", "given twice"),
        ("redis://h#frag", "unexpected '#'"),
        ("redis://h?db", "has no value"),
        ("redis://h?db=1&&retries=2", "stray '&'"),
        ("redis:/h", "malformed 'redis:/': write 'redis://'"),
        ("redis//h", "malformed 'redis//'"),
        ("rediss:h", "malformed 'rediss:'"),
        ("redis:///:pw@h", "one '/' too many"),
        ("unix:///tmp/a@b.sock", "'@' outside the user info"),
        ("redis://h/0?client_name=a@b", "write any other '@' as %40"),
        ("redis://h?on_connect=x", "unknown option on_connect"),
        ("redis+cluster://a:1,,b:2", "empty entry"),
        ("redis+cluster://a:1/3", "only db 0"),
        ("redis+cluster://", "missing host"),
        ("redis+sentinel://s1:26379", "missing master name"),
        ("redis+sentinel://s1:26379/", "missing master name"),
        ("redis+sentinel://s1/mm/x", "db 'x'"),
        ("redis+sentinel://s1/mm/0/extra", "unexpected path"),
        ("redis+sentinel://s1:bad/mm", "bad port 'bad'"),
        ("unix://", "missing socket path"),
        ("unix://host/tmp/x.sock", "unix:// takes no host"),
        ("unix://:a@/x.sock?password=b", "password given both"),
        ("embedded://somehost", "takes no host"),
        ("embedded://?cluster=x", "cluster='x'"),
        ("embedded://?cluster=3&sentinel=1", "not both"),
        ("embedded:///data", "unexpected path"),
    ],
)
def test_bad_url(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    message = str(info.value)
    assert fragment in message
    assert repr(mask_url(url)) in message  # names the URL


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@h:notaport/0",
        "redis://bob:hunter2@h/zzz",
        "rediss://bob:hunter2@h?bogus=1",
        "redis+sentinel://:hunter2@s1",
        "redis+cluster://u:hunter2@a:1/5",
        "redis://h/x?password=hunter2",
        "redis+sentinel://s1/mm/x?sentinel_password=hunter2",
        "unix://:hunter2@/x.sock?db=q",
        "http://:hunter2@h",
    ],
)
def test_password_masked_in_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),
        ("redis://:p@w@h:1/0", "redis://:***@h:1/0"),
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://u@h", "redis://u@h"),
        ("redis://h?password=x&db=1", "redis://h?password=***&db=***"),
        ("redis://h?PASSWORD=x&db=1", "redis://h?PASSWORD=***&db=***"),
        ("redis://h?pass%77ord=x", "redis://h?pass%77ord=***"),
        ("redis+sentinel://s/m?sentinel_password=x", "redis+sentinel://s/m?sentinel_password=***"),
        # after a password, what is not a known option may be the rest of the password
        ("redis://h?db=1&password=a&b&retries=1", "redis://h?db=1&password=***&***&retries=***"),
        ("redis://h/0#frag", "redis://h/0#***"),
        # an '@' outside the user info: the structure cannot be trusted
        ("redis://:p/w@h:1/0", "redis://***"),
        ("unix:///tmp/a@b.sock", "unix://***"),
        # no scheme:// at all
        ("redis:/:pw@h", "redis:/:***"),
        ("redis//u:pw@h", "redis//***"),
        (":pw@h", ":***"),
        ("localhost:6379", "localhost:6379"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_not_a_string() -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        parse_url(6379)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- environment


def test_env_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+cluster://a:7000,b:7001")
    monkeypatch.setenv("REDIS_HOST", "ignored")
    spec = resolve_spec(None)
    assert isinstance(spec, ClusterSpec)
    assert spec.nodes == (("a", 7000), ("b", 7001))


def test_env_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    monkeypatch.setenv("REDIS_DB", "4")
    spec = resolve_spec()
    assert isinstance(spec, TcpSpec)
    assert (spec.host, spec.port, spec.db, spec.password) == (
        "cache.internal",
        6380,
        4,
        "p@ss/word",
    )
    assert "p@ss" not in spec.url and "p@ss" not in repr(spec)
    assert spec.url == "redis://:***@cache.internal:6380/4"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REDIS_HOST": "h"}, (("h", 6379), 0, None)),
        ({"REDIS_PORT": "7000"}, (("localhost", 7000), 0, None)),
        ({"REDIS_PASSWORD": "pw"}, (("localhost", 6379), 0, "pw")),
        ({"REDIS_DB": "2"}, (("localhost", 6379), 2, None)),
        ({"REDIS_HOST": "::1", "REDIS_PORT": "7000"}, (("::1", 7000), 0, None)),
    ],
)
def test_env_any_part(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[object, ...]
) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = resolve_spec()
    assert isinstance(spec, TcpSpec)
    assert ((spec.host, spec.port), spec.db, spec.password) == expected


def test_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "")  # empty counts as unset
    spec = resolve_spec()
    assert isinstance(spec, TcpSpec)
    assert (spec.host, spec.port, spec.db) == ("localhost", 6379, 0)


def test_explicit_url_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://from-env:1/1")
    assert resolve_spec("redis://explicit:2/2").address == "explicit:2"


def test_injected_environ() -> None:
    assert resolve_spec(None, {"REDIS_URL": "redis://x:9/0"}).address == "x:9"
    assert resolve_spec(None, {}).address == "localhost:6379"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"REDIS_PORT": "http"}, "bad port 'http'"),
        ({"REDIS_DB": "one"}, "REDIS_DB 'one'"),
        ({"REDIS_URL": "redis://:hunter2@h:x"}, "REDIS_URL"),
        ({"REDIS_HOST": "u:hunter2@h"}, "REDIS_HOST must be a host name"),
    ],
)
def test_env_errors(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_spec(None, env)
    assert fragment in str(info.value)
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- options


def _spec(url: str = "redis://h/0") -> ConnectionSpec:
    return parse_url(url)


def test_each_option_is_declared_once_and_everything_derives_from_it() -> None:
    assert set(VALID_OPTIONS) == set(OPTIONS) == set(ConnectOptions.__dataclass_fields__)
    assert list(VALID_OPTIONS) == sorted(VALID_OPTIONS)
    keyword_only = {
        "backoff",
        "username",
        "password",
        "on_connect",
        "on_connection_error",
        "on_close",
    }
    assert set(OPTIONS) - URL_OPTIONS == keyword_only
    assert [name for name, o in OPTIONS.items() if o.secret] == ["password"]
    reference = options_help()
    for name, option in OPTIONS.items():
        assert option.doc and f"``{name}`` ({option.default}" in reference
    assert "``backoff`` (Backoff.default(); keyword only)" in reference
    assert "``retries`` (3)" in reference


def test_connect_documents_every_option() -> None:
    from redkit import connect
    from redkit.asyncio import connect as async_connect

    for function in (connect, async_connect):
        for name, option in OPTIONS.items():
            assert f"``{name}``" in (function.__doc__ or ""), name
            assert option.doc.split()[0] in (function.__doc__ or "")


def test_readme_names_every_option() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Pointing redkit at your Redis, Sentinel or Cluster")[1]
    section = section.split("\n## ")[0]
    for name in OPTIONS:
        assert f"`{name}`" in section, name


def test_the_old_on_error_name_is_refused_with_the_new_one_listed() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_options(_spec(), {"on_error": print})
    assert "unknown connect() option on_error" in str(info.value)
    assert "on_connection_error" in str(info.value)


def test_default_options() -> None:
    opts = resolve_options(_spec(), {})
    assert opts.retries == 3
    assert opts.socket_timeout == 5.0
    assert opts.socket_connect_timeout == 2.0
    assert opts.decode_responses is False
    assert opts.max_redirections == 16
    assert isinstance(opts.backoff, Backoff)


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_options(_spec(), {"retry": 3, "timeout": 1})
    message = str(info.value)
    assert "unknown connect() options retry, timeout" in message
    for valid in ("retries", "socket_timeout", "on_connect", "client_name", "backoff"):
        assert valid in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retries", -1),
        ("retries", 1.5),
        ("retries", True),
        ("socket_timeout", 0),
        ("socket_timeout", -2.0),
        ("socket_timeout", "x"),
        ("health_check_interval", None),
        ("max_connections", 0),
        ("max_redirections", 0),
        ("client_name", "has space"),
        ("client_name", ""),
        ("read_from_replicas", "perhaps"),
        ("on_connect", 42),
        ("backoff", 0.5),
        ("backoff", object()),
        ("on_connection_error", "print"),
        ("ssl_cert_reqs", "sometimes"),
    ],
)
def test_invalid_option_value(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        resolve_options(_spec("redis+cluster://h:1"), {name: value})


def test_keywords_override_query() -> None:
    spec = _spec("redis://u:pw@h/0?socket_timeout=1&client_name=fromurl")
    opts = resolve_options(spec, {"client_name": "fromkw", "password": "kwpw"})
    assert opts.socket_timeout == 1.0
    assert opts.client_name == "fromkw"
    assert opts.password == "kwpw"
    assert opts.username == "u"
    assert resolve_options(spec, {}).password == "pw"


def test_read_from_replicas_needs_replicas() -> None:
    with pytest.raises(ConfigurationError, match="read_from_replicas"):
        resolve_options(_spec("redis://h/0"), {"read_from_replicas": True})
    assert resolve_options(_spec("redis+cluster://h:1"), {"read_from_replicas": True})
    assert resolve_options(_spec("redis+sentinel://s/mm"), {"read_from_replicas": True})


def test_ssl_kwargs() -> None:
    opts = resolve_options(
        _spec("rediss://h?ssl_cert_reqs=none"),
        {"ssl_ca_certs": "/ca.pem", "ssl_check_hostname": False},
    )
    assert opts.ssl_kwargs() == {
        "ssl_cert_reqs": "none",
        "ssl_ca_certs": "/ca.pem",
        "ssl_check_hostname": False,
    }
    assert ConnectOptions().ssl_kwargs() == {}


def test_event_reads_like_a_dict() -> None:
    error = OSError("refused")
    event = ConnectionEvent("error", "h", 1, error=error)
    assert (event["host"], event["port"], event["error"]) == ("h", 1, error)
    assert event.address == "h:1"
    with pytest.raises(KeyError):
        event["nope"]


# --------------------------------------------------------------------------- backoff


class _Seq:
    """A deterministic random source: cycles through given values."""

    def __init__(self, *values: float) -> None:
        self._values = itertools.cycle(values)

    def __call__(self) -> float:
        return next(self._values)


def test_default_backoff_shape() -> None:
    top = Backoff.default(rng=_Seq(0.0))  # no jitter drawn: the ceiling itself
    assert [round(top.compute(n), 6) for n in range(0, 6)] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert top.compute(40) == 2.0
    assert top.compute(10_000) == 2.0
    low = Backoff.default(rng=_Seq(0.999999))  # the most jitter: about 10% less
    assert low.compute(1) == pytest.approx(0.045, abs=1e-6)
    assert low.compute(100) == pytest.approx(1.8, abs=1e-5)
    assert isinstance(top, BackoffPolicy)
    assert isinstance(ExponentialBackoff(), BackoffPolicy)  # redis-py's own backoffs fit too
    assert resolve_options(_spec(), {"backoff": ExponentialBackoff()}).backoff


def test_default_backoff_jitter_is_bounded() -> None:
    backoff = Backoff.default(rng=random.Random(7).random)
    for n in range(1, 60):
        ceiling = min(0.05 * n, 2.0)
        delay = backoff.compute(n)
        assert 0.9 * ceiling - 1e-12 <= delay <= ceiling


def test_exponential_full_jitter() -> None:
    backoff = Backoff.exponential(base=0.01, cap=1.0, rng=_Seq(0.5))
    assert [backoff.compute(n) for n in range(1, 9)] == pytest.approx(
        [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5]
    )
    assert backoff.compute(5000) == 0.5  # no overflow, capped
    assert [backoff.ceiling(n) for n in (1, 2, 3, 8, 100)] == [0.01, 0.02, 0.04, 1.0, 1.0]


def test_equal_and_no_jitter() -> None:
    equal = Backoff.exponential(base=0.1, cap=10, jitter="equal", rng=_Seq(0.0, 0.999999))
    assert equal.compute(3) == pytest.approx(0.2)  # half of 0.4
    assert equal.compute(3) == pytest.approx(0.4, abs=1e-6)
    none = Backoff.exponential(base=0.1, cap=10, jitter="none", rng=_Seq(0.3))
    assert [none.compute(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])


def test_full_jitter_spreads() -> None:
    backoff = Backoff.exponential(base=1.0, cap=1.0, rng=random.Random(1).random)
    delays = [backoff.compute(1) for _ in range(500)]
    assert min(delays) < 0.1 and max(delays) > 0.9  # spread over [0, 1)
    assert all(0 <= d < 1 for d in delays)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": -1},
        {"cap": "2"},
        {"growth": "quadratic"},
        {"jitter": "some"},
        {"jitter": 1.5},
        {"rng": 3},
    ],
)
def test_backoff_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_backoff_copies_share_the_random_source() -> None:
    # redis-py deep-copies Retry (and its backoff) for every connection: copies must not
    # replay one copied random sequence in lockstep.
    backoff = Backoff.default()
    assert copy.deepcopy(backoff) is backoff
    assert copy.copy(backoff) is backoff


def test_retry_policy() -> None:
    backoff = Backoff.exponential()
    retry = retry_policy(5, backoff)
    assert isinstance(retry, Retry)
    assert retry.get_retries() == 5
    assert retry._backoff is backoff
    assert RedisConnectionError in retry._supported_errors
    assert RedisTimeoutError in retry._supported_errors
    assert TimeoutError in retry._supported_errors  # socket.timeout
    async_retry = async_retry_policy(2, backoff)
    assert isinstance(async_retry, AsyncRetry)
    assert set(async_retry._supported_errors) == set(retry._supported_errors)
    assert copy.deepcopy(retry)._backoff is backoff  # redis-py copies it for every connection


def _failing(error: Exception) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise error

    return fail, calls


def test_retry_policy_retries_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.retry as redis_retry

    delays: list[float] = []
    monkeypatch.setattr(redis_retry, "sleep", delays.append)
    retry = retry_policy(3, Backoff.default(rng=_Seq(0.0)))
    fail, calls = _failing(RedisConnectionError("down"))
    with pytest.raises(RedisConnectionError):
        retry.call_with_retry(fail, lambda error: None)
    assert len(calls) == 4  # the first try and 3 retries
    assert delays == pytest.approx([0.05, 0.1, 0.15])


def test_retry_policy_never_retries_an_authentication_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis.retry as redis_retry

    monkeypatch.setattr(redis_retry, "sleep", lambda delay: None)
    retry = retry_policy(3, Backoff.default())
    error = AuthenticationError("invalid username-password pair")
    fail, calls = _failing(error)
    with pytest.raises(AuthenticationError) as info:
        retry.call_with_retry(fail, lambda error: None)
    assert info.value is error
    assert len(calls) == 1


async def test_async_retry_policy_never_retries_an_authentication_failure() -> None:
    retry = async_retry_policy(3, Backoff.exponential(base=0.0001, cap=0.0001))
    calls: list[int] = []
    error = AuthenticationError("invalid username-password pair")

    async def fail() -> None:
        calls.append(1)
        raise error

    async def on_failure(error: Exception) -> None:
        pass

    with pytest.raises(AuthenticationError) as info:
        await retry.call_with_retry(fail, on_failure)
    assert info.value is error
    assert len(calls) == 1
    calls.clear()

    async def down() -> None:
        calls.append(1)
        raise RedisConnectionError("down")

    with pytest.raises(RedisConnectionError):
        await retry.call_with_retry(down, on_failure)
    assert len(calls) == 4
