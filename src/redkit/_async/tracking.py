"""Server-assisted invalidation: Redis tells this process which keys under a prefix changed.

One connection per primary (one on a standalone server or a Sentinel master) speaks RESP2,
turns on ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <prefix>`` and subscribes to
``__redis__:invalidate``. From then on the server sends it the name of every key under the
prefix that changes (a write from any client, redkit or not, an expiry, an eviction), and
``None`` for "everything may have changed" (FLUSHALL/FLUSHDB). Tracking is a property of that
connection: if it drops, nothing more arrives, so the connection is the channel.

A session connects every primary, then reports :meth:`Handler.up` (reads that start now are
covered), applies invalidations until a connection fails, a health check gets no answer, the
set of primaries changes (checked every ``interval``: CLUSTER SLOTS on a Cluster, the
sentinels' master address behind a Sentinel master) or :meth:`Invalidations.stop` is called;
then it reports :meth:`Handler.down` (before anything else: the owner must empty its cache)
and a new session starts after a backoff. A node keeps sending invalidations for the writes
it replicates, so a Cluster failover that demotes the old primary loses nothing; a failover
that kills it ends the session; behind Sentinel, the old master may stay up (and hear of no
write) until Sentinel reconfigures it, so the session ends as soon as the sentinels name
another master: L1 may serve what the old master said for up to ``interval`` after a
Sentinel failover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from redkit._acompat import ASYNC, Background, Event, race
from redkit._redis_compat import (
    cluster_primaries,
    interrupt_connection,
    is_connected,
    sentinel_master_pool,
    tracking_connection,
)
from redkit.errors import BackendUnavailable

if not ASYNC:
    import threading

logger = logging.getLogger("redkit.tiered")

CHANNEL = b"__redis__:invalidate"
CLIENT_NAME = "redkit-invalidations"
_MESSAGE = b"message"
_FIRST_RETRY = 0.05
_MAX_RETRY = 2.0

Address = tuple[str, int] | None


class Handler(Protocol):
    """What the owner of an :class:`Invalidations` does with what it hears."""

    def keys(self, keys: list[bytes]) -> None:
        """These keys changed."""

    def flush(self) -> None:
        """Every key may have changed (FLUSHALL, FLUSHDB)."""

    def up(self) -> None:
        """Every primary's channel is subscribed: reads that start now are covered."""

    def down(self, error: BaseException | None) -> None:
        """The channel is lost (or stopped): nothing may be trusted until :meth:`up`."""


