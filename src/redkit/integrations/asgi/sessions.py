"""``SessionMiddleware``: server-side sessions for any ASGI app, in a signed cookie.

Pure ASGI (Starlette, FastAPI, Litestar, a bare ASGI callable). The cookie holds only the
session id and its HMAC-SHA256 signature (``<id>.<signature>``); a cookie whose signature
does not match is ignored, and the request starts a fresh session. ``scope["session"]`` is
a dict (Starlette's ``request.session``) with three methods more: ``login(user_id)``
(rotates the id against fixation and binds the user), ``logout()`` (destroys the session),
``rotate()``. Changes are written when the response starts: only the keys that changed, so
concurrent requests of one session do not overwrite each other's keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any, Literal

from redkit._async.sessions import SessionStore
from redkit.errors import ConfigurationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SameSite = Literal["lax", "strict", "none"]


class SessionData(dict[str, Any]):
    """The request's session: a dict, plus ``id``, ``user_id``, ``login``, ``logout``,
    ``rotate``."""

    def __init__(self, data: dict[str, Any], session_id: str | None, user_id: str | None):
        super().__init__(data)
        self.id = session_id
        self.user_id = user_id
        self.loaded = dict(data)
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

    ``cookie_name``, ``max_age`` (seconds; default the store's ttl; the cookie is sent
    again on every response of a live session, so the browser's expiry slides too),
    ``path``, ``domain``, ``secure`` (default True: the cookie only travels over HTTPS),
    ``httponly`` (default True) and ``same_site`` (``"lax"``).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        secret_key: str | bytes,
        cookie_name: str = "session",
        *,
        max_age: int | None = None,
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
        self.max_age = int(store.ttl) if max_age is None else max_age
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
        return SessionData(found.data, found.id, found.user_id)

    async def _save(self, session: SessionData) -> str | None:
        """Write what changed; the Set-Cookie value to send, None for none."""
        store = self.store
        if session.logged_out:
            if session.id is not None:
                await store.destroy(session.id)
            return self._cookie("", 0)
        session_id = session.id
        changed = {
            k: v for k, v in session.items() if k not in session.loaded or session.loaded[k] != v
        }
        removed = [k for k in session.loaded if k not in session]
        if session_id is None:
            if not session and session.login_as is None:
                return None
            session_id = await store.create(session.login_as, dict(session))
            return self._cookie(self.sign(session_id), self.max_age)
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
            session_id = rotated
        if changed or removed:
            await store.update(session_id, changed, remove=removed)
        return self._cookie(self.sign(session_id), self.max_age)

    def _cookie(self, value: str, max_age: int) -> str:
        return f"{self.cookie_name}={value}; Max-Age={max_age}; {self._attributes}"


def _cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope.get("headers", []):
        if header == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            morsel = jar.get(name)
            if morsel is not None:
                return morsel.value
    return None


__all__ = ["SessionData", "SessionMiddleware"]
