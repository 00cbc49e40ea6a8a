"""Server-side sessions with sliding expiry and an exact per-user index.

A session is a hash ``session:{id}`` (id: 256 bits from ``secrets``) with the user (``u``),
created and last-access times (``c``, ``a``, server ms), its *horizon* (``h``) and one
field per data key (``d:<name>``), so concurrent updates of different keys never lose each
other. It expires ``ttl`` after its last read (``get`` slides it in the same script).

The index of a user's sessions is a sorted set ``session:user:{user}`` of ids, scored by
each session's horizon: a server time that the session's expiry never passes (it stays at
least a margin, ttl/8, before it). The invariant is *every live session is in its user's
index, with a horizon past its expiry*; so

- an entry whose horizon (less the margin) has come has no live session and is dropped
  whenever the index is touched, and the index key expires at its last horizon: nothing
  grows when sessions expire unread, and the index outlives its last session by at most
  ttl/4;
- ``count`` and ``list`` check each entry's session (one pipeline) and count only live
  ones: they are exact, and they trim entries whose session is gone for good;
- ``get`` slides the session up to its horizon in one round trip; once per ttl/8 of
  activity the horizon runs short, and ``get`` lifts it in the index *first*, then in the
  session.

On a Cluster the session and the index live in different slots, so no script can write
both. Every write is ordered so that a crash between the two steps leaves at most an index
entry without a session (which the next ``count``/``list`` trims), never a live session
missing from the index: ``create`` writes the index entry first, and the session script
refuses to write a session that would outlive that entry's horizon (a caller paused between
the steps); lifting goes index first; ``destroy`` deletes the session first. An index entry
whose session is missing is trimmed only once no session can appear for it any more
(creation is refused once a window, ``min(margin, 1 s)``, has passed since the index
write). On a single server (standalone,
Sentinel) ``create`` writes both in one script.

Redis that refuses writes (``maxmemory`` with ``noeviction``: OOM; a READONLY replica)
still answers ``get``: the expiry then does not slide (or slides only up to the horizon)
and the event ``SESSION_SLIDE_FAILED`` says so (``stats.slide_failures``).

redis-py re-sends a command whose reply was lost (a socket timeout) although the server
may have run it. Every script is safe to run twice: ids are made here, so a re-sent
``create`` finds its own session (not a collision: ids have 256 bits) and returns it;
``rotate`` and ``destroy`` leave a short-lived *gone* companion (``session:{id}:gone``)
holding the call's token, so their re-send answers as the first run did; ``update`` sets
the same fields again.

Stores sharing a prefix must share their ``ttl``; the servers' clocks (of a Cluster) are
assumed to agree within the creation window.
"""

from __future__ import annotations

import builtins
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redkit._acompat import ASYNC
from redkit._async.lifecycle import Closeable
from redkit._async.store import Store
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, NEGATIVE, Codec, Serializer, SerializerName
from redkit._core.events import Event, Events
from redkit._core.keys import (
    NO_COMPANIONS,
    SESSION_ENTRY,
    Companion,
    KeyId,
    KeySpace,
    companion,
    id_text,
)
from redkit._core.session_stats import SessionStats
from redkit._core.ttl import seconds_to_ms
from redkit._scripts import script
from redkit.errors import BackendBusy, BackendRejected, InvalidArgument, InvalidKey

_INDEX_ADD = script("session_index_add")
_INDEX_READ = script("session_index_read")
_CREATE = script("session_create")
_CREATE_LOCAL = script("session_create_local")
_GET = script("session_get")
_REHORIZON = script("session_rehorizon")
_UPDATE = script("session_update")
_DESTROY = script("session_destroy")
_TAKE = script("session_take")

#: What a session id looks like: 32 random bytes, URL-safe base64 (43 characters).
_ID = re.compile(r"[A-Za-z0-9_-]{43}\Z")
_ID_BYTES = 32
_DATA = "d:"
_META = frozenset((b"u", b"c", b"a", b"h"))
_CREATE_ATTEMPTS = 3
_MAX_WINDOW_MS = 1000
#: how long a rotated or destroyed session's gone companion answers re-sends (ms)
_GONE_MS = 60_000


class _Keep:
    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


#: ``rotate(..., user_id=KEEP)``: the new session keeps the old one's user.
KEEP: Any = _Keep()


@dataclass(frozen=True)
class Session:
    """A session as read: its id, user (as text; None for none), data and times (server
    clock, seconds since the epoch)."""

    id: str
    user_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    last_accessed_at: float = 0.0


