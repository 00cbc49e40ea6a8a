"""``SessionMiddleware``: server-side sessions for any ASGI app, in a signed cookie.

Pure ASGI (Starlette, FastAPI, Litestar, a bare ASGI callable). The cookie holds only the
session id and its HMAC-SHA256 signature (``<id>.<signature>``); a cookie whose signature
does not match is ignored, and the request starts a fresh session. ``scope["session"]`` is
a dict (Starlette's ``request.session``) with three methods more: ``login(user_id)``
(rotates the id against fixation and binds the user), ``logout()`` (destroys the session),
``rotate()``. Changes are written when the response starts: only the keys that changed
(compared by their serialized bytes, so ``session["cart"].append(x)`` is a change), so
concurrent requests of one session do not overwrite each other's keys.

The cookie is sent only when it says something new: a new id (created, rotated, logged
in), an ended session (cleared or logged out: an expired cookie), or, for a ``max_age``
cookie, a refreshed Max-Age for the id this request ended with, and only while that id
still exists. So a slow request that ends after a login never points the browser back at
the id the login rotated away. The ``Cookie`` header is parsed cookie by cookie, as
browsers, Starlette and Django do: a sibling cookie that ``http.cookies`` rejects (JSON, a
space, a bare name) does not hide the session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http import cookies as http_cookies
from typing import Any, Literal

from redkit._async.sessions import SessionStore
from redkit.errors import ConfigurationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SameSite = Literal["lax", "strict", "none"]


class _StoreTTL:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STORE_TTL"


#: ``max_age``'s default: the cookie lives as long as the store's ``ttl``.
STORE_TTL: Any = _StoreTTL()
_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


class SessionData(dict[str, Any]):
    """The request's session: a dict, plus ``id``, ``user_id``, ``login``, ``logout``,
    ``rotate``."""

    def __init__(
        self,
        data: dict[str, Any],
        session_id: str | None,
        user_id: str | None,
        snapshot: Mapping[str, bytes] | None = None,
    ):
        super().__init__(data)
        self.id = session_id
        self.user_id = user_id
        #: each key's serialized bytes as loaded (what a change is measured against)
        self.loaded: dict[str, bytes] = dict(snapshot or {})
        self.login_as: Any = None
        self.logged_out = False
        self.rotate_asked = False

    def login(self, user_id: str | int) -> None:
        """Bind the session to ``user_id`` under a new id (against session fixation)."""
        self.login_as = user_id
        self.logged_out = False

    def logout(self) -> None:
        """Destroy the session; the cookie is cleared."""
        self.logged_out = True
        self.clear()

    def rotate(self) -> None:
        """Move the session to a new id at the end of this request."""
        self.rotate_asked = True


class SessionMiddleware:
    """Sessions from ``store`` (a ``redkit.asyncio.SessionStore``) in a cookie signed with
    ``secret_key``.

    ``cookie_name``, ``max_age`` (a positive int of seconds; default the store's ttl; the
    cookie is sent again on each response while its session lives, so the browser's expiry
    slides too; None: a browser-session cookie, sent only when the id changes), ``path``,
    ``domain``, ``secure`` (default True: the cookie only travels over HTTPS), ``httponly``
    (default True) and ``same_site`` (``"lax"``).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        secret_key: str | bytes,
        cookie_name: str = "session",
        *,
        max_age: int | None = STORE_TTL,
        path: str = "/",
        domain: str | None = None,
        secure: bool = True,
        httponly: bool = True,
        same_site: SameSite = "lax",
    ) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigurationError(
                "SessionMiddleware needs a redkit.asyncio.SessionStore (ASGI is async), "
                f"got {type(store).__module__}.{type(store).__qualname__}"
            )
        key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        if not isinstance(key, bytes) or len(key) < 16:
            raise ConfigurationError("secret_key must be a str or bytes of at least 16 bytes")
        if same_site not in ("lax", "strict", "none"):
            raise ConfigurationError(
                f"same_site must be 'lax', 'strict' or 'none', got {same_site!r}"
            )
        if same_site == "none" and not secure:
            raise ConfigurationError("same_site='none' needs secure=True (browsers refuse it)")
        self.app = app
        self.store = store
        self._key = key
        self.cookie_name = cookie_name
        if max_age is STORE_TTL:
            max_age = max(1, math.ceil(store.ttl))
        elif max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0
        ):
            raise ConfigurationError(
                f"max_age must be a positive int of seconds or None, got {max_age!r}"
            )
        self.max_age: int | None = max_age
        attributes = [f"Path={path}"]
        if domain:
            attributes.append(f"Domain={domain}")
        if secure:
            attributes.append("Secure")
        if httponly:
            attributes.append("HttpOnly")
        attributes.append(f"SameSite={same_site.capitalize()}")
        self._attributes = "; ".join(attributes)

    # -- signing ------------------------------------------------------------------------

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id``."""
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).digest()
        return f"{session_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def unsign(self, value: str) -> str | None:
        """The session id in a cookie value, None when the signature does not match."""
        session_id, _, _ = value.partition(".")
        if not session_id or not hmac.compare_digest(self.sign(session_id), value):
            return None
        return session_id

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        session = await self._load(scope)
        scope["session"] = session
        started = False

        async def send_with_cookie(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept") and not started:
                started = True
                cookie = await self._save(session)
                if cookie is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _load(self, scope: Scope) -> SessionData:
        value = _cookie(scope, self.cookie_name)
        session_id = self.unsign(value) if value else None
        found = await self.store.get(session_id) if session_id else None
        if found is None:
            return SessionData({}, None, None)
        encode = self.store.codec.encode
        snapshot = {name: encode(value, key=name) for name, value in found.data.items()}
        return SessionData(found.data, found.id, found.user_id, snapshot)

    def _changes(self, session: SessionData) -> tuple[dict[str, Any], list[str]]:
        """The keys set to something new (by serialized bytes: nested edits count) and the
        keys removed."""
        encode = self.store.codec.encode
        loaded = session.loaded
        changed = {
            k: v
            for k, v in session.items()
            if not isinstance(k, str) or k not in loaded or loaded[k] != encode(v, key=k)
        }
        removed = [k for k in loaded if k not in session]
        return changed, removed

    async def _save(self, session: SessionData) -> str | None:
        """Write what changed; the Set-Cookie value to send, None for none."""
        store = self.store
        if session.logged_out:
            if session.id is not None:
                await store.destroy(session.id)
            return self._expired()
        session_id = session.id
        changed, removed = self._changes(session)
        if session_id is None:
            if not session and session.login_as is None:
                return None
            session_id = await store.create(session.login_as, dict(session))
            return self._cookie(session_id)
        if session.login_as is not None or session.rotate_asked:
            user = session.login_as if session.login_as is not None else None
            rotated = (
                await store.rotate(session_id, user_id=user)
                if user is not None
                else await store.rotate(session_id)
            )
            if rotated is None:  # destroyed meanwhile: start again
                rotated = await store.create(session.login_as, dict(session))
                changed, removed = {}, []
            if changed or removed:
                await store.update(rotated, changed, remove=removed)
            return self._cookie(rotated)
        if not session and session.user_id is None:  # cleared: the session ends
            await store.destroy(session_id)
            return self._expired()
        if changed or removed:
            live = await store.update(session_id, changed, remove=removed)
        elif self.max_age is None:
            return None  # a browser-session cookie already holds this id
        else:
            live = await store.update(session_id, {})  # writes nothing: is it still there?
        if not live or self.max_age is None:
            # gone (rotated or destroyed by another request): never point back at it
            return None
        return self._cookie(session_id)

    def _cookie(self, session_id: str) -> str:
        """The Set-Cookie value holding ``session_id``."""
        max_age = "" if self.max_age is None else f" Max-Age={self.max_age};"
        return f"{self.cookie_name}={self.sign(session_id)};{max_age} {self._attributes}"

    def _expired(self) -> str:
        """The Set-Cookie value that makes the browser drop the cookie."""
        return f"{self.cookie_name}=; {_EXPIRED}; {self._attributes}"


def _cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` headers, None when absent."""
    headers = [value for header, value in scope.get("headers", []) if header == b"cookie"]
    if not headers:
        return None
    return parse_cookie(b"; ".join(headers).decode("latin-1")).get(name)


def parse_cookie(header: str) -> dict[str, str]:
    """A ``Cookie`` header as {name: value}, parsed leniently, cookie by cookie.

    As Django's ``parse_cookie`` and Starlette's ``cookie_parser`` (which it follows):
    ``http.cookies.SimpleCookie`` stops at the first value it dislikes and loses every
    cookie; browsers send such values, so each ``;``-separated chunk is taken on its own.
    A chunk without ``=`` is a value with an empty name.
    """
    jar: dict[str, str] = {}
    for chunk in header.split(";"):
        if "=" in chunk:
            key, value = chunk.split("=", 1)
        else:
            key, value = "", chunk
        key, value = key.strip(), value.strip()
        if key or value:
            jar[key] = http_cookies._unquote(value)  # type: ignore[attr-defined]
    return jar


__all__ = ["STORE_TTL", "SessionData", "SessionMiddleware", "parse_cookie"]
