"""SessionMiddleware over real HTTP: uvicorn on a loopback port, httpx, a Starlette app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import redkit
import redkit.asyncio
from redkit.errors import ConfigurationError
from redkit.integrations.asgi import SessionMiddleware

SECRET = "a test secret of enough bytes"


def _app(url: str) -> Starlette:
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

    app = Starlette(
        routes=[
            Route("/put/{key}", put),
            Route("/show", show),
            Route("/login/{user}", login),
            Route("/logout", logout),
        ]
    )
    store = redkit.asyncio.SessionStore(redkit.asyncio.connect(url), ttl=600)
    app.add_middleware(SessionMiddleware, store=store, secret_key=SECRET, secure=True)
    return app


@pytest.fixture
def server(redis_url: str) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(_app(redis_url), host="127.0.0.1", port=port, log_level="warning")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not web.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    web.should_exit = True
    thread.join(10)


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
