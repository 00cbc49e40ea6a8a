"""A distributed lock on one Redis (standalone, Sentinel or Cluster), with fencing tokens.

Keys (one hash tag, so one slot): ``lock:{name}`` holds the owner's token (``SET NX PX``);
its companions ``...:fence``, the fencing counter the same acquire script advances,
``...:signal``, a list that each release pushes one signal into, and ``...:released``, the
token of the last release. A blocked acquire waits on the signal list with ``BLPOP`` (woken
as soon as the lock is released), for at most the holder's remaining time or a jittered poll
interval, so a lock that expires, or a signal taken by someone else, costs at most one poll.

Fencing tokens never decrease for a name: a token is the larger of the counter + 1 and the
server's clock in microseconds (``TIME``), so losing the counter (FLUSHALL, eviction, a
restart without persistence, a failover to a replica that missed it) falls back on the clock,
and a clock that steps back falls back on the counter. The counter and the release marker
outlive the lock by :data:`LINGER_MS` and then expire: an idle name leaves no key behind.

Every script is safe to run twice: redis-py re-sends a command whose reply came later than
``socket_timeout``, although the server ran it. A re-sent acquire finds the lock holding its
own token and returns the same fencing token; a re-sent release finds its marker and
reports the release it made; extend is idempotent.

The token belongs to the lock object *and* the task (the thread on the sync face) that
acquired it: two tasks sharing one ``Lock`` are two owners, so one can never release or
extend the other's hold (redis-py's asyncio lock keeps the token in a thread-local, which
every task of a thread shares). Release and extend are scripts that check the token. A hold
whose task has finished without releasing it (``asyncio.wait_for`` runs its awaitable in a
task of its own before Python 3.12) passes to the next task that uses the lock.

With ``auto_extend=True`` a watchdog (a task, a thread on the sync face) extends the lock
every ``ttl/3`` while it is held. It stops at release, after ``max_extensions``, at
``max_hold``, and when its owner task was cancelled holding it. When an
extension finds the lock gone, or Redis has not answered for a whole ``ttl``, the lock is
marked ``lost`` and ``on_lost(lock)`` is called.

:class:`LockBase` holds what :class:`Lock` and :class:`~redkit._async.redlock.Redlock`
share: owners, the watchdog, the context manager.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redkit._acompat import ASYNC, Background, Event, sleep
from redkit._async.store import Store
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.events import Event as Happened
from redkit._core.events import Events
from redkit._core.keys import LOCK_ENTRY, Companion, KeyId, KeySpace, companion
from redkit._core.ttl import non_negative, seconds_to_ms
from redkit._scripts import script
from redkit.errors import LockError, LockNotAcquired, LockNotOwned, RedkitError

if ASYNC:
    import asyncio
else:
    import threading

logger = logging.getLogger("redkit.lock")

_ACQUIRE = script("lock_acquire")
_RELEASE = script("lock_release")
_EXTEND = script("lock_extend")

#: How long an untaken wake-up signal lives (ms): long enough to cover a waiter between its
#: failed attempt and its BLPOP.
SIGNAL_TTL_MS = 1000
#: How long the fencing counter outlives the lock, and the release marker its release (ms):
#: a re-sent release within this time reports success, and a lock taken again within it
#: gets a larger token even if the server's clock stepped back meanwhile.
LINGER_MS = 60_000
#: The longest single BLPOP (seconds): well under any sane socket timeout.
_MAX_BLOCK = 1.0
_MIN_BLOCK = 0.001
#: A server ends a BLPOP on its timer tick (hz 10: up to 100 ms late); a waiter keeps that
#: much before its deadline, and polls every ~10 ms there instead.
_TICK = 0.1
_MIN_USEFUL_BLOCK = 0.02
_FINAL_POLL = 0.01

OnLost = Callable[[Any], object]


def lock_keys(key: str) -> list[str]:
    """The keys of acquire, extend and fence raise: the lock and its fencing counter."""
    return [key, companion(key, Companion.FENCE)]


def release_keys(key: str) -> list[str]:
    """The keys of release: the lock, its wake-up list and its release marker."""
    return [key, companion(key, Companion.SIGNAL), companion(key, Companion.RELEASED)]


def release_args(token: str) -> list[Any]:
    """The arguments of release for ``token``."""
    return [token, SIGNAL_TTL_MS, LINGER_MS]


def new_token() -> str:
    """A random owner token: 128 bits from ``secrets``."""
    return secrets.token_hex(16)


class Hold:
    """One owner's hold on a lock: its token, fencing token and watchdog state."""

    __slots__ = ("acquired_at", "extensions", "fence", "lost", "owner", "stopped", "token")

    def __init__(self, token: str, fence: int, acquired_at: float, owner: Any) -> None:
        self.token = token
        self.fence = fence
        self.acquired_at = acquired_at
        self.owner = owner
        self.lost = False
        self.extensions = 0
        self.stopped: Event | None = None

    def stop(self) -> None:
        """Stop this hold's watchdog (if any): no renewal is sent after this returns."""
        if self.stopped is not None:
            self.stopped.set()


