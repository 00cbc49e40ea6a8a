"""Write-behind's flusher: moves written entities from the shard streams into the repository.

Who flushes what
    Each shard's stream is read by one flusher at a time: the holder of the shard's lease
    (``wb_lease.lua``, renewed every ``claim_after / 3`` seconds by a heartbeat job, so a slow
    database call does not lose it). Live flushers register in the prefix's registry
    (``wb_members.lua``, on the server's clock) and spread the shards among themselves by
    rendezvous hashing; a flusher gives a shard up between two batches once another should
    own it. Within a shard one batch is read, upserted and acknowledged before the next is
    read, so the writes of one id reach the repository in stream order.

A dead flusher
    Its lease lapses after ``claim_after`` seconds without a heartbeat (the idle time after
    which a consumer counts as dead); the next owner takes the shard and first claims every
    entry still pending in the consumer group (XAUTOCLAIM from the start of the pending list,
    in stream order) before it reads new ones: the dead flusher's entries are written before
    any later write of the same ids.

A flusher that only looks dead
    A process paused longer than ``claim_after`` (stopped, swapped out) loses its lease while
    holding a batch; the new owner may write newer values before the paused one wakes up and
    commits its older batch. The flusher checks its lease before each upsert, which narrows
    but cannot close that window. The repository closes it: with a version column
    (``SQLAlchemyRepository(version_column=...)``, WriteBehind's ``version_field``) every
    upserted entity carries its version (its stream id as an int, increasing per id) and an
    older version never replaces a newer one in the database.

Failures
    A batch the repository refuses is retried: when the database looks down (the error is a
    connection/operational error, or a read of the repository fails too), the whole batch
    waits with capped exponential backoff, without limit (the backlog grows until writes get
    BackpressureError). When the database is up, the batch is split in halves until the
    entities at fault are alone; the others are written and acknowledged, and an entity that
    fails alone ``max_attempts`` times (counted in Redis, so across flushers and restarts)
    goes to the shard's dead-letter stream with its error (logged and counted, never
    dropped). Until then its shard waits for it (so no later write
    of its id can pass it); other shards go on.

A full Redis
    The flusher is what frees memory when the backlog has filled Redis (``maxmemory`` with
    ``noeviction``), so nothing it does before draining needs free memory: registering and
    taking leases (which creates a missing consumer group) run in ``allow-oom`` scripts that
    write a few bytes, reading (XREADGROUP, XAUTOCLAIM) and acknowledging (XACK, XDEL) are
    allowed out of memory, and the shard-count check only reads when the count is recorded.

Acknowledgement
    Only after ``upsert_many`` returned (the database committed): the entries are
    acknowledged and deleted from the stream in one script (``wb_ack.lua``), which also gives
    each flushed cache entry its TTL unless a newer write replaced it meanwhile. A crash
    between commit and acknowledgement means the batch is written again: upserts are
    idempotent.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from typing import Any, Literal

from redkit._acompat import Background, Event, Gate
from redkit._async.repository import Repository
from redkit._async.store import Store
from redkit._core.backoff import BackoffPolicy
from redkit._core.clock import Clock
from redkit._core.codecs import Codec
from redkit._core.events import Event as Happened
from redkit._core.events import Events
from redkit._core.keys import StreamLayout
from redkit._core.write_behind import (
    GROUP,
    RESEND_WINDOW_MS,
    TOKEN_SIZE,
    Batch,
    Pending,
    coalesce,
    new_op_id,
    owner,
    unframe,
    version_of,
)
from redkit._scripts import script
from redkit.errors import ConfigurationError, CorruptEntry, RedkitError

logger = logging.getLogger("redkit.write_behind")

_LEASE = script("wb_lease")
_MEMBERS = script("wb_members")
_ACK = script("wb_ack")
_DEAD = script("wb_dead")
_REPLAY = script("wb_replay")
_ATTEMPT = script("wb_attempt")
_RELEASE = script("compare_and_delete")

#: Longest error text kept with a dead letter.
_MAX_ERROR = 2000
#: At most one warning per this many seconds for a database that stays down.
_LOG_EVERY = 10.0
_REPLAY_PAGE = 100
_Mode = Literal["background", "owned", "free", "keep"]
_SQLALCHEMY_TRANSIENT = ("OperationalError", "DisconnectionError", "TimeoutError")


def new_token() -> str:
    """A flusher's consumer name: unique, and readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database is unreachable or busy."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if sa_exc is not None:
            for name in _SQLALCHEMY_TRANSIENT:
                kind = getattr(sa_exc, name, None)
                if kind is not None and isinstance(current, kind):
                    return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


