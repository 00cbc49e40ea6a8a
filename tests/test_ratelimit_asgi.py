"""RateLimitMiddleware over real HTTP: a Starlette app served by uvicorn on a loopback port,
requests sent with httpx, limiters on standalone and Cluster."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import redkit
import redkit.asyncio
from redkit.errors import ConfigurationError
from redkit.integrations.asgi import RateLimitMiddleware
from redkit.integrations.asgi.ratelimit import header

# draft-ietf-httpapi-ratelimit-headers-11: a List of Items whose value is an sf-string
POLICY = re.compile(r'^"(?P<name>[^"\\]*)";q=(?P<q>\d+);w=(?P<w>[1-9]\d*)$')
LIMIT = re.compile(r'^"(?P<name>[^"\\]*)";r=(?P<r>\d+);t=(?P<t>\d+)$')


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello", headers={"x-app": "1"})


class Served:
    """An ASGI app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def serve(redis_url: str) -> Iterator[Callable[..., tuple[str, Any]]]:
    """``serve(make_limiter, **middleware_options)`` -> (base URL, limiter)."""
    served: list[Served] = []
    client = redkit.asyncio.connect(redis_url)

    def start(make: Callable[[Any], Any], **options: Any) -> tuple[str, Any]:
        limiter = make(client)
        app = Starlette(routes=[Route("/", hello)])
        server = Served(RateLimitMiddleware(app, limiter, **options))
        served.append(server)
        return server.url, limiter

    yield start
    for server in served:
        server.stop()


def test_limited_responses_carry_the_fields_and_the_429_says_when_to_retry(
    serve: Any,
) -> None:
    url, _ = serve(lambda c: redkit.asyncio.FixedWindowLimiter(c, 3, 60))
    with httpx.Client(base_url=url) as http:
        responses = [http.get("/") for _ in range(4)]
    for response, left in zip(responses[:3], [2, 1, 0], strict=True):
        assert response.status_code == 200 and response.text == "hello"
        assert response.headers["x-app"] == "1"  # the app's own headers are kept
        assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
        field = LIMIT.match(response.headers["ratelimit"])
        assert field and int(field["r"]) == left and 1 <= int(field["t"]) <= 60
    denied = responses[3]
    assert denied.status_code == 429
    assert denied.headers["content-type"] == "application/problem+json"
    problem = denied.json()
    assert problem["type"].endswith("#quota-exceeded") and problem["violated-policies"] == [
        "default"
    ]
    retry = int(denied.headers["retry-after"])
    assert 1 <= retry <= 60
    field = LIMIT.match(denied.headers["ratelimit"])
    assert field and field["r"] == "0" and int(field["t"]) == retry


@pytest.mark.parametrize(
    "make",
    [
        lambda c: redkit.asyncio.SlidingWindowLogLimiter(c, 2, 30),
        lambda c: redkit.asyncio.SlidingWindowCounterLimiter(c, 2, 30),
        lambda c: redkit.asyncio.TokenBucketLimiter(c, 2, 0.5),
        lambda c: redkit.asyncio.GCRALimiter(c, 2, 0.5),
        lambda c: redkit.LocalGCRALimiter(2, 10),
    ],
    ids=["log", "counter", "bucket", "gcra", "in-process"],
)
def test_every_limiter_sends_well_formed_fields(serve: Any, make: Any) -> None:
    url, limiter = serve(make, policy="per-client")
    quota, window = limiter.quota
    with httpx.Client(base_url=url) as http:
        responses = [http.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    for response in responses:
        policy = POLICY.match(response.headers["ratelimit-policy"])
        assert policy and policy["name"] == "per-client" and int(policy["q"]) == quota
        assert int(policy["w"]) >= window
        assert LIMIT.match(response.headers["ratelimit"])
    denied = responses[2]
    retry = int(denied.headers["retry-after"])
    field = LIMIT.match(denied.headers["ratelimit"])
    assert retry >= 1 and field and int(field["t"]) == retry and field["r"] == "0"


def test_keys_by_header_and_a_missing_header_is_the_client_address(serve: Any) -> None:
    url, _ = serve(lambda c: redkit.asyncio.FixedWindowLimiter(c, 1, 60), key=header("X-Api-Key"))
    with httpx.Client(base_url=url) as http:
        assert http.get("/", headers={"x-api-key": "a"}).status_code == 200
        assert http.get("/", headers={"x-api-key": "a"}).status_code == 429
        assert http.get("/", headers={"x-api-key": "b"}).status_code == 200
        assert http.get("/").status_code == 200  # keyed by the address
        assert http.get("/").status_code == 429


def test_keys_and_costs_from_functions_and_none_is_unlimited(serve: Any) -> None:
    async def by_path(scope: Any) -> str | None:
        await asyncio.sleep(0)
        return None if scope["path"] == "/health" else scope["path"]

    url, _ = serve(
        lambda c: redkit.asyncio.TokenBucketLimiter(c, 10, 0.001),
        key=by_path,
        cost=lambda scope: 4 if scope["method"] == "POST" else 1,
    )
    with httpx.Client(base_url=url) as http:
        assert http.get("/health").status_code == 404  # unlimited: straight to the app
        assert "ratelimit" not in http.get("/health").headers
        posts = [http.post("/").status_code for _ in range(3)]
        assert posts == [405, 405, 429]  # 4 + 4, then 4 more do not fit in 10
        assert LIMIT.match(http.get("/").headers["ratelimit"])


def test_the_middleware_refuses_a_sync_limiter_and_bad_options(redis_url: str) -> None:
    client = redkit.connect(redis_url)
    app = Starlette()
    with pytest.raises(ConfigurationError, match=r"asyncio limiter \(redkit\.asyncio\.Fixed"):
        RateLimitMiddleware(app, redkit.FixedWindowLimiter(client, 1, 1))
    async_limiter = redkit.asyncio.FixedWindowLimiter(redkit.asyncio.connect(redis_url), 1, 1)
    with pytest.raises(ConfigurationError, match="policy"):
        RateLimitMiddleware(app, async_limiter, policy="bad\nname")
    with pytest.raises(ConfigurationError, match="redkit limiter"):
        RateLimitMiddleware(app, object())
    client.close()
