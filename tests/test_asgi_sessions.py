"""SessionMiddleware over real HTTP: uvicorn on a loopback port, httpx, a Starlette app."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import redkit
import redkit.asyncio
from redkit.errors import ConfigurationError
from redkit.integrations.asgi import SessionMiddleware
from tests.asgi_server import serve

SECRET = "a test secret of enough bytes"

#: /slow: ``entered`` is set once the request has loaded its session; it answers once
#: ``release`` is set
entered = threading.Event()
release = threading.Event()


def _app(url: str, **options: Any) -> Starlette:
    async def put(request: Request) -> JSONResponse:
        request.session[request.path_params["key"]] = request.query_params.get("value")
        return JSONResponse(dict(request.session))

    async def show(request: Request) -> JSONResponse:
        return JSONResponse({"data": dict(request.session), "user": request.session.user_id})

    async def login(request: Request) -> JSONResponse:
        request.session.login(request.path_params["user"])
        return JSONResponse({})

    async def logout(request: Request) -> JSONResponse:
        request.session.logout()
        return JSONResponse({})

    async def add_to_cart(request: Request) -> JSONResponse:
        item = request.query_params["item"]
        if "cart" in request.session:
            request.session["cart"].append(item)  # in place
        else:
            request.session["cart"] = [item]
        return JSONResponse({})

    async def rename(request: Request) -> JSONResponse:
        if "profile" in request.session:
            request.session["profile"]["name"] = request.query_params["name"]  # in place
        else:
            request.session["profile"] = {"name": request.query_params["name"]}
        return JSONResponse({})

    async def clear(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    async def slow(request: Request) -> JSONResponse:
        entered.set()
        await asyncio.to_thread(release.wait, 30)
        return JSONResponse({"data": dict(request.session)})

    app = Starlette(
        routes=[
            Route("/put/{key}", put),
            Route("/show", show),
            Route("/login/{user}", login),
            Route("/logout", logout),
            Route("/cart", add_to_cart),
            Route("/rename", rename),
            Route("/clear", clear),
            Route("/slow", slow),
        ]
    )
    store = redkit.asyncio.SessionStore(redkit.asyncio.connect(url), ttl=600)
    options.setdefault("secure", True)
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET, **options)
    return app


@pytest.fixture
def server(redis_url: str) -> Iterator[str]:
    with serve(_app(redis_url)) as base:
        yield base


@pytest.fixture
def browser_session_server(redis_url: str) -> Iterator[str]:
    """The middleware with ``max_age=None``: a cookie that ends with the browser session."""
    with serve(_app(redis_url, max_age=None)) as base:
        yield base


def _cookie(response: httpx.Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    value = header.split(";")[0].split("=", 1)[1]
    return value, header


def _get(base: str, path: str, cookie: str | None = None) -> httpx.Response:
    headers = {"cookie": f"session={cookie}"} if cookie else {}
    return httpx.get(base + path, headers=headers)


def test_a_session_over_http_with_a_signed_flagged_cookie(server: str, admin: Any) -> None:
    first = _get(server, "/put/color?value=blue")
    cookie, header = _cookie(first)
    assert "HttpOnly" in header and "Secure" in header and "SameSite=Lax" in header
    assert "Max-Age=600" in header and "Path=/" in header
    session_id = cookie.split(".")[0]
    assert admin.exists(f"session:{{{session_id}}}")
    assert _get(server, "/show", cookie).json() == {"data": {"color": "blue"}, "user": None}
    _get(server, "/put/size?value=L", cookie)
    assert _get(server, "/show", cookie).json()["data"] == {"color": "blue", "size": "L"}


@pytest.mark.parametrize("how", ["signature", "id", "unsigned"])
def test_a_tampered_cookie_is_rejected_with_a_fresh_session(
    server: str, admin: Any, how: str
) -> None:
    cookie, _ = _cookie(_get(server, "/put/secret?value=mine"))
    session_id, signature = cookie.split(".")
    forged = {
        "signature": f"{session_id}.{signature[:-2]}AA",
        "id": f"{session_id[:-1]}{'A' if session_id[-1] != 'A' else 'B'}.{signature}",
        "unsigned": session_id,
    }[how]
    shown = _get(server, "/show", forged)
    assert shown.json() == {"data": {}, "user": None}
    fresh = _get(server, "/put/x?value=1", forged)
    new_cookie, _ = _cookie(fresh)
    assert new_cookie.split(".")[0] != session_id
    assert _get(server, "/show", new_cookie).json()["data"] == {"x": "1"}
    assert _get(server, "/show", cookie).json()["data"] == {"secret": "mine"}


def test_login_rotates_the_session_and_logout_destroys_it(server: str, admin: Any) -> None:
    anonymous, _ = _cookie(_get(server, "/put/cart?value=3"))
    logged_in, _ = _cookie(_get(server, "/login/alice", anonymous))
    assert logged_in.split(".")[0] != anonymous.split(".")[0]
    assert _get(server, "/show", anonymous).json() == {"data": {}, "user": None}
    assert _get(server, "/show", logged_in).json() == {"data": {"cart": "3"}, "user": "alice"}
    assert admin.zcard("session:user:{alice}") == 1
    out = _get(server, "/logout", logged_in)
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert _get(server, "/show", logged_in).json() == {"data": {}, "user": None}
    assert not admin.exists(f"session:{{{logged_in.split('.')[0]}}}")


def test_bad_middleware_options_are_refused(redis_url: str) -> None:
    sync_store = redkit.SessionStore(redkit.connect(redis_url))
    with pytest.raises(ConfigurationError, match=r"redkit\.asyncio\.SessionStore"):
        SessionMiddleware(lambda *a: None, sync_store, SECRET)  # type: ignore[arg-type]
    store = redkit.asyncio.SessionStore(redkit.asyncio.connect(redis_url))
    with pytest.raises(ConfigurationError, match="secret_key"):
        SessionMiddleware(lambda *a: None, store, "short")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="secure"):
        SessionMiddleware(lambda *a: None, store, SECRET, same_site="none", secure=False)  # type: ignore[arg-type]


def test_a_sibling_cookie_that_simplecookie_rejects_does_not_hide_the_session(
    server: str,
) -> None:
    cookie, _ = _cookie(_get(server, "/put/color?value=blue"))
    for header in (
        f'prefs={{"theme": "dark"}}; session={cookie}',  # a JSON value
        f"session={cookie}; greeting=hello world",  # a space in a value
        f"flag; session={cookie}; other=1",  # a bare name
        f'session={cookie}; tracker="a\\"b"; x=[1,2]',
    ):
        shown = httpx.get(server + "/show", headers={"cookie": header})
        assert shown.json()["data"] == {"color": "blue"}, header


def test_parse_cookie_is_lenient_like_starlette_and_django() -> None:
    from redkit.integrations.asgi.sessions import parse_cookie

    assert parse_cookie('a=1; b={"x": 2}; flag; c = 3 ;d="q"') == {
        "a": "1",
        "b": '{"x": 2}',
        "": "flag",
        "c": "3",
        "d": "q",
    }
    assert parse_cookie("") == {} and parse_cookie(";;") == {}


def test_in_place_changes_of_nested_values_are_saved(server: str) -> None:
    cookie, _ = _cookie(_get(server, "/cart?item=apple"))
    _get(server, "/cart?item=pear", cookie)
    _get(server, "/rename?name=Ann", cookie)
    _get(server, "/rename?name=Bob", cookie)
    data = _get(server, "/show", cookie).json()["data"]
    assert data == {"cart": ["apple", "pear"], "profile": {"name": "Bob"}}


def test_a_slow_request_ending_after_the_login_does_not_log_the_user_out(
    server: str, admin: Any
) -> None:
    anonymous, _ = _cookie(_get(server, "/put/cart?value=3"))
    entered.clear()
    release.clear()
    slow: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: slow.update(r=_get(server, "/slow", anonymous)))
    worker.start()
    try:
        assert entered.wait(10), "the slow request never started"
        logged_in, _ = _cookie(_get(server, "/login/alice", anonymous))
    finally:
        release.set()
        worker.join(30)
    assert slow["r"].json() == {"data": {"cart": "3"}}
    assert "set-cookie" not in slow["r"].headers, "the slow response re-sent the old id"
    assert _get(server, "/show", logged_in).json() == {"data": {"cart": "3"}, "user": "alice"}


def test_a_max_age_cookie_is_refreshed_only_while_its_session_lives(
    server: str, admin: Any
) -> None:
    cookie, _ = _cookie(_get(server, "/put/a?value=1"))
    refreshed = _get(server, "/show", cookie)
    assert "Max-Age=600" in refreshed.headers["set-cookie"]
    assert _cookie(refreshed)[0] == cookie
    admin.delete(f"session:{{{cookie.split('.')[0]}}}")  # destroyed by another request
    assert "set-cookie" not in _get(server, "/show", cookie).headers


def test_a_browser_session_cookie_is_sent_only_when_the_id_changes(
    browser_session_server: str,
) -> None:
    server = browser_session_server
    first = _get(server, "/put/a?value=1")
    cookie, header = _cookie(first)
    assert "Max-Age" not in header and "Expires" not in header
    assert "set-cookie" not in _get(server, "/show", cookie).headers
    assert "set-cookie" not in _get(server, "/put/b?value=2", cookie).headers
    assert _get(server, "/show", cookie).json()["data"] == {"a": "1", "b": "2"}
    logged_in, header = _cookie(_get(server, "/login/bea", cookie))
    assert logged_in != cookie and "Max-Age" not in header


def test_clearing_the_session_ends_it_and_expires_the_cookie(server: str, admin: Any) -> None:
    cookie, _ = _cookie(_get(server, "/put/a?value=1"))
    cleared = _get(server, "/clear", cookie)
    header = cleared.headers["set-cookie"]
    assert header.startswith("session=;") and "Max-Age=0" in header
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header
    assert not admin.exists(f"session:{{{cookie.split('.')[0]}}}")
    assert _get(server, "/show", cookie).json() == {"data": {}, "user": None}


@pytest.mark.parametrize("max_age", [-1, 0, 1.5, "60", True])
def test_max_age_is_validated(redis_url: str, max_age: Any) -> None:
    store = redkit.asyncio.SessionStore(redkit.asyncio.connect(redis_url))
    with pytest.raises(ConfigurationError, match="max_age"):
        SessionMiddleware(lambda *a: None, store, SECRET, max_age=max_age)  # type: ignore[arg-type]
