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
from redkit.integrations.asgi.ratelimit import forwarded_for, header

# draft-ietf-httpapi-ratelimit-headers-11: a List of Items whose value is an sf-string
POLICY = re.compile(r'^"(?P<name>[^"\\]*)";q=(?P<q>\d+);w=(?P<w>[1-9]\d*)$')
LIMIT = re.compile(r'^"(?P<name>[^"\\]*)";r=(?P<r>\d+);t=(?P<t>\d+)$')


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello", headers={"x-app": "1"})


class Served:
    """An ASGI app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any, **config_options: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **config_options)
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

    def start(
        make: Callable[[Any], Any], uvicorn: dict[str, Any] | None = None, **options: Any
    ) -> tuple[str, Any]:
        limiter = make(client)
        app = Starlette(routes=[Route("/", hello)])
        server = Served(RateLimitMiddleware(app, limiter, **options), **(uvicorn or {}))
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
        # refills and emissions many seconds apart, so a slow (loaded) run gets no third pass
        lambda c: redkit.asyncio.TokenBucketLimiter(c, 2, 0.05),
        lambda c: redkit.asyncio.GCRALimiter(c, 2, 30),
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


# -- forwarded addresses ---------------------------------------------------------------------

#: uvicorn would itself rewrite the client address from X-Forwarded-For (it trusts
#: 127.0.0.1 by default): off, so the key function sees what the app behind a proxy sees.
RAW_PEER = {"proxy_headers": False}


def _statuses(http: httpx.Client, forwarded: list[str]) -> list[int]:
    return [http.get("/", headers={"x-forwarded-for": value}).status_code for value in forwarded]


def test_forwarded_for_keys_by_what_the_proxy_appended_whatever_the_client_put_first(
    serve: Any, redis_url: str
) -> None:
    """Behind one proxy, a client that makes up a new X-Forwarded-For for each request still
    has one allowance: the proxy appends the real address after the made-up ones."""
    url, _ = serve(
        lambda c: redkit.asyncio.FixedWindowLimiter(c, 2, 60),
        uvicorn=RAW_PEER,
        key=forwarded_for(proxies=1),
    )
    spoofed = [f"10.9.9.{i}, 203.0.113.7" for i in range(3)] + ["1.1.1.1,2.2.2.2, 203.0.113.7"]
    with httpx.Client(base_url=url) as http:
        assert _statuses(http, spoofed) == [200, 200, 429, 429]
        assert _statuses(http, ["203.0.113.8"]) == [200]  # another client
    with redkit.connect(redis_url) as client:  # the same limiter, seen from the sync face
        same = redkit.FixedWindowLimiter(client, 2, 60)
        assert same.peek("203.0.113.7").remaining == 0
        assert same.peek("10.9.9.0").remaining == 2  # no made-up address was used


def test_forwarded_for_behind_two_proxies_and_falling_back_to_the_peer(serve: Any) -> None:
    url, _ = serve(
        lambda c: redkit.asyncio.FixedWindowLimiter(c, 1, 60),
        uvicorn=RAW_PEER,
        key=forwarded_for(proxies=2),
    )
    with httpx.Client(base_url=url) as http:
        # the outer proxy appended 198.51.100.4, the inner one the outer's address
        assert _statuses(http, ["6.6.6.6, 198.51.100.4, 10.0.0.2"]) == [200]
        assert _statuses(http, ["7.7.7.7, 198.51.100.4, 10.0.0.3"]) == [429]
        # too short, or not an address where the proxy writes: the peer (127.0.0.1)
        assert _statuses(http, ["198.51.100.5"]) == [200]
        assert _statuses(http, ["unknown, 10.0.0.2"]) == [429]
        assert http.get("/").status_code == 429


def test_forwarded_for_with_trusted_networks(serve: Any) -> None:
    url, _ = serve(
        lambda c: redkit.asyncio.FixedWindowLimiter(c, 1, 60),
        uvicorn=RAW_PEER,
        key=forwarded_for(trusted=["127.0.0.0/8", "10.0.0.0/8"]),
    )
    with httpx.Client(base_url=url) as http:
        assert _statuses(http, ["6.6.6.6, 198.51.100.9, 10.1.2.3"]) == [200]
        assert _statuses(http, ["198.51.100.9, 10.7.7.7"]) == [429]  # the same client
        assert _statuses(http, ["198.51.100.10"]) == [200]


def test_forwarded_for_ignores_the_header_from_a_peer_outside_the_trusted_networks(
    serve: Any,
) -> None:
    url, _ = serve(
        lambda c: redkit.asyncio.FixedWindowLimiter(c, 1, 60),
        uvicorn=RAW_PEER,
        key=forwarded_for(trusted=["10.0.0.0/8"]),
    )
    with httpx.Client(base_url=url) as http:
        assert _statuses(http, ["198.51.100.1", "198.51.100.2"]) == [200, 429]  # 127.0.0.1


def _scope(*headers: tuple[str, str], peer: str = "10.0.0.1") -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 5000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def test_forwarded_for_reads_ports_ipv6_several_lines_and_rfc_7239() -> None:
    key = forwarded_for()
    assert key(_scope(("X-Forwarded-For", "1.1.1.1, 198.51.100.1:8443"))) == "198.51.100.1"
    assert key(_scope(("x-forwarded-for", "[2001:db8::1]:443"))) == "2001:db8::1"
    assert key(_scope(("x-forwarded-for", "::ffff:198.51.100.2"))) == "198.51.100.2"
    assert key(_scope(("x-forwarded-for", "2001:DB8:0::2"))) == "2001:db8::2"
    assert key(_scope(("x-forwarded-for", "198.51.100.3"), ("x-forwarded-for", ""))) == "10.0.0.1"
    two = forwarded_for(proxies=2)
    assert two(_scope(("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"))) == "1.1.1.1"
    rfc = forwarded_for(header="Forwarded")
    value = 'for=6.6.6.6, for="[2001:db8::7]:80";proto=https'
    assert rfc(_scope(("forwarded", value))) == "2001:db8::7"
    assert rfc(_scope(("forwarded", "for=_hidden"))) == "10.0.0.1"
    assert key({"type": "http", "headers": []}) == "unknown"


def test_keying_by_a_forwarded_header_as_such_is_refused() -> None:
    for name in ("X-Forwarded-For", "forwarded", " x-forwarded-for "):
        with pytest.raises(ConfigurationError, match="forwarded_for"):
            header(name)
    with pytest.raises(ConfigurationError, match="not both"):
        forwarded_for(2, trusted=["10.0.0.0/8"])
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match="proxies"):
            forwarded_for(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="networks"):
        forwarded_for(trusted=["10.0.0.0/33"])
    with pytest.raises(ConfigurationError, match="no network"):
        forwarded_for(trusted=[])
