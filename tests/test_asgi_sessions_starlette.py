"""Starlette's own ``SessionMiddleware`` tests, run against redkit's server-side one.

Ported from Starlette (https://github.com/encode/starlette, BSD-3-Clause, copyright Encode OSS
Ltd.), ``tests/middleware/test_session.py`` at commit cb8f84f5284dc301ca7a31eb732b9e140769dd48,
so that redkit's middleware is a drop-in where it does not weaken security. Each test keeps
Starlette's name, routes and requests; Starlette's ``TestClient`` drives the app (inside a
``with`` block: one event loop per client, as redis-py's asyncio client needs), and every app
gets its own ``redkit.asyncio.SessionStore`` on the test's server (standalone and Cluster).

The deliberate differences (also listed in the README's sessions section), each adapted below:

- ``secret_key`` must have at least 16 bytes (Starlette takes ``"example"``): ``SECRET``.
- ``secure`` (Starlette: ``https_only``) defaults to True in redkit, False in Starlette: the
  tests that rely on Starlette's default pass ``secure=False``.
- the default ``max_age`` is the store's ``ttl`` (Starlette: 14 days): the cookie never
  outlives the session it names.
- ``max_age`` must be a positive int or None: Starlette's ``max_age=-1`` (a cookie that
  expires at once) is refused with ``ConfigurationError``; the expired session is staged by
  deleting it on the server instead.
- (not a difference of behaviour) a client gets its own app instance: redis-py's asyncio
  client belongs to one event loop, and each ``TestClient`` runs its own; the sessions live
  in Redis, so two instances are one application.
- cookie attributes are written ``Path=``/``Domain=`` (Starlette: lowercase); attribute
  names are case-insensitive (RFC 6265), so the checks ignore case.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2 (not installed here)
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import redkit.asyncio
from redkit.errors import ConfigurationError
from redkit.integrations.asgi import SessionMiddleware

SECRET = "example, padded to the 16 bytes redkit asks for"
TTL = 3600


def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    data = await request.json()
    request.session.update(data)
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


def _routes(*names: str) -> list[Route]:
    endpoints = {
        "view_session": (view_session, ["GET"]),
        "update_session": (update_session, ["POST"]),
        "clear_session": (clear_session, ["POST"]),
    }
    return [
        Route(f"/{name}", endpoint=endpoints[name][0], methods=endpoints[name][1]) for name in names
    ]


AppFactory = Callable[..., Starlette]
ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_app(redis_url: str) -> AppFactory:
    """Starlette(routes, middleware=[SessionMiddleware(store on this test's server, **options)])."""

    def make(routes: list[Any], **options: Any) -> Starlette:
        client = redkit.asyncio.connect(redis_url)
        store = redkit.asyncio.SessionStore(client, ttl=TTL)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await client.aclose()

        middleware = Middleware(SessionMiddleware, store=store, secret_key=SECRET, **options)  # type: ignore[arg-type]
        return Starlette(routes=routes, middleware=[middleware], lifespan=lifespan)

    return make


@pytest.fixture
def test_client_factory() -> Iterator[ClientFactory]:
    """Starlette's fixture, each client entered (one event loop for its requests)."""
    with contextlib.ExitStack() as stack:

        def factory(app: Starlette, **kwargs: Any) -> TestClient:
            return stack.enter_context(TestClient(app, **kwargs))

        yield factory


def test_session(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    app = make_app(_routes("view_session", "update_session", "clear_session"), secure=False)
    client = test_client_factory(app)

    response = client.get("/view_session")
    assert response.json() == {"session": {}}

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age (adapted: redkit's default is the store's ttl, not 14 days)
    set_cookie = response.headers["set-cookie"]
    max_age_matches = re.search(r"; Max-Age=([0-9]+);", set_cookie)
    assert max_age_matches is not None
    assert int(max_age_matches[1]) == TTL

    response = client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_expires(
    make_app: AppFactory, test_client_factory: ClientFactory, admin: Any, redis_url: str
) -> None:
    # adapted: max_age=-1 is refused; the expired session is deleted on the server instead
    store = redkit.asyncio.SessionStore(redkit.asyncio.connect(redis_url))
    with pytest.raises(ConfigurationError, match="max_age"):
        SessionMiddleware(view_session, store, SECRET, max_age=-1)  # type: ignore[arg-type]
    app = make_app(_routes("view_session", "update_session"), secure=False)
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # requests removes expired cookies from response.cookies, we need to
    # fetch session id from the headers and pass it explicitly
    expired_cookie_header = response.headers["set-cookie"]
    expired_session_match = re.search(r"session=([^;]*);", expired_cookie_header)
    assert expired_session_match is not None
    expired_session_value = expired_session_match[1]
    admin.delete(f"session:{{{expired_session_value.split('.')[0]}}}")  # (adapted) it expired
    app = make_app(_routes("view_session", "update_session"), secure=False)  # (adapted)
    client = test_client_factory(app, cookies={"session": expired_session_value})
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_secure_session(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    app = make_app(_routes("view_session", "update_session", "clear_session"), secure=True)
    secure_client = test_client_factory(app, base_url="https://testserver")
    app = make_app(_routes("view_session", "update_session", "clear_session"), secure=True)
    unsecure_client = test_client_factory(app, base_url="http://testserver")  # (adapted)

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = unsecure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie_subpath(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    second_app = make_app(_routes("update_session"), secure=False, path="/second_app")
    app = Starlette(routes=[Mount("/second_app", app=second_app)])
    client = test_client_factory(app, base_url="http://testserver/second_app")
    response = client.post("/update_session", json={"some": "data"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    cookie_path_match = re.search(r"; path=(\S+);", cookie, re.IGNORECASE)  # (adapted: Path=)
    assert cookie_path_match is not None
    cookie_path = cookie_path_match.groups()[0]
    assert cookie_path == "/second_app"


def test_invalid_session_cookie(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    app = make_app(_routes("view_session", "update_session"), secure=False)
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # we expect it to not raise an exception if we provide a bogus session cookie
    app = make_app(_routes("view_session", "update_session"), secure=False)  # (adapted)
    client = test_client_factory(app, cookies={"session": "invalid"})
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    app = make_app(_routes("view_session", "update_session"), secure=False, max_age=None)
    client: TestClient = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "Max-Age" not in set_cookie

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_domain_cookie(make_app: AppFactory, test_client_factory: ClientFactory) -> None:
    app = make_app(_routes("view_session", "update_session"), secure=False, domain=".example.com")
    client: TestClient = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "domain=.example.com" in set_cookie.lower()  # (adapted: Domain=)

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}