class SessionStore(Closeable):
    """Sessions in Redis for ``ttl`` seconds after their last read, indexed per user.

    ``create(user_id, data=None) -> id``, ``get(id) -> Session | None`` (slides the
    expiry), ``update(id, data, remove=()) -> bool``, ``destroy(id) -> bool``,
    ``destroy_all(user_id) -> int``, ``count(user_id)``, ``list(user_id)``,
    ``rotate(id, user_id=KEEP) -> new id | None``. ``user_id`` None: a session without
    user (no index). Data values go through the codec (``serializer``, ``max_value_size``).
    Sessions never degrade: when Redis fails every call raises (``get`` still answers when
    Redis only refuses writes; ``stats.slide_failures`` counts those reads).
    """

    def __init__(
        self,
        client: Any,
        ttl: float = 86400,
        prefix: str = "session",
        *,
        serializer: SerializerName | Serializer = "json",
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
    ) -> None:
        self.keys = KeySpace(prefix, kind=SESSION_ENTRY)
        self.users = KeySpace(f"{prefix}:user", kind=NO_COMPANIONS)
        self.codec = Codec(serializer, max_value_size=max_value_size)
        self.ttl_ms = seconds_to_ms(ttl)
        self.ttl = self.ttl_ms / 1000
        slack = max(4, self.ttl_ms // 4)
        #: a session expires at least this long (ms) before its horizon
        self.margin_ms = slack // 2
        #: from an index write to the horizon it sets (ms)
        self.span_ms = self.ttl_ms + slack
        #: a session is written within this long (ms) of its index entry, or refused; an
        #: entry without session is trimmed once its window has passed
        self.window_ms = min(self.margin_ms, _MAX_WINDOW_MS)
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("sessions", prefix, threadsafe=threadsafe)
        self.stats = SessionStats(self.events)
        self.store = Store(
            client, self.keys, pattern="SessionStore", events=self.events, batch_reads=False
        )
        self.client = client

    # -- keys and encoding --------------------------------------------------------------------

    def _key(self, session_id: object) -> str | None:
        """The key of a well-formed id; None for an id redkit never makes (nothing to find)."""
        if not isinstance(session_id, str):
            raise InvalidKey(f"session_id must be a str, got {type(session_id).__name__}")
        if not _ID.match(session_id):
            return None
        return f"{self.keys.namespace}{{{session_id}}}"

    def _index(self, user: str) -> str:
        return self.users.key(user)

    @staticmethod
    def _user(user_id: KeyId | None) -> str:
        return "" if user_id is None else id_text(user_id)

    def _pairs(self, data: Mapping[str, Any] | None) -> list[Any]:
        if data is None:
            return []
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"session data must be a mapping, got {type(data).__name__}")
        pairs: list[Any] = []
        for name, value in data.items():
            if not isinstance(name, str):
                raise InvalidArgument(f"session data keys must be str, got {name!r}")
            pairs.append(_DATA + name)
            pairs.append(self.codec.encode(value, key=name))
        return pairs

    def _session(
        self, session_id: str, fields: Sequence[bytes], accessed: int | None = None
    ) -> Session:
        """The session in ``fields`` (HGETALL); ``accessed`` replaces its stored access time."""
        data: dict[str, Any] = {}
        user: str | None = None
        created = stored_access = 0
        for i in range(0, len(fields) - 1, 2):
            name, value = fields[i], fields[i + 1]
            if name.startswith(b"d:"):
                decoded = self.codec.decode(value, session_id)
                data[name[2:].decode()] = None if decoded is NEGATIVE else decoded
            elif name == b"u":
                user = value.decode() or None
            elif name == b"c":
                created = int(float(value))
            elif name == b"a":
                stored_access = int(float(value))
        access = stored_access if accessed is None else accessed
        return Session(session_id, user, data, created / 1000, access / 1000)

    # -- the interface --------------------------------------------------------------------------

    async def create(self, user_id: KeyId | None, data: Mapping[str, Any] | None = None) -> str:
        """A new session for ``user_id`` (None: no user) holding ``data``; its id."""
        user = self._user(user_id)
        pairs = self._pairs(data)
        for _ in range(_CREATE_ATTEMPTS):
            session_id = secrets.token_urlsafe(_ID_BYTES)
            key = f"{self.keys.namespace}{{{session_id}}}"
            if not self.store.cluster:
                keys = [key, self._index(user)] if user else [key]
                args = [self.span_ms, self.ttl_ms, self.margin_ms, session_id, user, *pairs]
                written = await self.store.run(_CREATE_LOCAL, keys, args)
            else:
                written = await self._write_session(session_id, user, "", pairs)
            if written != 0:  # -1: the id exists, so a re-send of this call wrote it
                self.events.emit(Event.SESSION_CREATED)
                return session_id
        raise BackendBusy(
            f"could not write a new session in {_CREATE_ATTEMPTS} attempts: each was written "
            f"later than {self.margin_ms} ms after its index entry (a paused caller?)"
        )

    async def _write_session(
        self, session_id: str, user: str, created: str | bytes, pairs: Sequence[Any]
    ) -> int:
        """Index entry first, then the session (the Cluster order; see the module doc)."""
        horizon: int | str = ""
        if user:
            horizon = await self.store.run(
                _INDEX_ADD, [self._index(user)], [session_id, self.span_ms, self.margin_ms]
            )
        key = f"{self.keys.namespace}{{{session_id}}}"
        args = [
            horizon,
            self.ttl_ms,
            self.margin_ms,
            self.span_ms,
            self.window_ms,
            user,
            created,
            *pairs,
        ]
        return int(await self.store.run(_CREATE, [key], args))

    async def get(self, session_id: str) -> Session | None:
        """The session, its expiry slid to ``ttl`` from now; None when missing or expired."""
        key = self._key(session_id)
        if key is None:
            return None
        reply = await self.store.run(_GET, [key], [self.ttl_ms, self.margin_ms, 1])
        if not reply:
            return None
        lift, now, fields, refused = reply
        session = self._session(session_id, fields, now)
        if refused:
            self.events.emit(Event.SESSION_SLIDE_FAILED)
        elif lift and session.user_id is not None:
            await self._lift(session_id, key, session.user_id)
        return session

    async def _lift(self, session_id: str, key: str, user: str) -> None:
        """Move the session's horizon on: in the index first, then in the session.

        A server that refuses the writes (OOM, READONLY) leaves the session's expiry where
        the read capped it, before its horizon: the invariant holds, the read succeeds and
        the refusal is reported as a slide that failed.
        """
        try:
            horizon = await self.store.run(
                _INDEX_ADD, [self._index(user)], [session_id, self.span_ms, self.margin_ms]
            )
            await self.store.run(_REHORIZON, [key], [horizon, self.ttl_ms, self.margin_ms])
        except (BackendBusy, BackendRejected):
            self.events.emit(Event.SESSION_SLIDE_FAILED)
            return
        self.events.emit(Event.SESSION_INDEX_LIFTED)

    async def update(
        self, session_id: str, data: Mapping[str, Any], *, remove: Iterable[str] = ()
    ) -> bool:
        """Set the keys of ``data`` and delete those in ``remove``; whether the session lives.

        Other keys are left alone, so concurrent updates of different keys all land. A
        session that is gone stays gone (nothing is written).
        """
        key = self._key(session_id)
        pairs = self._pairs(data)
        removed = []
        for name in remove:
            if not isinstance(name, str):
                raise InvalidArgument(f"session data keys must be str, got {name!r}")
            removed.append(_DATA + name)
        if key is None:
            return False
        return bool(await self.store.run(_UPDATE, [key], [len(pairs) // 2, *pairs, *removed]))

    async def destroy(self, session_id: str) -> bool:
        """Delete the session (its expiry is not touched first); whether it existed."""
        key = self._key(session_id)
        if key is None:
            return False
        user = await self.store.run(
            _DESTROY, [key, companion(key, Companion.GONE)], [_token(), _GONE_MS]
        )
        if user is None:
            return False
        if user:
            await self.store.call("ZREM", self._index(user.decode()), session_id)
        self.events.emit(Event.SESSION_DESTROYED)
        return True

    async def destroy_all(self, user_id: KeyId) -> int:
        """Delete every session of ``user_id``; how many were live."""
        user = self._user(user_id)
        now, entries = await self._entries(user)
        if not entries:
            return 0
        calls = []
        for sid, _ in entries:
            key = self._session_key(sid)
            calls.append(
                (_DESTROY, [key, companion(key, Companion.GONE)], [_token(), _GONE_MS, user])
            )
        results = await self.store.run_many(calls)
        destroyed = [sid for (sid, _), result in zip(entries, results, strict=True) if result]
        gone = [
            sid
            for (sid, horizon), result in zip(entries, results, strict=True)
            if not result and self._settled(horizon, now)
        ]
        await self._trim(user, destroyed + gone)
        self.events.emit(Event.SESSION_DESTROYED, len(destroyed))
        return len(destroyed)

    async def count(self, user_id: KeyId) -> int:
        """How many live sessions ``user_id`` has (exact: expired and destroyed ones excluded)."""
        user = self._user(user_id)
        now, entries = await self._entries(user)
        if not entries:
            return 0
        alive = await self.store.call_many(
            [("EXISTS", self._session_key(sid)) for sid, _ in entries]
        )
        await self._trim_dead(user, now, entries, [bool(found) for found in alive])
        return sum(1 for found in alive if found)

    async def rotate(self, session_id: str, *, user_id: Any = KEEP) -> str | None:
        """Move the session to a new id (against fixation); the new id, None if it is gone.

        The old id stops working at once (the session is read and deleted in one step).
        ``user_id`` gives the new session another user (at login); by default it keeps its
        own. If Redis fails halfway the session is lost (a new login), never left under
        the old id.
        """
        key = self._key(session_id)
        if key is None:
            return None
        new_user = None if user_id is KEEP else self._user(user_id)
        new_id = secrets.token_urlsafe(_ID_BYTES)
        fields = await self.store.run(
            _TAKE, [key, companion(key, Companion.GONE)], [new_id, _GONE_MS]
        )
        if not fields:
            return None
        pairs: list[Any] = []
        old_user, created = "", b""
        for i in range(0, len(fields) - 1, 2):
            name, value = fields[i], fields[i + 1]
            if name == b"u":
                old_user = value.decode()
            elif name == b"c":
                created = value
            elif name not in _META:
                pairs += (name, value)
        user = old_user if new_user is None else new_user
        for attempt in range(_CREATE_ATTEMPTS):
            if attempt:
                new_id = secrets.token_urlsafe(_ID_BYTES)
            if await self._write_session(new_id, user, created, pairs) != 0:
                break
        else:
            raise BackendBusy(f"the rotated session could not be written; {session_id!r} is gone")
        if old_user:
            await self.store.call("ZREM", self._index(old_user), session_id)
        self.events.emit(Event.SESSION_ROTATED)
        return new_id

    # -- the index -------------------------------------------------------------------------------

    def _session_key(self, session_id: str) -> str:
        return f"{self.keys.namespace}{{{session_id}}}"

    async def _entries(self, user: str) -> tuple[int, builtins.list[tuple[str, float]]]:
        """The server time and the user's index entries (id, horizon) that may be live."""
        reply = await self.store.run(_INDEX_READ, [self._index(user)], [self.margin_ms])
        now = int(reply[0])
        entries = [(reply[i].decode(), float(reply[i + 1])) for i in range(1, len(reply) - 1, 2)]
        return now, entries

    def _settled(self, horizon: float, now: int) -> bool:
        """Whether no session can appear any more for an entry with this horizon: its
        creation window (from its index write, ``horizon - span``) has passed."""
        return now > horizon - self.span_ms + self.window_ms

    async def _trim_dead(
        self,
        user: str,
        now: int,
        entries: Sequence[tuple[str, float]],
        alive: Sequence[bool],
    ) -> None:
        dead = [
            sid
            for (sid, horizon), live in zip(entries, alive, strict=True)
            if not live and self._settled(horizon, now)
        ]
        await self._trim(user, dead)

    async def _trim(self, user: str, ids: Sequence[str]) -> None:
        if ids:
            await self.store.call("ZREM", self._index(user), *ids)

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this store's background work (not the client)."""
        await self.store.aclose()

    async def list(self, user_id: KeyId) -> builtins.list[Session]:
        """The live sessions of ``user_id`` (exact), oldest first; reading does not slide."""
        user = self._user(user_id)
        now, entries = await self._entries(user)
        if not entries:
            return []
        replies = await self.store.run_many(
            [
                (_GET, [self._session_key(sid)], [self.ttl_ms, self.margin_ms, 0])
                for sid, _ in entries
            ]
        )
        sessions = [
            self._session(sid, reply[2])
            for (sid, _), reply in zip(entries, replies, strict=True)
            if reply
        ]
        await self._trim_dead(user, now, entries, [bool(reply) for reply in replies])
        sessions.sort(key=lambda s: (s.created_at, s.id))
        return sessions


def _token() -> str:
    """A random token naming one call, so that its re-send can be recognised."""
    return secrets.token_urlsafe(16)
