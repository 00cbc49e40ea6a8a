"""No password ever shows in an error, a log line or a repr, whatever the input.

The secret in every case below carries the marker ``SECRET`` (non-ASCII, so it cannot occur in
any message by chance): a leak of any part of the password that holds the marker is caught,
not only a leak of the whole password. The property-based tests draw passwords from a rich
alphabet (URL delimiters, ``%``, brackets, non-ASCII) and check that every generated URL either
parses to the right fields or raises ConfigurationError, and never leaks the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from redkit._core.options import resolve_options
from redkit._core.urls import mask_url, parse_url, resolve_spec
from redkit.errors import ConfigurationError

SECRET = "s3\u00e7r\u00eatK9"  # "s3çrêtK9"
PIECES = ("s3\u00e7", "\u00eatK9")  # each half is checked too


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def texts_of(exc: BaseException) -> list[str]:
    """Every text a user may see from ``exc``: str, repr and args along the whole chain."""
    out: list[str] = []
    for current in _chain(exc):
        out += [str(current), repr(current), *map(repr, current.args)]
    return out


def assert_no_secret(texts: list[str], secret: str = SECRET) -> None:
    """Fail if ``secret`` (or a marked half of it) appears in any of ``texts``."""
    pieces = (secret, *PIECES) if secret == SECRET else (secret,)
    for text in texts:
        for piece in pieces:
            assert piece not in text, f"secret piece {piece!r} leaked in {text!r}"


def _parse_error(url: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    return info.value


# --------------------------------------------------------------------------- the cases of issue 6


@pytest.mark.parametrize(
    "url",
    [
        f"redis:/:{SECRET}@h:6379/0",  # one slash
        f"redis//:{SECRET}@h:6379/0",  # no colon
        f"redis:///:{SECRET}@h:6379/0",  # three slashes
        f"redis:/user:{SECRET}@h",
        f"redis:{SECRET}@h",
        f"redis:://:{SECRET}@h",
        f"//:{SECRET}@h:6379",
        f":{SECRET}@h:6379",
        f"http://:{SECRET}@h",
        f"unix:///:{SECRET}@/tmp/r.sock",
    ],
)
def test_scheme_typos_do_not_leak(url: str) -> None:
    assert_no_secret(texts_of(_parse_error(url)))
    assert_no_secret([mask_url(url)])


@pytest.mark.parametrize("char", ["#", "?", "/", "@/", "@?", "@#", "&", "%", "[", "]", " "])
@pytest.mark.parametrize("template", ["redis://:{pw}@h:6379/0", "redis://u:{pw}@h/0?db=1"])
def test_unencoded_characters_in_the_user_info(char: str, template: str) -> None:
    for password in (f"{PIECES[0]}{char}{PIECES[1]}", f"{char}{SECRET}", f"{SECRET}{char}"):
        url = template.format(pw=password)
        assert_no_secret([mask_url(url)])
        try:
            spec = parse_url(url)
        except ConfigurationError as exc:
            assert_no_secret(texts_of(exc))
        else:  # when it parses, it parses right, and hides the password
            assert spec.password == unquote(password)
            assert_no_secret([repr(spec), spec.url])


@pytest.mark.parametrize("char", ["#", "&", "+", "%", "=", "&&", "&x", "&db=x"])
@pytest.mark.parametrize("key", ["password", "sentinel_password"])
def test_unencoded_characters_in_a_query_password(char: str, key: str) -> None:
    for password in (f"{PIECES[0]}{char}{PIECES[1]}", f"{SECRET}{char}", f"{char}{SECRET}"):
        url = f"redis+sentinel://s1:26379/mm?{key}={password}&retries=2"
        assert_no_secret([mask_url(url)])
        try:
            spec = parse_url(url)
        except ConfigurationError as exc:
            assert_no_secret(texts_of(exc))
        else:
            assert_no_secret([repr(spec), spec.url])


@pytest.mark.parametrize(
    "url",
    [
        f"redis://h/0?sentinel_password={SECRET}",  # not a sentinel URL: unknown option
        f"redis://h/0?password={SECRET}&password={SECRET}",
        f"redis://h/0?password={SECRET}&bogus=1",
        f"redis://:{SECRET}@h/0?password={SECRET}",
        f"redis://:{SECRET}@h/0#frag",
        f"redis://:{SECRET}@[::1/0",
        f"redis://:{SECRET}@h:99999/0",
        f"redis://:{SECRET}@h/0?socket_timeout=soon",
        f"redis+cluster://:{SECRET}@a:1/3",
        f"redis+sentinel://:{SECRET}@s1",
        f"embedded://:{SECRET}@",
        f"unix://:{SECRET}@host/x.sock",
    ],
)
def test_other_errors_do_not_leak(url: str) -> None:
    assert_no_secret(texts_of(_parse_error(url)))


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        (b"hunter2hunter2", "hunter2"),
        (bytearray(b"hunter2hunter2"), "hunter2"),
        ([SECRET], SECRET),
        ((SECRET,), SECRET),
        ({"pw": SECRET}, SECRET),
        (73154219, "73154219"),
        (7.25, "7.25"),
    ],
)
def test_a_bad_password_keyword_is_not_shown(value: Any, secret: str) -> None:
    with pytest.raises(ConfigurationError, match="password") as info:
        resolve_options(parse_url("redis://h/0"), {"password": value})
    assert_no_secret(texts_of(info.value), secret)


def test_the_environment_password_is_not_shown() -> None:
    env = {"REDIS_PASSWORD": SECRET, "REDIS_PORT": "http"}
    with pytest.raises(ConfigurationError) as info:
        resolve_spec(None, env)
    assert_no_secret(texts_of(info.value))
    spec = resolve_spec(None, {"REDIS_PASSWORD": SECRET, "REDIS_HOST": "h"})
    assert spec.password == SECRET
    assert_no_secret([repr(spec), spec.url, repr(resolve_options(spec, {}))])
    for host in (f":{SECRET}@h", f"u:{SECRET}@h:1"):
        with pytest.raises(ConfigurationError) as info:
            resolve_spec(None, {"REDIS_HOST": host})
        assert_no_secret(texts_of(info.value))


@pytest.mark.parametrize(
    "url", [f"redis:/:{SECRET}@h", f"redis://:{SECRET}@h:x", f"redis://h?password={SECRET}#"]
)
def test_redis_url_from_the_environment_does_not_leak(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_spec(None, {"REDIS_URL": url})
    assert "REDIS_URL" in str(info.value)
    assert_no_secret(texts_of(info.value))


def test_reprs_hide_every_password() -> None:
    spec = parse_url(f"redis+sentinel://u:{SECRET}@s1/mm?sentinel_password={SECRET}")
    options = resolve_options(spec, {})
    assert options.password == SECRET
    assert_no_secret([repr(spec), str(spec), spec.url, repr(options), str(options)])
    options = resolve_options(parse_url("redis://h"), {"password": SECRET})
    assert_no_secret([repr(options)])


# --------------------------------------------------------------------------- properties

# Every character that has a meaning somewhere in a URL, and some that have none.
_DELIMITERS = ":@/?#%&=[]+;, \t!$'()*~"
_RICH = st.text(
    alphabet=st.one_of(
        st.sampled_from(_DELIMITERS),
        st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1F5FF),
    ),
    max_size=12,
)
_MARK = "\u2603Q7"  # a snowman: in no message by chance
_HOSTS = st.sampled_from(["h", "cache.internal", "127.0.0.1", "[::1]", "node-1.example.com"])
_USERS = st.one_of(st.none(), st.sampled_from(["", "alice", "app_user", "d\u00e9j\u00e0"]))


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """A password with the marker somewhere inside rich-alphabet text."""
    return draw(_RICH) + _MARK + draw(_RICH)


@st.composite
def urls(draw: st.DrawFn, encode: bool) -> tuple[str, dict[str, object]]:
    """A URL with a password in it, and the fields it should parse to.

    ``encode`` percent-encodes the password as a careful user would; otherwise it is pasted
    raw, as a careless one would (then "the right fields" are the RFC reading of the text).
    """
    password = draw(passwords())
    scheme = draw(st.sampled_from(["redis", "rediss", "redis+cluster", "redis+sentinel", "unix"]))
    where = draw(st.sampled_from(["userinfo", "query"]))
    user = draw(_USERS)
    encoded = quote(password, safe="") if encode else password
    expected: dict[str, object] = {}
    userinfo = ""
    query: list[str] = []
    if where == "userinfo":
        userinfo = f"{quote(user or '', safe='')}:{encoded}@"
        expected["password"] = unquote(encoded)
        expected["username"] = user or None
    else:
        key = draw(
            st.sampled_from(
                ["password", "sentinel_password"] if scheme == "redis+sentinel" else ["password"]
            )
        )
        query.append(f"{key}={encoded}")
        expected[key] = unquote(encoded.replace("+", " "))
    if draw(st.booleans()):
        query.append("retries=2")
        expected["retries"] = 2
    if scheme == "unix":
        authority_and_path = "/tmp/redis.sock"
        expected["path"] = "/tmp/redis.sock"
    else:
        hosts = draw(
            st.lists(_HOSTS, min_size=1, max_size=1 if scheme in ("redis", "rediss") else 3)
        )
        authority_and_path = ",".join(f"{h}:{7000 + i}" for i, h in enumerate(hosts))
        if scheme == "redis+sentinel":
            authority_and_path += "/mymaster"
    url = f"{scheme}://{userinfo}{authority_and_path}"
    if query:
        url += "?" + "&".join(query)
    return url, expected


def _fields(url: str) -> dict[str, object]:
    spec = parse_url(url)
    found = {
        name: getattr(spec, name)
        for name in ("password", "username", "sentinel_password", "path")
        if hasattr(spec, name)
    }
    found.update(spec.options)
    assert_no_secret([repr(spec), spec.url, repr(resolve_options(spec, {}))], _MARK)
    return found


@given(urls(encode=True))
@example(("redis://:%E2%98%83Q7@h:7000", {"password": _MARK, "username": None}))
def test_encoded_passwords_parse_right(case: tuple[str, dict[str, object]]) -> None:
    url, expected = case
    found = _fields(url)
    for name, value in expected.items():
        assert found.get(name) == value, (name, url)
    assert_no_secret([mask_url(url)], _MARK)


@given(urls(encode=False))
@example(("redis://:a#\u2603Q7@h:7000", {"password": "a#\u2603Q7"}))
@example(("redis://:\u2603Q7?x@h:7000", {"password": "\u2603Q7?x"}))
@example(("redis://:\u2603Q7/@h:7000", {"password": "\u2603Q7/"}))
@example(("redis://h:7000?password=\u2603Q7 ", {"password": "\u2603Q7 "}))
def test_raw_passwords_parse_right_or_raise_without_leaking(
    case: tuple[str, dict[str, object]],
) -> None:
    url, expected = case
    assert_no_secret([mask_url(url)], _MARK)
    try:
        found = _fields(url)
    except ConfigurationError as exc:
        assert_no_secret(texts_of(exc), _MARK)
        return
    password = str(expected.get("password", expected.get("sentinel_password", "")))
    if "&" in password:  # a raw '&' in a query value cannot be told from an option separator
        assume(False)
    if url != url.strip():  # a URL is stripped first (it may come from a file or a variable)
        assume(False)
    for name, value in expected.items():
        assert found.get(name) == value, (name, url)


@given(st.text(max_size=40), passwords())
def test_any_text_around_a_password_never_leaks(prefix: str, password: str) -> None:
    for url in (
        f"{prefix}:{password}@h",
        f"{prefix}:{password}@{prefix}",
        f"{prefix}?password={password}",
        f"redis://{prefix}:{password}@h",
    ):
        assert_no_secret([mask_url(url)], _MARK)
        try:
            parse_url(url)
        except ConfigurationError as exc:
            assert_no_secret(texts_of(exc), _MARK)
