"""Redlock: one lock over N independent Redis masters, held while a majority agrees.

An attempt runs the acquire script (``SET NX PX`` + the fencing counter, as :class:`Lock`)
on every server at once, and waits for each at most ``server_timeout`` seconds (default
``min(ttl / 10, 0.5)``): a server that does not answer in time counts as a failure, so
dead or partitioned servers cost one budget per attempt together, not a socket timeout
each. It succeeds when a majority took it and time is left: the validity is
``ttl - elapsed - drift`` (``drift = ttl * drift_factor + 2 ms``). A failed attempt releases
on every server at once (also those that did not answer: the script may have run there),
then retries after ``retry_delay`` plus up to ``retry_jitter`` seconds. A blocking
``acquire(timeout=...)`` cuts every wait (the budgets included) at its deadline.

A server that answers after its budget is released as soon as its answer arrives, unless
the hold is live by then (a late acquire must not leave a lock there that nobody owns; the
release script checks the token, so releasing is always safe).

Fencing over several servers: each server has its own counter (floored by its clock, see
:mod:`redkit._async.lock`), so a second step lifts the counter of every server that granted
the lock to the largest token among them, and needs a majority again. Any two majorities
share a server, and that server's counter was lifted before the earlier hold could end, so
a later hold gets a larger token while that counter lives (``LINGER_MS`` after the hold);
after that, while the servers' clocks differ by less than that margin.

Extending needs a majority within the validity as well; releasing runs on every server.
When so many servers fail that no majority can answer, ``acquire`` raises
:class:`~redkit.errors.BackendUnavailable`: a lock never pretends.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from redkit._acompat import Background, gather_within, sleep
from redkit._async.lock import (
    LINGER_MS,
    Hold,
    LockBase,
    OnLost,
    lock_keys,
    release_args,
    release_keys,
)
from redkit._async.store import Store
from redkit._core.clock import SYSTEM_CLOCK, Clock
from redkit._core.events import Event as Happened
from redkit._core.keys import KeyId
from redkit._core.ttl import non_negative
from redkit._scripts import script
from redkit.errors import BackendUnavailable, ConfigurationError, LockNotOwned, RedkitError

logger = logging.getLogger("redkit.lock")

_ACQUIRE = script("lock_acquire")
_RELEASE = script("lock_release")
_EXTEND = script("lock_extend")
_FENCE_RAISE = script("lock_fence_raise")

#: Added to the clock drift (the Redlock algorithm's 2 ms for the servers' expiry precision).
_DRIFT_FLOOR = 0.002
#: The default per-server budget: a tenth of the ttl, at most this many seconds.
_SERVER_TIMEOUT_CAP = 0.5


class Redlock(LockBase):
    """A lock named ``name`` over ``clients`` (independent masters, not a Cluster's nodes).

    The same interface as :class:`~redkit._async.lock.Lock`, plus ``validity`` (seconds
    the caller's hold is still guaranteed) and ``quorum``. Without ``timeout`` a blocking
    ``acquire`` makes ``retry_count`` retries; with one, it retries until the timeout.
    ``server_timeout``: how long each call waits for each server (all are asked at once);
    default ``min(ttl / 10, 0.5)`` seconds.
    """

    kind = "redlock"

    def __init__(
        self,
        clients: Sequence[Any],
        name: KeyId,
        ttl: float = 30.0,
        *,
        drift_factor: float = 0.01,
        retry_count: int = 3,
        retry_delay: float = 0.2,
        retry_jitter: float = 0.2,
        auto_extend: bool = False,
        prefix: str = "lock",
        timeout: float | None = None,
        max_extensions: int | None = None,
        max_hold: float | None = None,
        on_lost: OnLost | None = None,
        server_timeout: float | None = None,
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
        clients = list(clients)
        if not clients:
            raise ConfigurationError("Redlock needs at least one client (five is usual)")
        if len({id(client) for client in clients}) != len(clients):
            raise ConfigurationError("Redlock was given the same client twice")
        if isinstance(retry_count, bool) or not isinstance(retry_count, int) or retry_count < 0:
            raise ConfigurationError(f"retry_count must be an int >= 0, got {retry_count!r}")
        self.drift_factor = non_negative(drift_factor, "drift_factor")
        self.retry_count = retry_count
        self.retry_delay = non_negative(retry_delay, "retry_delay")
        self.retry_jitter = non_negative(retry_jitter, "retry_jitter")
        if server_timeout is None:
            server_timeout = min(self.ttl / 10, _SERVER_TIMEOUT_CAP)
        elif non_negative(server_timeout, "server_timeout") <= 0:
            raise ConfigurationError(f"server_timeout must be > 0, got {server_timeout!r}")
        self.server_timeout = float(server_timeout)
        self.stores = [
            Store(client, self.keys, pattern="Redlock", events=self.events, batch_reads=False)
            for client in clients
        ]
        if any(store.cluster for store in self.stores):
            raise ConfigurationError(
                "Redlock needs independent masters; a Cluster client is one lock already: "
                "use Lock on it"
            )
        self.quorum = len(clients) // 2 + 1
        self._own_background = Background(f"Redlock {self.key!r}")
        self._fence_keys = lock_keys(self.key)
        self._release_keys = release_keys(self.key)
        self._valid_until: dict[Any, float] = {}

    def _background(self) -> Background:
        return self._own_background

    @property
    def validity(self) -> float:
        """Seconds the caller's hold is still guaranteed (0.0 when not held or expired)."""
        hold = self._hold()
        if hold is None:
            return 0.0
        return max(0.0, self._valid_until.get(hold.token, 0.0) - self.clock.monotonic())

    def _drift(self, ttl_ms: int) -> float:
        return ttl_ms / 1000 * self.drift_factor + _DRIFT_FLOOR

    def _budget(self, deadline: float | None) -> float:
        """How long the next call may wait for each server: its budget, cut at ``deadline``."""
        if deadline is None:
            return self.server_timeout
        return max(0.0, min(self.server_timeout, deadline - self.clock.monotonic()))

    async def _on_each(
        self,
        stores: Sequence[Store],
        call: Callable[[Store], Any],
        deadline: float | None = None,
        late: Callable[[Store, Any], Any] | None = None,
    ) -> list[Any]:
        """``call(store)`` on each store at once, each within the budget; each result, or
        the error it raised (TimeoutError past the budget). ``late(store, outcome)`` runs
        when a call that missed its budget ends."""
        on_late = None
        if late is not None:
            hook = late

            async def on_late(index: int, outcome: Any) -> None:
                await hook(stores[index], outcome)

        return await gather_within(
            [functools.partial(call, store) for store in stores],
            self._budget(deadline),
            self._own_background,
            on_late,
        )

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock on a majority; whether it was taken.

        Raises :class:`~redkit.errors.BackendUnavailable` when too many servers failed for
        a majority to be possible.
        """
        owner = self._check_not_held()
        deadline = self._timeout(timeout)
        attempts = 1 if not blocking else (self.retry_count + 1 if deadline is None else None)
        # The first attempt always gets its whole budget (a timeout shorter than the budget
        # is one attempt); later ones are cut at the deadline.
        cut = (
            None
            if deadline is None
            else max(deadline, self.clock.monotonic() + self.server_timeout)
        )
        tried = 0
        while True:
            tried += 1
            token = secrets.token_hex(16)
            started = self.clock.monotonic()
            fence, failures = await self._attempt(token, started, cut)
            if fence:
                self._took(owner, token, fence, started)
                return True
            if tried == 1:
                self.events.emit(Happened.LOCK_CONTENDED)
            if attempts is not None and tried >= attempts:
                break
            wait = self.retry_delay + self.rng() * self.retry_jitter
            if deadline is not None:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            await sleep(wait)
            if deadline is not None and self.clock.monotonic() >= deadline:
                break  # no time left for an attempt: its calls could not wait for anyone
        if failures > len(self.stores) - self.quorum:
            raise BackendUnavailable(
                f"Redlock {self.key!r}: {failures} of {len(self.stores)} servers failed; "
                f"a majority ({self.quorum}) must answer"
            )
        return False

    async def _attempt(self, token: str, started: float, deadline: float | None) -> tuple[int, int]:
        """One attempt: (fencing token or 0, how many servers failed or missed the budget)."""
        try:
            results = await self._on_each(
                self.stores,
                lambda s: s.run(_ACQUIRE, self._fence_keys, [token, self.ttl_ms, LINGER_MS]),
                deadline,
                late=lambda s, _: self._release_unless_held(s, token),
            )
            granted = [
                (store, int(result))
                for store, result in zip(self.stores, results, strict=True)
                if isinstance(result, int) and result > 0
            ]
            failures = sum(isinstance(result, BaseException) for result in results)
            if len(granted) >= self.quorum:
                fence = max(value for _, value in granted)
                lifted = await self._on_each(
                    [store for store, _ in granted],
                    lambda s: s.run(_FENCE_RAISE, self._fence_keys, [token, fence, LINGER_MS]),
                    deadline,
                )
                confirmed = sum(result == 1 for result in lifted)
                valid_until = started + self.ttl - self._drift(self.ttl_ms)
                if confirmed >= self.quorum and self.clock.monotonic() < valid_until:
                    self._valid_until[token] = valid_until
                    return fence, failures
        except BaseException:
            await self._release_everywhere_later(token)
            raise
        await self._release_everywhere(token, deadline)
        return 0, failures

    async def _release_unless_held(self, store: Store, token: str) -> None:
        """A late answer to an acquire: release there, unless ``token``'s hold is live."""
        if token not in self._valid_until:
            try:
                await store.run(_RELEASE, self._release_keys, release_args(token))
            except RedkitError as exc:
                logger.warning("could not release a late acquire of %s: %s", self.key, exc)

    async def _release_everywhere(self, token: str, deadline: float | None = None) -> int:
        """Release ``token``'s lock on every server; on how many it was released in time."""
        results = await self._on_each(
            self.stores,
            lambda s: s.run(_RELEASE, self._release_keys, release_args(token)),
            deadline,
        )
        return sum(result == 1 for result in results)

    async def _release_everywhere_later(self, token: str) -> None:
        async def release() -> None:
            await self._release_everywhere(token)

        await self._own_background.cleanup(release, "redlock release")

    async def release(self) -> None:
        """Release on every server; LockNotOwned if the hold had ended on a majority."""
        hold = self._held("release")
        del self._holds[hold.owner]
        valid_until = self._valid_until.pop(hold.token, 0.0)
        hold.stop()
        released = await self._own_background.shielded(
            lambda: self._release_everywhere(hold.token), "redlock release"
        )
        if released < self.quorum or self.clock.monotonic() >= valid_until:
            raise LockNotOwned(
                f"Redlock {self.key!r} was no longer held by this owner on a majority when "
                f"released (released on {released} of {len(self.stores)})"
            )
        self.events.emit(Happened.LOCK_RELEASED)

    async def extend(self, ttl: float | None = None) -> None:
        """Give the hold ``ttl`` seconds (default: the lock's ttl) on a majority, from now."""
        hold = self._held("extend")
        ttl_ms = self.ttl_ms if ttl is None else round(non_negative(ttl, "ttl") * 1000)
        if ttl_ms < 1 or not await self._extend_hold(hold, ttl_ms):
            raise LockNotOwned(
                f"Redlock {self.key!r} could not be extended on a majority "
                f"({self.quorum} of {len(self.stores)})"
            )
        self.events.emit(Happened.LOCK_EXTENDED)

    async def _extend_hold(self, hold: Hold, ttl_ms: int) -> bool:
        if self.clock.monotonic() >= self._valid_until.get(hold.token, 0.0):
            return False
        started = self.clock.monotonic()
        results = await self._on_each(
            self.stores,
            lambda s: s.run(_EXTEND, self._fence_keys, [hold.token, ttl_ms, LINGER_MS]),
        )
        extended = sum(result == 1 for result in results)
        valid_until = started + ttl_ms / 1000 - self._drift(ttl_ms)
        if extended < self.quorum or self.clock.monotonic() >= valid_until:
            failures = sum(isinstance(result, BaseException) for result in results)
            if failures > len(self.stores) - self.quorum:
                raise BackendUnavailable(
                    f"Redlock {self.key!r}: {failures} of {len(self.stores)} servers failed"
                )
            return False
        if hold.token in self._valid_until:
            self._valid_until[hold.token] = valid_until
        return True

    async def locked(self) -> bool:
        """Whether a majority of the servers holds the lock for someone."""
        results = await self._on_each(self.stores, lambda s: s.call("EXISTS", self.key))
        return sum(1 for result in results if result == 1) >= self.quorum

    async def owned(self) -> bool:
        """Whether the caller holds the lock on a majority, within its validity."""
        hold = self._hold()
        if hold is None or self.validity <= 0:
            return False
        token = hold.token.encode()
        results = await self._on_each(self.stores, lambda s: s.call("GET", self.key))
        return sum(1 for result in results if result == token) >= self.quorum

    async def aclose(self) -> None:
        """Stop the watchdogs and background work (holds are not released; they expire)."""
        for hold in list(self._holds.values()):
            hold.stop()
        await self._own_background.close()
        for store in self.stores:
            await store.aclose()


__all__ = ["Redlock"]