class Invalidations:
    """Invalidations of keys under ``prefix`` from every primary of ``client``.

    ``cluster``: whether ``client`` is a Cluster client; ``interval``: seconds between health
    checks (a PING on each connection, answered before the next check) and, on a Cluster,
    topology checks. Started by :meth:`start`, on ``background``; stopped by :meth:`stop`.
    """

    def __init__(
        self,
        client: Any,
        *,
        cluster: bool,
        prefix: str,
        handler: Handler,
        background: Background,
        interval: float,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.prefix = prefix
        self.handler = handler
        self.background = background
        self.interval = interval
        self.started = False
        self.sessions = 0
        self._stopping = Event()
        self._ended = Event()
        self._conns: list[Any] = []
        self._subscribed = False  # every connection of the session is past its handshake
        self._sentinel = sentinel_master_pool(client)
        if not ASYNC:
            self._lock = threading.Lock()

    def start(self) -> None:
        """Start listening in the background (once, and never after :meth:`stop`)."""
        if ASYNC:
            if self.started or self._stopping.is_set():
                return
            self.started = True
        else:
            if self.started:  # every read of Redis asks: skip the lock once started
                return
            with self._lock:
                if self.started or self._stopping.is_set():
                    return
                self.started = True
        self.background.spawn(self._supervise, "invalidation listener")

    def stop(self) -> None:
        """Ask the listener to stop; the owner then closes ``background``."""
        self._stopping.set()
        self._interrupt()

    def restart(self) -> None:
        """Forget a listener that does not exist in this process (after ``os.fork()``)."""
        self.started = False
        self._stopping = Event()
        self._ended = Event()
        self._conns = []
        self._subscribed = False
        if not ASYNC:
            self._lock = threading.Lock()

    # -- the supervisor ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            await self._sessions()
        finally:
            # Ended without stop() (its event loop was shut down, say): the next read may
            # start a listener again, on its own loop.
            if not self._stopping.is_set():
                self.started = False

    async def _sessions(self) -> None:
        delay = _FIRST_RETRY
        while not self._stopping.is_set():
            began = time.monotonic()
            error: BaseException | None = None
            try:
                await self._session()
            except Exception as exc:
                error = exc
            finally:
                self.handler.down(None if self._stopping.is_set() else error)
            if self._stopping.is_set():
                return
            if time.monotonic() - began > 10 * self.interval:
                delay = _FIRST_RETRY  # it had been up for a while: reconnect at once
            await self._stopping.wait(delay)
            delay = min(delay * 2, _MAX_RETRY)

    async def _session(self) -> None:
        """Connect every primary, report up, apply invalidations until something ends it."""
        self._ended = Event()
        conns: list[Any] = []
        self._conns = conns
        try:
            addresses = await self._addresses()
            for address in addresses:
                conn = tracking_connection(self.client, address)
                conns.append(conn)
                await self._subscribe(conn)
            if ASYNC:
                self._subscribed = True
            else:
                with self._lock:
                    self._subscribed = True
            if self._stopping.is_set():
                return
            heard = [time.monotonic()] * len(conns)
            self.sessions += 1
            self.handler.up()
            readers = [self._reader(conns, index, heard) for index in range(len(conns))]
            await race([*readers, lambda: self._watch(conns, heard, addresses)], self._interrupt)
        finally:
            if ASYNC:
                self._conns, self._subscribed = [], False
            else:
                with self._lock:  # no interrupt may write to a connection being closed
                    self._conns, self._subscribed = [], False
            for conn in conns:
                await _disconnect(conn)

    def _interrupt(self) -> None:
        """End the session now (the race's interrupt; also :meth:`stop`)."""
        self._ended.set()
        if not ASYNC:
            # Wake the reading threads: the answer to a PING arrives at once, and a reader
            # seeing the session ended returns without an error (nothing to log). A
            # connection still being set up (another thread is in its handshake) or one that
            # cannot take the PING is shut down instead: its reader fails at once.
            with self._lock:
                for conn in self._conns:
                    if self._subscribed and is_connected(conn):
                        try:
                            conn.send_command("PING", check_health=False)
                            continue
                        except Exception:
                            pass
                    interrupt_connection(conn)

    async def _addresses(self) -> list[Address]:
        """The primaries to listen to: ``[None]`` (the client's server) off a Cluster."""
        if not self.cluster:
            return [None]
        if ASYNC:
            await self.client.initialize()
        return list(cluster_primaries(await self.client.execute_command("CLUSTER SLOTS")))

    async def _subscribe(self, conn: Any) -> None:
        """Tracking on ``conn`` (redirected to itself), subscribed to the channel."""
        await conn.connect()
        await conn.send_command("CLIENT", "SETNAME", CLIENT_NAME, check_health=False)
        await conn.send_command("CLIENT", "ID", check_health=False)
        await conn.read_response()
        client_id = await conn.read_response()
        await conn.send_command(
            "CLIENT",
            "TRACKING",
            "ON",
            "REDIRECT",
            client_id,
            "BCAST",
            "PREFIX",
            self.prefix,
            check_health=False,
        )
        await conn.send_command("SUBSCRIBE", CHANNEL, check_health=False)
        await conn.read_response()
        confirmed = await conn.read_response()
        if not (isinstance(confirmed, list) and confirmed[:2] == [b"subscribe", CHANNEL]):
            raise BackendUnavailable(f"unexpected reply to SUBSCRIBE {CHANNEL!r}: {confirmed!r}")

    def _reader(self, conns: list[Any], index: int, heard: list[float]) -> Callable[[], Any]:
        """Applies what ``conns[index]`` receives; records when it last heard anything."""
        conn = conns[index]

        async def read() -> None:
            handler = self.handler
            while True:
                if not ASYNC:
                    # A thread cannot be cancelled: it looks up every `interval` (and when
                    # _interrupt's PING answer arrives) to see whether the session ended.
                    if self._ended.is_set():
                        return
                    if not conn.can_read(timeout=self.interval):
                        continue
                message = await conn.read_response()
                heard[index] = time.monotonic()
                if (
                    isinstance(message, list)
                    and len(message) == 3
                    and message[0] == _MESSAGE
                    and message[1] == CHANNEL
                ):
                    keys = message[2]
                    if keys is None:
                        handler.flush()
                    else:
                        handler.keys(keys)

        return read

    async def _watch(self, conns: list[Any], heard: list[float], addresses: list[Address]) -> None:
        """Health checks (and topology checks on a Cluster) every ``interval``; returns or
        raises to end the session."""
        while True:
            asked = time.monotonic()
            for conn in conns:
                if not is_connected(conn):  # its reader failed: never connect it again here
                    raise BackendUnavailable(
                        f"the invalidation connection to {_where(conn)} closed"
                    )
                await conn.send_command("PING", check_health=False)
            if await self._ended.wait(self.interval):
                return
            for conn, last in zip(conns, heard, strict=True):
                if last < asked:
                    raise BackendUnavailable(
                        f"the invalidation connection to {_where(conn)} did not answer a "
                        f"PING within {self.interval}s"
                    )
            if self.cluster and await self._addresses() != addresses:
                logger.info("the Cluster's primaries changed: reconnecting invalidations")
                return
            if self._sentinel is not None:
                host, port = await self._sentinel.get_master_address()
                if (str(host), int(port)) != (str(conns[0].host), int(conns[0].port)):
                    logger.info("Sentinel names a new master: reconnecting invalidations")
                    return


async def _disconnect(conn: Any) -> None:
    try:
        await conn.disconnect()
    except Exception:  # the connection is being dropped anyway
        logger.debug("closing an invalidation connection failed", exc_info=True)


def _where(conn: Any) -> str:
    return f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"