class Shard:
    """What this flusher knows of one shard it holds the lease of."""

    __slots__ = (
        "claiming",
        "cursor",
        "failures",
        "held",
        "index",
        "lost",
        "retry_at",
        "valid_until",
    )

    def __init__(self, index: int, valid_until: float) -> None:
        self.index = index
        #: still claiming the pending entries left by earlier owners (from ``cursor``)
        self.claiming = True
        self.cursor: bytes | str = "0-0"
        #: a batch read but not yet written (waiting for a retry)
        self.held: Batch | None = None
        self.failures = 0
        self.retry_at = 0.0
        #: until when the lease is known to be ours (this process's monotonic clock)
        self.valid_until = valid_until
        #: the heartbeat found the lease taken or expired
        self.lost = False


class Flusher:
    """Flushes one write-behind prefix's streams into ``repository`` (see the module doc)."""

    def __init__(
        self,
        store: Store,
        layout: StreamLayout,
        repository: Repository,
        codec: Codec,
        events: Events,
        *,
        batch_size: int,
        flush_interval: float,
        ttl_ms: int,
        max_attempts: int,
        claim_after: float,
        id_field: str,
        version_field: str | None,
        backoff: BackoffPolicy,
        clock: Clock,
    ) -> None:
        self.store = store
        self.layout = layout
        self.repository = repository
        self.codec = codec
        self.events = events
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.ttl_ms = ttl_ms
        self.max_attempts = max_attempts
        self.claim_after = claim_after
        self.lease_ms = max(1, round(claim_after * 1000))
        self.id_field = id_field
        self.version_field = version_field
        self.backoff = backoff
        self.clock = clock
        self.token = new_token()
        self.background = Background(f"write-behind flusher {layout.prefix!r}")
        self._shards: dict[int, Shard] = {}
        self._members: tuple[str, ...] = ()
        self._round = Gate(1)
        self._wake = Event()
        self._stop = Event()
        self._started = False
        self._stopping = False
        self._next_take = 0.0
        self._logged_at = 0.0

    # -- what the owner sees ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background flusher runs (started and not stopped)."""
        return self._started and not self._stopping

    @property
    def shards(self) -> list[int]:
        """The shards this flusher holds the lease of now."""
        return sorted(index for index, shard in list(self._shards.items()) if not shard.lost)

    def wake(self) -> None:
        """Make the background flusher start its next round now."""
        self._wake.set()

    def start(self) -> None:
        """Start the background flusher (a task; threads on the sync face); idempotent."""
        if self._started:
            return
        self._started = True
        self.background.spawn(self._run, "flush loop")
        self.background.spawn(self._heartbeat, "heartbeat")

    async def flush(self, deadline: float | None = None) -> int:
        """Write what the shards this flusher holds (or can take) have now; entities written.

        Without the background flusher, free shards are taken for the call and given back
        after it. Returns once every such shard is empty or waits for a retry (the database
        refused a batch), or at ``deadline`` (this process's monotonic clock).
        """
        written = 0
        async with self._round:
            transient = not self.running
            mode: _Mode = "free" if transient else "owned"
            try:
                while True:
                    done, more = await self._round_once(mode)
                    written += done
                    mode = "keep"
                    if not more or (deadline is not None and self.clock.monotonic() >= deadline):
                        break
            finally:
                if transient:
                    await self._release_all()
        return written

    async def stop(self, timeout: float | None) -> int:
        """Stop the background flusher, write what is left (within ``timeout`` seconds), give
        the shards up; entities written by the final drain."""
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        running = self._started and not self._stopping
        self._stopping = True
        self._stop.set()
        self._wake.set()
        await self.background.drain()
        await self.background.close()
        written = 0
        try:
            if running:
                written = await self.flush(deadline)
                await self._release_all()
                await self.store.run(
                    _MEMBERS, [self.layout.registry], [self.token, self.lease_ms, "leave"]
                )
        except RedkitError as exc:
            logger.warning(
                "write-behind %r stopped without draining (%s); the unflushed entries stay in "
                "Redis for the next flusher",
                self.layout.prefix,
                exc,
            )
        return written

    async def replay_dead_letters(self) -> tuple[int, int]:
        """Put every dead letter back on its stream; (replayed, dropped as superseded).

        A dead letter keeps its original version; one whose id was written again since (the
        newer write supersedes it) is dropped instead of replayed.
        """
        replayed = superseded = 0
        layout = self.layout
        window = int(self.clock.monotonic() * 1000) // RESEND_WINDOW_MS
        for shard in range(layout.shards):
            dead, stream = layout.dead(shard), layout.stream(shard)
            while True:
                page = await self.store.call("XRANGE", dead, "-", "+", "COUNT", _REPLAY_PAGE)
                if not page:
                    break
                for sid, fields in page:
                    text = (fields.get(b"i") or b"").decode(errors="replace")
                    keys = [stream, dead, layout.entry(shard, text), layout.ops(shard, window)]
                    args = [sid, new_op_id(), RESEND_WINDOW_MS]
                    outcome = await self.store.run(_REPLAY, keys, args)
                    if outcome == 1:
                        replayed += 1
                    elif outcome == 0:
                        superseded += 1
        self.events.emit(Happened.REPLAYED, replayed)
        self.events.emit(Happened.REPLAY_SUPERSEDED, superseded)
        if replayed or superseded:
            logger.warning(
                "write-behind %r: %d dead letters replayed, %d dropped (superseded by newer "
                "writes of their ids)",
                layout.prefix,
                replayed,
                superseded,
            )
        return replayed, superseded

    # -- background jobs ---------------------------------------------------------------------

    async def _run(self) -> None:
        """The flush loop: rounds while there is work, else wait ``flush_interval``."""
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                if not self._members:
                    await self._beat()
                async with self._round:
                    _, more = await self._round_once("background")
                failures = 0
            except Exception as exc:
                # Nothing may end the loop: the writes would pile up unseen.
                failures += 1
                if isinstance(exc, RedkitError):
                    self._warn("cannot reach Redis (%s); retrying", exc)
                else:
                    logger.exception("write-behind %r: flush round failed", self.layout.prefix)
                await self._stop.wait(self.backoff.compute(failures))
                continue
            if not more and not self._stopping:
                await self._wake.wait(self.flush_interval)

    async def _heartbeat(self) -> None:
        """Keep this flusher registered and its leases alive, also during a slow upsert."""
        while not self._stopping:
            try:
                await self._beat()
            except Exception as exc:
                self._warn("heartbeat failed (%s); retrying", exc)
            await self._stop.wait(self.claim_after / 3)

    async def _beat(self) -> None:
        members = await self.store.run(
            _MEMBERS, [self.layout.registry], [self.token, self.lease_ms, "join"]
        )
        self._members = tuple(m.decode() if isinstance(m, bytes) else m for m in members)
        await self._renew(list(self._shards.values()))

    async def _renew(self, shards: list[Shard]) -> None:
        if not shards:
            return
        sent = self.clock.monotonic()
        results = await self.store.run_many(
            [(_LEASE, self._lease_keys(s.index), self._lease_args("renew")) for s in shards]
        )
        for shard, result in zip(shards, results, strict=True):
            if result:
                shard.valid_until = sent + self.claim_after
            else:
                shard.lost = True

    # -- one round ---------------------------------------------------------------------------

    async def _round_once(self, mode: _Mode) -> tuple[int, bool]:
        """Adjust the leases (see :meth:`_adjust`), then one batch of every shard held;
        (entities written, whether there is more to do now)."""
        await self._adjust(mode)
        if not self.running:
            # No heartbeat job: renew the leases that are a third through their time.
            due = self.clock.monotonic() + self.claim_after * 2 / 3
            await self._renew([s for s in self._shards.values() if s.valid_until < due])
        written = 0
        more = False
        now = self.clock.monotonic()
        for shard in list(self._shards.values()):
            if shard.lost:
                self._drop(shard)
                continue
            if shard.retry_at > now:
                continue
            done, full = await self._step(shard)
            written += done
            more = more or full
        return written, more

    async def _adjust(self, mode: _Mode) -> None:
        """Change the shards held, by ``mode``.

        ``"background"``: give up the shards another live flusher should own (rendezvous
        hashing over the registry) and try to take the free ones this one should, at most
        every ``claim_after / 3`` seconds; ``"owned"``: the same now; ``"free"``: take every
        free shard; ``"keep"``: no change.
        """
        if mode == "keep":
            return
        layout = self.layout
        if mode == "free":
            wanted = set(range(layout.shards))
        else:
            if not self._members:
                await self._beat()
            members = self._members
            wanted = {s for s in range(layout.shards) if owner(s, members) == self.token}
            for index in [i for i in self._shards if i not in wanted]:
                await self._release(self._shards[index])
        missing = [s for s in sorted(wanted) if s not in self._shards]
        now = self.clock.monotonic()
        if not missing or (mode == "background" and now < self._next_take):
            return
        self._next_take = now + self.claim_after / 3
        results = await self.store.run_many(
            [(_LEASE, self._lease_keys(s), self._lease_args("take")) for s in missing]
        )
        for index, result in zip(missing, results, strict=True):
            if result:
                self._shards[index] = Shard(index, now + self.claim_after)

    def _lease_keys(self, index: int) -> list[str]:
        return [self.layout.lease(index), self.layout.stream(index)]

    def _lease_args(self, mode: str) -> list[Any]:
        return [self.token, self.lease_ms, GROUP, mode]

    async def _release(self, shard: Shard) -> None:
        """Give ``shard`` up (its held batch stays pending: the next owner claims it)."""
        self._drop(shard)
        await self.store.run(_RELEASE, [self.layout.lease(shard.index)], [self.token])

    async def _release_all(self) -> None:
        for shard in list(self._shards.values()):
            await self._release(shard)

    def _drop(self, shard: Shard) -> None:
        if self._shards.get(shard.index) is shard:
            del self._shards[shard.index]

    # -- one batch of one shard --------------------------------------------------------------

    async def _step(self, shard: Shard) -> tuple[int, bool]:
        """Read (or retry) one batch of ``shard`` and write it; (written, more to do)."""
        batch = shard.held
        claimed = False
        if batch is None:
            claimed = shard.claiming
            entries = await self._read(shard)
            if not entries:
                return 0, False
            batch = shard.held = coalesce(entries)
            self.events.emit(Happened.COALESCED, batch.entries - len(batch.pending))
            for sid, fields in batch.malformed:
                await self._dead_malformed(shard, sid, fields)
        written = await self._write(shard, batch)
        # After claimed entries come the new ones; after a full batch, maybe more.
        more = claimed or batch.entries >= self.batch_size
        return written, more and shard.held is None

    async def _read(self, shard: Shard) -> list[tuple[bytes, Mapping[bytes, bytes]]]:
        """The next entries of ``shard``, in stream order."""
        stream = self.layout.stream(shard.index)
        while shard.claiming:
            # The lease is ours: whatever is pending was left by an earlier owner. Claim it
            # all (minimum idle 0), from the start of the pending list, before reading new
            # entries, so those older writes go first.
            reply = await self.store.call(
                "XAUTOCLAIM", stream, GROUP, self.token, 0, shard.cursor, "COUNT", self.batch_size
            )
            shard.cursor = reply[0]
            if shard.cursor in (b"0-0", "0-0"):
                shard.claiming = False
            claimed = [(e[0], e[1]) for e in reply[1] if e and e[1] is not None]
            if claimed:
                self.events.emit(Happened.CLAIMED, len(claimed))
                return claimed
        reply = await self.store.call(
            "XREADGROUP", "GROUP", GROUP, self.token, "COUNT", self.batch_size, "STREAMS",
            stream, ">",
        )  # fmt: skip
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3 replies, should redis-py not normalise them
            return list(next(iter(reply.values()))[0])
        return list(reply[0][1])

    async def _write(self, shard: Shard, batch: Batch) -> int:
        """Upsert ``batch``'s entities, acknowledge what was written; entities written."""
        items: list[tuple[Pending, dict[str, Any]]] = []
        for pending in list(batch.pending.values()):
            entity = await self._entity(shard, batch, pending)
            if entity is not None:
                items.append((pending, entity))
        if not items:
            shard.held = None
            return 0
        if self.clock.monotonic() >= shard.valid_until:
            # The lease may be someone else's by now: leave the batch to the next owner.
            self._drop(shard)
            return 0
        try:
            await self.repository.upsert_many([entity for _, entity in items])
        except Exception as exc:
            self.events.emit(Happened.FLUSH_FAILED)
            written = await self._failed(shard, batch, items, exc)
        else:
            written = await self._acknowledge(shard, batch, items)
        if not batch.pending:
            shard.held = None
            shard.failures = 0
        return written

    async def _entity(self, shard: Shard, batch: Batch, pending: Pending) -> dict[str, Any] | None:
        """The entity ``pending`` holds, or None after dead-lettering bytes that are not one."""
        try:
            payload = unframe(pending.payload)
            if payload is None:
                raise CorruptEntry("the write is too short to hold an entity")
            entity = self.codec.decode(payload)
            if not isinstance(entity, Mapping) or self.id_field not in entity:
                raise CorruptEntry(f"not an entity with an {self.id_field!r} field: {entity!r}")
            entity = dict(entity)
            if self.version_field is not None:
                entity[self.version_field] = version_of(pending.version)
        except (CorruptEntry, ValueError) as exc:
            pending.error = _describe(exc)
            await self._dead_letter(shard, batch, pending)
            return None
        return entity

    async def _acknowledge(
        self, shard: Shard, batch: Batch, items: list[tuple[Pending, dict[str, Any]]]
    ) -> int:
        layout, index = self.layout, shard.index
        pendings = [pending for pending, _ in items]
        sids = [sid for pending in pendings for sid in pending.sids]
        await self.store.run(
            _ACK,
            [
                layout.stream(index),
                layout.attempts(index),
                *(layout.entry(index, p.id) for p in pendings),
            ],
            [GROUP, self.ttl_ms, len(sids), *sids, *(p.payload[:TOKEN_SIZE] for p in pendings)],
        )
        for pending in pendings:
            del batch.pending[pending.id]
        self.events.emit(Happened.FLUSHED, len(pendings))
        self.events.emit(Happened.FLUSH_BATCH)
        return len(pendings)

    async def _failed(
        self,
        shard: Shard,
        batch: Batch,
        items: list[tuple[Pending, dict[str, Any]]],
        exc: Exception,
    ) -> int:
        """The repository refused ``items``: wait for it, or find the entities at fault."""
        if _transient(exc) or not await self._database_answers(items[0][1]):
            shard.failures += 1
            shard.retry_at = self.clock.monotonic() + self.backoff.compute(shard.failures)
            self._warn("the repository is unavailable (%s); the batch waits", exc)
            return 0
        written = await self._isolate(shard, batch, items, exc)
        if batch.pending:
            worst = max(p.attempts for p in batch.pending.values())
            shard.retry_at = self.clock.monotonic() + self.backoff.compute(max(1, worst))
        return written

    async def _database_answers(self, entity: dict[str, Any]) -> bool:
        """Whether the repository can read (then a refused write is the entities' fault)."""
        try:
            await self.repository.find_by_id(entity[self.id_field])
        except ConfigurationError:
            return True  # it answered: this id is not acceptable to it
        except Exception:
            return False
        return True

    async def _isolate(
        self,
        shard: Shard,
        batch: Batch,
        items: list[tuple[Pending, dict[str, Any]]],
        exc: Exception,
    ) -> int:
        """Split refused ``items`` until the entities at fault are alone; write the rest."""
        if len(items) == 1:
            pending = items[0][0]
            # Counted in Redis: the count survives this flusher (and a shard changing hands).
            layout, index = self.layout, shard.index
            window = int(self.clock.monotonic() * 1000) // RESEND_WINDOW_MS
            pending.attempts = int(
                await self.store.run(
                    _ATTEMPT,
                    [layout.attempts(index), layout.ops(index, window)],
                    [pending.sids[-1], new_op_id(), RESEND_WINDOW_MS],
                )
            )
            pending.error = _describe(exc)
            logger.warning(
                "write-behind %r: id %r refused by the repository (attempt %d of %d): %s",
                self.layout.prefix,
                pending.id,
                pending.attempts,
                self.max_attempts,
                pending.error,
            )
            if pending.attempts >= self.max_attempts:
                await self._dead_letter(shard, batch, pending)
            return 0
        middle = len(items) // 2
        written = 0
        for half in (items[:middle], items[middle:]):
            try:
                await self.repository.upsert_many([entity for _, entity in half])
            except Exception as error:
                self.events.emit(Happened.FLUSH_FAILED)
                written += await self._isolate(shard, batch, half, error)
            else:
                written += await self._acknowledge(shard, batch, half)
        return written

    async def _dead_letter(self, shard: Shard, batch: Batch, pending: Pending) -> None:
        layout, index = self.layout, shard.index
        await self.store.run(
            _DEAD,
            [
                layout.stream(index),
                layout.dead(index),
                layout.attempts(index),
                layout.entry(index, pending.id),
            ],
            [
                GROUP,
                pending.id,
                pending.payload,
                pending.version,
                pending.error,
                pending.attempts,
                *pending.sids,
            ],
        )
        batch.pending.pop(pending.id, None)
        self.events.emit(Happened.DEAD_LETTER)
        logger.error(
            "write-behind %r: id %r moved to the dead-letter stream %s after %d attempt(s): %s",
            layout.prefix,
            pending.id,
            layout.dead(index),
            pending.attempts,
            pending.error,
        )

    async def _dead_malformed(
        self, shard: Shard, sid: bytes, fields: Mapping[bytes, bytes]
    ) -> None:
        """A stream entry that is not a write (not written by redkit): dead-letter it."""
        raw_id = fields.get(b"i") or b""
        pending = Pending(
            raw_id.decode(errors="replace") or "?",
            sid,
            fields.get(b"d") or b"",
            [sid],
            error=f"not a write-behind entry (fields {sorted(fields)!r})",
        )
        batch = Batch({}, [], 0)
        await self._dead_letter(shard, batch, pending)

    def _warn(self, message: str, exc: BaseException) -> None:
        """Log ``message`` at most once per few seconds (a database down for minutes)."""
        now = self.clock.monotonic()
        if now - self._logged_at >= _LOG_EVERY or not self._logged_at:
            self._logged_at = now
            logger.warning("write-behind %r: " + message, self.layout.prefix, exc)
        else:
            logger.debug("write-behind %r: " + message, self.layout.prefix, exc)
