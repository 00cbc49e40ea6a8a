"""Write-behind: writes land in Redis at once and reach the repository in batches, never lost.

``write`` stores the entity in its cache entry and appends it to a Redis Stream in one
script (``wb_write.lua``): when it returns, the write is in Redis, durable as Redis is. A
flusher (:mod:`redkit._async.write_behind_flusher`: a task here, threads on the sync face,
or ``redkit worker`` processes) reads the streams through a consumer group, coalesces each
batch per id, upserts it into the repository and acknowledges it only after the commit.

Streams
    A prefix is spread over ``shards`` streams (16 by default), each its own Cluster slot;
    an id always goes to stream ``crc32(id) % shards``, so its writes stay in order, and its
    cache entry shares that stream's hash tag. The key layout is in
    :mod:`redkit._core.write_behind`.

Backpressure
    Each shard's stream holds exactly its unflushed writes (flushed ones are deleted as they
    are acknowledged). ``wb_write.lua`` refuses a write when its shard already holds
    ``ceil(max_backlog / shards)`` of them: ``write`` raises BackpressureError (after waiting
    up to ``backpressure_timeout`` seconds for room), and no unflushed entry is ever trimmed
    to make room.

Updates
    ``update``/``incr`` add numbers to fields in one script (``wb_update.lua``) that patches
    the cached JSON on the server and appends the result to the stream like a write, so
    concurrent increments are never lost.

Re-sends
    redis-py re-sends a script whose reply timed out, though the server ran it. Each write
    and update carries a random op id (a write's token) that the server remembers for a
    while (``RESEND_WINDOW_MS``) in the shard's op memory: a re-sent one is not applied
    again (see ``wb_write.lua``).

Reads
    ``get`` returns the newest written value: the cache entry holds it (the write's bytes: a
    random token, then the encoded entity), and keeps no TTL until it is flushed (then
    ``ttl``). A miss reads the repository (not cached: a value read
    there could be older than a write racing the read). A write the repository refused
    (dead-lettered) is not served: its entry is cut down to its token, read as a miss, so
    ``get`` returns what the database holds until a newer write or a replay puts it back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Self

from redkit._acompat import ASYNC, sleep
from redkit._async.lifecycle import Closeable
from redkit._async.repository import Entity, Repository
from redkit._async.store import Store
from redkit._async.write_behind_flusher import Flusher
from redkit._core.backoff import Backoff, BackoffPolicy
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.codecs import DEFAULT_MAX_VALUE_SIZE, Codec, Serializer, SerializerName
from redkit._core.degradation import Degradation, OnError
from redkit._core.events import Event, Events
from redkit._core.keys import KeyId, KeySpace, StreamLayout, id_text
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._core.write_behind import (
    DEFAULT_SHARDS,
    RESEND_WINDOW_MS,
    TOKEN_SIZE,
    WriteBehindStats,
    frame,
    new_op_id,
    unframe,
)
from redkit._scripts import LuaScript, script
from redkit.errors import (
    BackendRejected,
    BackpressureError,
    ConfigurationError,
    CorruptEntry,
    InvalidArgument,
    RedkitError,
)

logger = logging.getLogger("redkit.write_behind")

_WRITE = script("wb_write")
_UPDATE = script("wb_update")
_COMPARE_AND_DELETE = script("compare_and_delete")

MAX_BATCH_SIZE = 10_000
_MAX_CORRUPT_LOGGED = 1024
_FIRST_WAIT = 0.005
_MAX_WAIT = 0.2


def _count(value: Any, name: str, low: int, high: int | None = None) -> int:
    """``value`` checked to be an int (not a bool) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        ok = False
    else:
        ok = high is None or value <= high
    if not ok:
        wanted = f"an int from {low} to {high}" if high is not None else f"an int >= {low}"
        raise ConfigurationError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def _positive(value: Any, name: str) -> float:
    seconds = non_negative(value, name)
    if seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _field(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty str, got {value!r}")
    return value


class WriteBehind(Closeable):
    """Writes that return once they are in Redis, flushed to ``repository`` in batches.

    ``repository``: a :class:`~redkit.Repository` (``find_by_id`` and ``upsert_many`` are
    used), e.g. ``redkit.integrations.sqlalchemy.SQLAlchemyRepository``. Entities are
    mappings with an ``id_field``.

    Flushing: ``batch_size`` entities at most per ``upsert_many``; the background flusher
    (``flusher=True``, started on first use) writes every ``flush_interval`` seconds, or as
    soon as a batch is full. ``claim_after``: seconds after which a silent flusher counts as
    dead and its shards and pending entries are claimed by another. ``max_attempts``: times
    an entity may fail alone before it goes to the dead-letter stream; ``retry_backoff``:
    delays between retries (default: exponential from 50 ms to 5 s).

    Ordering: the writes of one id reach the repository in the order of the writes, also
    across a flusher's death (see :mod:`redkit._async.write_behind_flusher`). With
    ``version_field`` (by default the repository's ``version_column``, if it has one), each
    upserted entity also carries its version, an int that grows with the writes of its id, so
    that a repository that checks it (``SQLAlchemyRepository(version_column=...)``) never lets
    an older value replace a newer one, even when a paused flusher wakes up late.

    ``ttl``: seconds a flushed cache entry lives (an unflushed one does not expire).
    ``max_backlog``: unflushed writes at most (split evenly over the ``shards`` streams);
    past it ``write`` raises BackpressureError, after waiting up to ``backpressure_timeout``
    seconds for room; None for no limit. ``on_error``/``breaker``: what a failed read does
    (as for CacheAside; a miss or a failure reads the repository). Writes always raise.

    Close with ``aclose()`` (or ``stop()``, or use it as a context manager): the flusher
    drains what it can within ``stop_timeout`` seconds, then stops; what is left stays in
    Redis for the next flusher.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        repository: Repository,
        batch_size: int = 100,
        flush_interval: float = 5.0,
        ttl: float = 3600,
        max_attempts: int = 5,
        max_backlog: int | None = 100_000,
        *,
        shards: int = DEFAULT_SHARDS,
        id_field: str = "id",
        version_field: str | None = None,
        backpressure_timeout: float = 0.0,
        claim_after: float = 10.0,
        retry_backoff: BackoffPolicy | None = None,
        stop_timeout: float | None = 30.0,
        flusher: bool = True,
        serializer: SerializerName | Serializer = "json",
        compress_threshold: int | None = None,
        max_value_size: int | None = DEFAULT_MAX_VALUE_SIZE,
        on_error: OnError = "fallback",
        breaker: float = 1.0,
        batch_reads: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        for name in ("find_by_id", "upsert_many"):
            if not callable(getattr(repository, name, None)):
                raise ConfigurationError(f"repository has no {name}() method")
        self.layout = StreamLayout(prefix, shards)
        self.repository = repository
        self.batch_size = _count(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        self.flush_interval = _positive(flush_interval, "flush_interval")
        self.ttl_ms = seconds_to_ms(ttl)
        self.max_attempts = _count(max_attempts, "max_attempts", 1)
        self.max_backlog = None if max_backlog is None else _count(max_backlog, "max_backlog", 1)
        self.id_field = _field(id_field, "id_field")
        if version_field is None:
            version_field = getattr(repository, "version_column", None)
        self.version_field = (
            None if version_field is None else _field(version_field, "version_field")
        )
        if self.version_field == self.id_field:
            raise ConfigurationError(f"version_field cannot be the id field {id_field!r}")
        self.backpressure_timeout = non_negative(backpressure_timeout, "backpressure_timeout")
        claim_after = _positive(claim_after, "claim_after")
        self.stop_timeout = (
            None if stop_timeout is None else non_negative(stop_timeout, "stop_timeout")
        )
        if retry_backoff is None:
            retry_backoff = Backoff.exponential(0.05, 5.0, jitter="equal")
        elif not callable(getattr(retry_backoff, "compute", None)):
            raise ConfigurationError(
                f"retry_backoff needs a compute(failures) method (a redkit.Backoff), "
                f"got {retry_backoff!r}"
            )
        self.codec = Codec(
            serializer, compress_threshold=compress_threshold, max_value_size=max_value_size
        )
        self.clock = clock
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events("write_behind", prefix, threadsafe=threadsafe)
        self.stats = WriteBehindStats(self.events)
        self.policy = Degradation(
            on_error,
            breaker=non_negative(breaker, "breaker"),
            clock=clock,
            events=self.events,
            logger=logger,
            name=f"write-behind {prefix!r}",
        )
        self.store = Store(
            client,
            KeySpace(prefix),
            pattern="WriteBehind",
            events=self.events,
            batch_reads=batch_reads,
        )
        self.client = client
        self.flusher = Flusher(
            self.store,
            self.layout,
            repository,
            self.codec,
            self.events,
            batch_size=self.batch_size,
            flush_interval=self.flush_interval,
            ttl_ms=self.ttl_ms,
            max_attempts=self.max_attempts,
            claim_after=claim_after,
            id_field=self.id_field,
            version_field=self.version_field,
            backoff=retry_backoff,
            clock=clock,
        )
        self._background = flusher
        self._shard_limit = 0 if self.max_backlog is None else math.ceil(self.max_backlog / shards)
        self._layout_checked = False
        self._unwoken = 0
        self._closed = False
        self._corrupt_logged: set[str] = set()

    # -- writes ------------------------------------------------------------------------------

    async def write(self, entity: Mapping[str, Any]) -> None:
        """Store ``entity`` (cached, and queued for the repository); returns once in Redis.

        Raises BackpressureError when its shard's backlog is full (nothing is stored), a
        ConfigurationError subclass for an entity without a valid id, SerializationError for
        one the serializer cannot encode.
        """
        if type(entity) is not dict:
            if not isinstance(entity, Mapping):
                raise InvalidArgument(f"an entity must be a mapping, got {type(entity).__name__}")
            entity = dict(entity)
        try:
            id = entity[self.id_field]
        except KeyError:
            raise InvalidArgument(
                f"the entity has no id field {self.id_field!r} (keys: {sorted(map(str, entity))})"
            ) from None
        text = id if type(id) is str and id else id_text(id)
        keys = self.layout.write_keys(text, self._window())
        entry = keys[1]
        payload = frame(self.codec.encode(entity, key=entry))
        if not self._layout_checked:
            await self._check_layout()
        if self._background and not self.flusher.running:
            self._start()
        args = [text, payload, self._shard_limit, RESEND_WINDOW_MS]
        sid = await self.store.write(_WRITE, keys, args, entries=[entry])
        if sid == 0:
            await self._wait_for_room(_WRITE, keys, args)
        self._written()

    def _window(self) -> int:
        """This writer's time window, which names its op memory (any clock will do: a re-send
        carries the keys of the first send)."""
        return int(self.clock.monotonic() * 1000) // RESEND_WINDOW_MS

    def _written(self) -> None:
        self.events.emit(Event.WRITE)
        self._unwoken += 1
        if self._unwoken >= self.batch_size:
            self._unwoken = 0
            self.flusher.wake()

    async def incr(self, id: KeyId, field: str, by: int | float = 1) -> int | float:
        """Add ``by`` to the number in ``field`` of entity ``id``, atomically; the new number.

        See :meth:`update` (this is ``update(id, {field: by})[field]``).
        """
        entity = await self.update(id, {field: by})
        return entity[field]  # type: ignore[no-any-return]

    async def update(self, id: KeyId, deltas: Mapping[str, int | float]) -> Entity:
        """Add numbers to fields of entity ``id``, atomically on the server; the entity after.

        Concurrent updates (and writes) of one id never lose each other: each is applied to
        the newest value in one script (``wb_update.lua``), which caches the result and
        queues it for the repository like a write. A missing or null field counts as 0;
        integers stay integers (up to 2**53), a float makes a float. Without a cached value
        the repository's is the start (or, for an id it does not have, ``{id_field: id}``).
        A re-sent update (redis-py retries after a timeout) is applied once.

        Needs ``serializer="json"`` without compression (ConfigurationError otherwise);
        InvalidArgument for a delta that is not a finite int or float, for the id or version
        field, or for a field whose value is not a number. BackpressureError as ``write``.
        """
        if self.codec.serializer.name != "json" or self.codec.compress_threshold is not None:
            raise ConfigurationError(
                "update() and incr() need serializer='json' without compress_threshold "
                "(the server adds the numbers into the cached JSON)"
            )
        if not isinstance(deltas, Mapping) or not deltas:
            raise InvalidArgument(f"deltas must be a non-empty mapping, got {deltas!r}")
        pairs: list[Any] = []
        for field, delta in deltas.items():
            if not isinstance(field, str) or not field:
                raise InvalidArgument(f"a field name must be a non-empty str, got {field!r}")
            if field in (self.id_field, self.version_field):
                raise InvalidArgument(f"field {field!r} cannot be updated")
            if type(delta) is int:
                pairs += [field, str(delta)]
            elif type(delta) is float and math.isfinite(delta):
                pairs += [field, repr(delta)]
            else:
                raise InvalidArgument(
                    f"the delta of {field!r} must be a finite int or float, got {delta!r}"
                )
        text = id_text(id)
        keys = self.layout.write_keys(text, self._window())
        entry = keys[1]
        if not self._layout_checked:
            await self._check_layout()
        if self._background and not self.flusher.running:
            self._start()
        args = [text, new_op_id(), self._shard_limit, RESEND_WINDOW_MS, b"", *pairs]
        status, data = await self.store.write(_UPDATE, keys, args, entries=[entry])
        if status == -1:
            args[4] = self.codec.encode(await self._base(id), key=entry)
            status, data = await self.store.write(_UPDATE, keys, args, entries=[entry])
        if status == 0:
            status, data = await self._wait_for_room(_UPDATE, keys, args)
        if status == -2:
            raise InvalidArgument(f"cannot update id {id!r}: {data.decode(errors='replace')}")
        self._written()
        payload = unframe(data)
        if payload is None:
            raise CorruptEntry("the updated entry holds no value", entry)
        return self.codec.decode(payload, entry)  # type: ignore[no-any-return]

    async def _base(self, id: KeyId) -> Entity:
        """What an update starts from when nothing is cached: the repository's value."""
        entity = await self._from_repository(id)
        return {self.id_field: id} if entity is None else dict(entity)

    async def _wait_for_room(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Retry a refused write until its shard has room or ``backpressure_timeout`` ends;
        the script's reply once taken."""
        deadline = self.clock.monotonic() + self.backpressure_timeout
        delay = _FIRST_WAIT
        while self.clock.monotonic() < deadline:
            self.flusher.wake()
            await sleep(min(delay, max(0.0, deadline - self.clock.monotonic())))
            delay = min(delay * 2, _MAX_WAIT)
            reply = await self.store.write(script, keys, args, entries=[keys[1]])
            if reply != 0 and not (isinstance(reply, list) and reply[0] == 0):
                return reply
        self.events.emit(Event.BACKPRESSURE)
        raise BackpressureError(
            f"write-behind {self.layout.prefix!r}: the backlog of stream {keys[0]} is full "
            f"({self._shard_limit} unflushed writes, max_backlog={self.max_backlog} over "
            f"{self.layout.shards} shards); the repository is down or slower than the writes"
        )

    # -- reads -------------------------------------------------------------------------------

    async def get(self, id: KeyId) -> Entity | None:
        """The newest written value of ``id`` (from its cache entry), else the repository's."""
        _, key = self.layout.locate(id_text(id))
        if self.policy.is_open():
            return await self._from_repository(id)
        try:
            data = await self.store.get(key)
        except RedkitError as exc:
            self.policy.read_failed(exc)
            return await self._from_repository(id)
        if data is not None and len(data) == TOKEN_SIZE:
            # A dead-lettered write: the database refused it, so its value is not served.
            self.events.emit(Event.MISS)
            return await self._from_repository(id)
        if data is not None:
            payload = unframe(data)
            try:
                if payload is None:
                    raise CorruptEntry("entry is too short to hold a write", key)
                value = self.codec.decode(payload, key)
            except CorruptEntry as exc:
                await self._corrupt(key, data, exc)
            else:
                self.events.emit(Event.HIT)
                return value  # type: ignore[no-any-return]
        self.events.emit(Event.MISS)
        return await self._from_repository(id)

    async def _from_repository(self, id: KeyId) -> Entity | None:
        self.events.emit(Event.FETCH)
        entity = await self.repository.find_by_id(id)
        if entity is not None and self.version_field is not None and self.version_field in entity:
            entity = {k: v for k, v in entity.items() if k != self.version_field}
        return entity

    async def _corrupt(self, key: str, data: bytes, exc: CorruptEntry) -> None:
        """Count an undecodable entry, report it once per key, and drop it unless replaced."""
        self.events.emit(Event.CORRUPT)
        if key not in self._corrupt_logged:
            if len(self._corrupt_logged) < _MAX_CORRUPT_LOGGED:
                self._corrupt_logged.add(key)
            logger.warning("corrupt write-behind entry %s read as a miss: %s", key, exc)
        try:
            await self.store.run(_COMPARE_AND_DELETE, [key], [data])
        except RedkitError as error:
            logger.debug("could not drop corrupt entry %s: %s", key, error)

    # -- flushing and lifecycle ------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise ConfigurationError(
                f"write-behind {self.layout.prefix!r} is closed: its flusher does not restart"
            )
        self.flusher.start()

    async def start(self) -> None:
        """Start the background flusher now (otherwise it starts on first use)."""
        await self._check_layout()
        if self._background and not self.flusher.running:
            self._start()

    async def flush(self) -> int:
        """Write what is waiting now into the repository; how many entities were written.

        Covers the shards this instance's flusher holds (all of them unless other flushers
        share the prefix) and the free ones; returns once they are empty or wait for a retry.
        """
        await self._check_layout()
        if self._background and not self._closed and not self.flusher.running:
            self._start()
        return await self.flusher.flush()

    async def backlog(self) -> int:
        """Writes not yet flushed, over every shard (one XLEN per shard)."""
        layout = self.layout
        total = 0
        for shard in range(layout.shards):
            total += int(await self.store.call("XLEN", layout.stream(shard)))
        return total

    async def dead_letters(self) -> int:
        """Entities waiting in the dead-letter streams (one XLEN per shard)."""
        layout = self.layout
        total = 0
        for shard in range(layout.shards):
            total += int(await self.store.call("XLEN", layout.dead(shard)))
        return total

    async def replay_dead_letters(self) -> int:
        """Put the dead letters back on their streams; how many were put back.

        A dead letter whose id was written again since is dropped instead (the newer write
        supersedes it); see ``stats``.
        """
        replayed, _ = await self.flusher.replay_dead_letters()
        if replayed:
            self.flusher.wake()
        return replayed

    async def stop(self) -> int:
        """Drain (within ``stop_timeout``), then stop the flusher; entities written draining.

        What could not be written in time stays in Redis, for the next flusher.
        """
        written = 0
        if not self._closed:
            self._closed = True
            written = await self.flusher.stop(self.stop_timeout)
        return written

    async def aclose(self) -> None:
        """:meth:`stop`, then release this instance's other background work (not the client
        or the repository)."""
        await self.stop()
        await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def _check_layout(self) -> None:
        """Record this prefix's shard count, or refuse a different one."""
        if self._layout_checked:
            return
        layout = self.layout
        found = await self.store.call("GET", layout.meta)
        if found is None:
            try:
                await self.store.call("SET", layout.meta, layout.shards, "NX")
            except BackendRejected:
                # Out of memory (or read-only): a flusher must still start and drain, and a
                # write is refused anyway. Checked again on the next call.
                return
            found = await self.store.call("GET", layout.meta)  # the first count recorded stays
        if found is not None and int(found) != layout.shards:
            raise ConfigurationError(
                f"write-behind prefix {layout.prefix!r} is spread over {int(found)} shards, "
                f"not shards={layout.shards}: every writer and flusher of a prefix must use "
                "the same count"
            )
        self._layout_checked = True
