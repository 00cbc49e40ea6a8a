"""``RateLimitMiddleware``: rate limiting for any ASGI app (Starlette, FastAPI, ...).

Pure ASGI, no framework imports. Each HTTP request takes ``cost`` from the allowance of its
key (by default the client's address; :func:`forwarded_for` keys by the address your proxies
saw, :func:`header` by a request header such as an API key; any function of the ASGI scope
works). A denied request gets ``429 Too Many Requests`` with
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
import ipaddress
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
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

__all__ = ["RateLimitMiddleware", "client_address", "forwarded_for", "header"]

#: Headers that carry addresses appended by proxies (see :func:`forwarded_for`).
_FORWARDED_HEADERS = {"x-forwarded-for", "forwarded"}


def client_address(scope: Scope) -> str:
    """The client's IP address (``scope["client"]``), or ``"unknown"`` when the server gives
    none. Behind a proxy this is the proxy: key by :func:`forwarded_for` instead."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def header(name: str) -> Callable[[Scope], str]:
    """A key function: the value of request header ``name``, or the client's address when the
    request has none (so leaving the header out does not escape the limit).

    For a header the client itself chooses (an API key). Not for forwarded addresses: a
    client can put anything in front of what its proxies append, and each made-up value
    would get an allowance of its own; ``X-Forwarded-For`` and ``Forwarded`` are refused
    here, use :func:`forwarded_for`.
    """
    if name.strip().lower() in _FORWARDED_HEADERS:
        raise ConfigurationError(
            f"header({name!r}) would key by a value the client can make up: use "
            "forwarded_for(proxies=N) or forwarded_for(trusted=[networks]), which take the "
            "address your own proxies saw"
        )
    wanted = name.lower().encode("latin-1")

    def key(scope: Scope) -> str:
        for field, value in scope.get("headers") or ():
            if field.lower() == wanted and value:
                return f"{name.lower()}:{value.decode('latin-1')}"
        return f"client:{client_address(scope)}"

    key.__qualname__ = f"header({name!r})"
    return key


def forwarded_for(
    proxies: int | None = None,
    *,
    trusted: Iterable[str] | None = None,
    header: str = "X-Forwarded-For",
) -> Callable[[Scope], str]:
    """A key function: the client's address as your own proxies saw it, from ``header``.

    Each proxy appends the address it received the request from, after whatever the client
    sent; only the right-most entries are trustworthy. Say how many to trust, one way:

    - ``proxies=N`` (default 1): N proxies of yours stand in front of the app; the address
      is the N-th entry from the right (the one your outermost proxy appended).
    - ``trusted=[networks]`` (``"10.0.0.0/8"``, ``"127.0.0.1"``...): the peer must be in one
      of them (else the header is ignored); the address is the right-most entry outside
      them (the left-most entry when all of them are inside).

    The chosen entry must be an IP address (a port or IPv6 brackets are stripped); when it
    is not, or the header is missing or shorter than ``N``, the peer's address is the key
    (:func:`client_address`). Several header lines are read as one list, in order.
    ``header="Forwarded"`` reads the ``for=`` parameters of RFC 7239.
    """
    if trusted is not None:
        if proxies is not None:
            raise ConfigurationError("forwarded_for: give proxies= or trusted=, not both")
        networks = _networks(trusted)
        count = 0
    else:
        count = 1 if proxies is None else proxies
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"forwarded_for: proxies must be an int >= 1, got {proxies!r}")
        networks = ()
    if not isinstance(header, str) or not header.strip():
        raise ConfigurationError(f"forwarded_for: header must be a header name, got {header!r}")
    wanted = header.strip().lower().encode("latin-1")
    rfc7239 = wanted == b"forwarded"

    def key(scope: Scope) -> str:
        peer = client_address(scope)
        entries: list[str] = []
        for field, value in scope.get("headers") or ():
            if field.lower() == wanted:
                entries += value.decode("latin-1").split(",")
        if rfc7239:
            entries = [_for_param(entry) for entry in entries]
        if networks:
            peer_ip = _ip(peer)
            if peer_ip is None or not _inside(peer_ip, networks):
                return peer  # not from our proxies: the header is the client's own
            chosen = None
            for entry in reversed(entries):
                ip = _ip(entry)
                if ip is None:
                    return peer  # garbage where our proxies write: trust none of it
                chosen = ip
                if not _inside(ip, networks):
                    break
            return peer if chosen is None else str(chosen)
        if len(entries) < count:
            return peer
        ip = _ip(entries[-count])
        return peer if ip is None else str(ip)

    key.__qualname__ = (
        f"forwarded_for(trusted={sorted(map(str, networks))!r}, header={header!r})"
        if networks
        else f"forwarded_for(proxies={count}, header={header!r})"
    )
    return key


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(trusted: Iterable[str]) -> tuple[IPNetwork, ...]:
    if isinstance(trusted, str):
        trusted = [trusted]
    try:
        networks = tuple(ipaddress.ip_network(str(net).strip(), strict=False) for net in trusted)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"forwarded_for: trusted must be IP networks: {exc}") from None
    if not networks:
        raise ConfigurationError("forwarded_for: trusted names no network")
    return networks


def _inside(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def _for_param(element: str) -> str:
    """The ``for=`` value of one ``Forwarded`` element (RFC 7239), unquoted; "" if none."""
    for pair in element.split(";"):
        name, _, value = pair.strip().partition("=")
        if name.strip().lower() == "for":
            return value.strip().strip('"')
    return ""


def _ip(text: str) -> IPAddress | None:
    """The IP address in a forwarded entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``,
    ``::1``), IPv4-mapped IPv6 as IPv4; None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


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