def current_owner() -> Any:
    """Who is acquiring or releasing now: the running task (the thread on the sync face)."""
    if ASYNC:
        owner = asyncio.current_task()
        if owner is None:
            raise LockError("a redkit.asyncio lock must be used from inside an asyncio task")
        return owner
    else:
        return threading.current_thread()


def _owner_ended(owner: Any) -> bool:
    """Whether ``owner`` (a task or a thread) has finished."""
    if ASYNC:
        return owner.done()  # type: ignore[no-any-return]
    else:
        return not owner.is_alive()  # type: ignore[no-any-return]


def _owner_cancelled(owner: Any) -> bool:
    """Whether ``owner`` ended by cancellation (a thread never does)."""
    if ASYNC:
        return owner.cancelled()  # type: ignore[no-any-return]
    else:
        return False


class LockBase:
    """What every redkit lock shares: owners (task or thread), the watchdog, ``with``.

    A subclass implements ``_try_acquire``/``_release_hold``/``_extend_hold`` and
    ``acquire``; see :class:`Lock`.
    """

    kind = "lock"

    def __init__(
        self,
        name: KeyId,
        ttl: float,
        *,
        prefix: str,
        auto_extend: bool,
        timeout: float | None,
        max_extensions: int | None,
        max_hold: float | None,
        on_lost: OnLost | None,
        clock: Clock,
        rng: Callable[[], float],
    ) -> None:
        self.keys = KeySpace(prefix, kind=LOCK_ENTRY)
        self.key = self.keys.key(name)
        self.name = name
        self.ttl_ms = seconds_to_ms(ttl)
        self.ttl = self.ttl_ms / 1000
        self.auto_extend = bool(auto_extend)
        self.timeout = None if timeout is None else non_negative(timeout, "timeout")
        if max_extensions is not None and (
            isinstance(max_extensions, bool) or not isinstance(max_extensions, int)
        ):
            raise LockError(f"max_extensions must be an int or None, got {max_extensions!r}")
        if max_extensions is not None and max_extensions < 0:
            raise LockError(f"max_extensions must be >= 0, got {max_extensions!r}")
        self.max_extensions = max_extensions
        self.max_hold = None if max_hold is None else non_negative(max_hold, "max_hold")
        if on_lost is not None and not callable(on_lost):
            raise LockError(f"on_lost must be callable, got {on_lost!r}")
        self.on_lost = on_lost
        self.clock = clock
        self.rng = rng
        if ASYNC:
            threadsafe = False
        else:
            threadsafe = True
        self.events = Events(self.kind, str(name), threadsafe=threadsafe)
        self._holds: dict[Any, Hold] = {}

    # -- what the caller holds ------------------------------------------------------------

    def _hold(self) -> Hold | None:
        owner = current_owner()
        hold = self._holds.get(owner)
        if hold is None and self._holds:
            hold = self._adopt(owner)
        return hold

    def _adopt(self, owner: Any) -> Hold | None:
        """Hand ``owner`` a hold whose owner has finished without releasing it.

        ``asyncio.wait_for`` (before Python 3.12) and ``create_task`` acquire in a task of
        their own that ends at once; the task that awaited it takes the hold over on its
        next call. A hold whose owner still runs is never handed over.
        """
        for other, hold in list(self._holds.items()):
            if _owner_ended(other):
                del self._holds[other]
                hold.owner = owner
                self._holds[owner] = hold
                return hold
        return None

    def _held(self, action: str) -> Hold:
        hold = self._hold()
        if hold is None:
            raise LockNotOwned(
                f"cannot {action} {self.kind} {self.key!r}: this "
                f"{'task' if ASYNC else 'thread'} does not hold it"
            )
        return hold

    @property
    def fencing_token(self) -> int:
        """The fencing token of the caller's hold: larger than every earlier holder's.

        Pass it with every write to the protected resource; the resource rejects a token
        smaller than the largest it has seen (a holder that paused past its TTL).
        """
        hold = self._hold()
        if hold is None:
            raise LockNotOwned(f"{self.kind} {self.key!r} is not held by the caller")
        return hold.fence

    @property
    def lost(self) -> bool:
        """Whether the watchdog found the caller's hold gone (or could not renew it in time)."""
        hold = self._hold()
        return hold is not None and hold.lost

    def _drop_hold(self, owner: Any, token: str) -> None:
        """Forget ``owner``'s hold if it is still the one with ``token``."""
        hold = self._holds.get(owner)
        if hold is not None and hold.token == token:
            del self._holds[owner]
            hold.stop()

    def _check_not_held(self) -> Any:
        owner = current_owner()
        hold = self._holds.get(owner)
        expired = hold is not None and self.clock.monotonic() - hold.acquired_at >= self.ttl
        if hold is not None and expired and not self.auto_extend:
            # Its release was interrupted (a signal handler's exception) and its ttl has run
            # out since: Redis has let it go, so the record goes too.
            self._drop_hold(owner, hold.token)
        if owner in self._holds:
            raise LockError(
                f"{self.kind} {self.key!r} is already held by this "
                f"{'task' if ASYNC else 'thread'} (redkit locks are not reentrant)"
            )
        return owner

    def _timeout(self, timeout: float | None) -> float | None:
        """The deadline (monotonic) for ``timeout`` seconds from now, None for no limit."""
        if timeout is None:
            return None
        return self.clock.monotonic() + non_negative(timeout, "timeout")

    def _took(self, owner: Any, token: str, fence: int, started: float) -> Hold:
        hold = Hold(token, fence, started, owner)
        self._holds[owner] = hold
        self.events.emit(Happened.LOCK_ACQUIRED)
        if self.auto_extend:
            hold.stopped = Event()
            self._background().spawn(lambda: self._watch(hold), "lock watchdog")
        return hold

    # -- the watchdog --------------------------------------------------------------------

    def _background(self) -> Background:
        raise NotImplementedError

    async def _extend_hold(self, hold: Hold, ttl_ms: int) -> bool:
        raise NotImplementedError

    async def _watch(self, hold: Hold) -> None:
        """Extend ``hold`` every ttl/3 until it is released, capped, orphaned or lost."""
        assert hold.stopped is not None
        interval = self.ttl / 3
        confirmed = hold.acquired_at  # when the lock was last known to be ours
        while True:
            if await hold.stopped.wait(interval) or _owner_cancelled(hold.owner):
                return
            if self.max_extensions is not None and hold.extensions >= self.max_extensions:
                return
            ttl_ms = self.ttl_ms
            now = self.clock.monotonic()
            if self.max_hold is not None:
                left = hold.acquired_at + self.max_hold - now
                if left * 1000 < 1:
                    return
                ttl_ms = min(ttl_ms, max(1, int(left * 1000)))
            try:
                extended = await self._extend_hold(hold, ttl_ms)
            except RedkitError as exc:
                if hold.stopped.is_set():
                    return
                if self.clock.monotonic() - confirmed + interval < self.ttl:
                    logger.warning(
                        "could not extend %s %s (retrying): %s", self.kind, self.key, exc
                    )
                    continue
                self._lose(hold, f"Redis did not answer for a whole ttl: {exc}")
                return
            if hold.stopped.is_set():
                return  # released meanwhile: a refusal means nothing
            if not extended:
                self._lose(hold, "it was no longer held (its ttl ran out, or another holder)")
                return
            confirmed = now
            hold.extensions += 1
            self.events.emit(Happened.LOCK_EXTENDED)

    def _lose(self, hold: Hold, why: str) -> None:
        hold.lost = True
        self.events.emit(Happened.LOCK_LOST)
        logger.warning("%s %s lost: %s", self.kind, self.key, why)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                logger.exception("on_lost callback of %s %s failed", self.kind, self.key)

    # -- the interface ---------------------------------------------------------------------

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        if not await self.acquire(timeout=self.timeout):
            raise LockNotAcquired(
                f"{self.kind} {self.key!r} was not acquired within timeout={self.timeout}s"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()  # type: ignore[attr-defined]
        except LockNotOwned:
            if exc is None:
                raise
            logger.warning("%s %s was lost before the block ended", self.kind, self.key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, ttl={self.ttl})"


class Lock(LockBase):
    """A lock named ``name`` on ``client``, held for at most ``ttl`` seconds per acquire.

    ``acquire(blocking=True, timeout=None) -> bool``, ``release()``, ``extend(ttl=None)``,
    ``locked()``, ``owned()``, ``fencing_token``, ``lost``; ``async with lock:`` (``with``
    on the sync face) acquires with ``timeout`` (None: wait as long as it takes) and raises
    :class:`~redkit.errors.LockNotAcquired` when it passes.

    ``auto_extend``: a watchdog extends the lock every ttl/3 until release; it stops after
    ``max_extensions`` extensions or ``max_hold`` seconds, and calls ``on_lost(lock)`` if
    the lock is lost. ``retry_interval``: the longest a waiter sleeps without a wake-up
    (jittered, and never past the holder's expiry). A lock never pretends: when Redis
    cannot be reached, every call raises a :class:`~redkit.errors.BackendError`.
    ``clock`` and ``rng`` are seams for tests.
    """

    def __init__(
        self,
        client: Any,
        name: KeyId,
        ttl: float = 30.0,
        auto_extend: bool = False,
        *,
        prefix: str = "lock",
        timeout: float | None = None,
        retry_interval: float = 0.2,
        max_extensions: int | None = None,
        max_hold: float | None = None,
        on_lost: OnLost | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            name,
            ttl,
            prefix=prefix,
            auto_extend=auto_extend,
            timeout=timeout,
            max_extensions=max_extensions,
            max_hold=max_hold,
            on_lost=on_lost,
            clock=clock,
            rng=rng,
        )
        self.retry_interval = seconds_to_ms(retry_interval, "retry_interval") / 1000
        self.store = Store(client, self.keys, pattern="Lock", events=self.events, batch_reads=False)
        self.client = client
        self._acquire_keys = lock_keys(self.key)
        self._release_keys = release_keys(self.key)
        self._signal = self._release_keys[1]

    def _background(self) -> Background:
        return self.store.background

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; whether it was taken (False only when not blocking or timed out).

        Blocking waits are woken by the holder's release; ``timeout`` is measured on a
        monotonic clock.
        """
        owner = self._check_not_held()
        deadline = self._timeout(timeout)
        token = new_token()
        started = self.clock.monotonic()
        contended = False
        while True:
            result = await self._try_acquire(token)
            if result > 0:
                try:
                    self._took(owner, token, result, started)
                except BaseException:
                    # Interrupted once taken (a signal handler's exception after the hold was
                    # recorded): the caller never learns it holds the lock, so undo both.
                    self._drop_hold(owner, token)
                    await self._abandon(token)
                    raise
                return True
            if not contended:
                contended = True
                self.events.emit(Happened.LOCK_CONTENDED)
            if not blocking:
                return False
            block = self.retry_interval * (0.5 + self.rng())
            if result < 0:  # the holder's lock expires in -result ms
                block = min(block, -result / 1000 + _MIN_BLOCK)
            if deadline is not None:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return False
                if left - _TICK < _MIN_USEFUL_BLOCK:
                    # A BLPOP times out on the server's tick and could overrun the deadline:
                    # poll the last stretch instead.
                    await sleep(min(left, _FINAL_POLL * (0.5 + self.rng())))
                    continue
                block = min(block, left - _TICK)
            await self._wait_for_release(block)

    async def _try_acquire(self, token: str) -> int:
        try:
            return int(
                await self.store.run(_ACQUIRE, self._acquire_keys, [token, self.ttl_ms, LINGER_MS])
            )
        except BaseException:
            # The script may have run before the failure or cancellation: undo it.
            await self._abandon(token)
            raise

    async def _wait_for_release(self, seconds: float) -> None:
        """Block until a release signal arrives or ``seconds`` pass."""
        seconds = min(max(seconds, _MIN_BLOCK), _MAX_BLOCK)
        await self.store.call("BLPOP", self._signal, f"{seconds:.3f}")

    async def _abandon(self, token: str) -> None:
        async def release() -> None:
            try:
                await self.store.run(_RELEASE, self._release_keys, release_args(token))
            except RedkitError as exc:
                logger.warning("could not undo an interrupted acquire of %s: %s", self.key, exc)

        await self.store.background.cleanup(release, "lock release")

    async def release(self) -> None:
        """Release the caller's hold; LockNotOwned if the caller does not hold it (any more).

        Never deletes another holder's lock. The hold ends here even if the call is
        cancelled or Redis fails: no renewal follows, and Redis lets the lock expire.
        """
        hold = self._held("release")
        del self._holds[hold.owner]
        hold.stop()
        released = await self.store.background.shielded(
            lambda: self.store.run(_RELEASE, self._release_keys, release_args(hold.token)),
            "lock release",
        )
        if not released:
            raise LockNotOwned(
                f"lock {self.key!r} was no longer held by this owner when released: its "
                f"ttl ({self.ttl}s) ran out{' and it was lost' if hold.lost else ''}"
            )
        self.events.emit(Happened.LOCK_RELEASED)

    async def extend(self, ttl: float | None = None) -> None:
        """Give the caller's hold ``ttl`` seconds (default: the lock's ttl) from now."""
        hold = self._held("extend")
        ttl_ms = self.ttl_ms if ttl is None else seconds_to_ms(ttl)
        if not await self._extend_hold(hold, ttl_ms):
            raise LockNotOwned(
                f"lock {self.key!r} could not be extended: it is no longer held by this owner"
            )
        self.events.emit(Happened.LOCK_EXTENDED)

    async def _extend_hold(self, hold: Hold, ttl_ms: int) -> bool:
        return bool(
            await self.store.run(_EXTEND, self._acquire_keys, [hold.token, ttl_ms, LINGER_MS])
        )

    async def locked(self) -> bool:
        """Whether anyone holds the lock now."""
        return bool(await self.store.call("EXISTS", self.key))

    async def owned(self) -> bool:
        """Whether the caller holds the lock now (checked in Redis)."""
        hold = self._hold()
        if hold is None:
            return False
        return bool(await self.store.call("GET", self.key) == hold.token.encode())

    async def aclose(self) -> None:
        """Stop every watchdog of this lock (holds are not released; they expire)."""
        for hold in list(self._holds.values()):
            hold.stop()
        await self.store.aclose()
