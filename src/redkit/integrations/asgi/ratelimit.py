"""``RateLimitMiddleware``: rate limiting for any ASGI app (Starlette, FastAPI, ...).

Pure ASGI, no framework imports. Each HTTP request takes ``cost`` from the allowance of its
key (by default the client's address; :func:`header` keys by a request header; any function
of the ASGI scope works). A denied request gets ``429 Too Many Requests`` with
``Retry-After`` and an ``application/problem+json`` body of type ``quota-exceeded``; every
limited response carries the ``RateLimit-Policy`` and ``RateLimit`` fields of
draft-ietf-httpapi-ratelimit-headers (draft 11)::

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=42;t=17

``q`` is the quota and ``w`` its window in seconds; ``r`` the quota left and ``t`` the seconds
within which no more than ``r`` is available: until the allowance is full again after an
admitted request, until ``Retry-After`` on a 429 (so ``Retry-After`` never points before the
end of ``t``, as the draft asks).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from redkit._core.keys import KeyId
from redkit._core.ratelimit import RateLimitResult
from redkit._core.ratelimit_algorithms import check_cost
from redkit._sync.ratelimit import Limiter as SyncLimiter
from redkit.errors import ConfigurationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyFunc = Callable[[Scope], KeyId | Awaitable[KeyId | None] | None]
CostFunc = Callable[[Scope], int | Awaitable[int]]

#: RFC 8941 sf-string characters: printable ASCII (quote and backslash are escaped).
_SF_STRING = re.compile(r"^[\x20-\x7e]*$")
_QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

__all__ = ["RateLimitMiddleware", "client_address", "header"]


def client_address(scope: Scope) -> str:
    """The client's IP address (``scope["client"]``), or ``"unknown"`` when the server gives
    none. Behind a proxy this is the proxy: key by a header the proxy sets instead."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def header(name: str) -> Callable[[Scope], str]:
    """A key function: the value of request header ``name``, or the client's address when the
    request has none (so leaving the header out does not escape the limit)."""
    wanted = name.lower().encode("latin-1")

    def key(scope: Scope) -> str:
        for field, value in scope.get("headers") or ():
            if field.lower() == wanted and value:
                return f"{name.lower()}:{value.decode('latin-1')}"
        return f"client:{client_address(scope)}"

    key.__qualname__ = f"header({name!r})"
    return key


class RateLimitMiddleware:
    """Wraps ``app``; see the module docstring.

    ``limiter``: a ``redkit.asyncio`` limiter (or an in-process ``redkit.Local...Limiter``).
    ``key``: a function of the ASGI scope returning the limited id (sync or async; ``None``
    lets the request through unlimited and without headers); by default the client address.
    ``cost``: an int or a function of the scope. ``policy``: the policy's name in the
    headers. Non-HTTP scopes (websocket, lifespan) pass through untouched. When the limiter
    raises (``on_error="raise"`` and Redis is down), the request fails with that error.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: Any,
        *,
        key: KeyFunc = client_address,
        cost: int | CostFunc = 1,
        policy: str = "default",
    ) -> None:
        if isinstance(limiter, SyncLimiter):
            raise ConfigurationError(
                "RateLimitMiddleware needs an asyncio limiter (redkit.asyncio."
                f"{type(limiter).__name__}): a sync one would block the event loop"
            )
        if not callable(getattr(limiter, "hit", None)) or not hasattr(limiter, "quota"):
            raise ConfigurationError(
                f"RateLimitMiddleware needs a redkit limiter, got {type(limiter).__name__}"
            )
        if not callable(key):
            raise ConfigurationError(f"key must be a function of the ASGI scope, got {key!r}")
        if not callable(cost):
            check_cost(cost)
        if not isinstance(policy, str) or not policy or not _SF_STRING.match(policy):
            raise ConfigurationError(
                f"policy must be a non-empty printable ASCII name, got {policy!r}"
            )
        self.app = app
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.name = '"' + policy.replace("\\", "\\\\").replace('"', '\\"') + '"'
        quota, window = limiter.quota
        self.policy_header = f"{self.name};q={quota};w={max(1, math.ceil(window))}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        id = await _maybe_await(self.key(scope))
        if id is None:
            await self.app(scope, receive, send)
            return
        cost = self.cost if isinstance(self.cost, int) else await _maybe_await(self.cost(scope))
        result: RateLimitResult = await _maybe_await(self.limiter.hit(id, cost))
        fields = self._fields(result)
        if not result.allowed:
            await self._refuse(send, result, fields)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)

    def _fields(self, result: RateLimitResult) -> list[tuple[bytes, bytes]]:
        if result.allowed or result.retry_after is None:
            window = result.reset_after
        else:
            window = result.retry_after
        limit = f"{self.name};r={max(0, result.remaining)};t={math.ceil(window)}".encode()
        return [(b"ratelimit-policy", self.policy_header), (b"ratelimit", limit)]

    async def _refuse(
        self, send: Send, result: RateLimitResult, fields: list[tuple[bytes, bytes]]
    ) -> None:
        body = orjson.dumps(
            {
                "type": _QUOTA_EXCEEDED,
                "title": "Request cannot be satisfied as assigned quota has been exceeded",
                "status": 429,
                "violated-policies": [self.name[1:-1]],
            }
        )
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *fields,
        ]
        if result.retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(result.retry_after))).encode()))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
