"""Lanes: the sync face's short path for the hot commands (GET, MGET, EVALSHA).

redis-py's sync ``execute_command`` spends about as much Python per command as a loopback
round trip takes: a pool checkout that polls the socket for stray data, observability
counters on checkout, return and completion, and a retry wrapper around the send. On a cache
hit or a rate-limit decision that overhead is most of the cost. A :class:`Lanes` keeps a few
of the client's pool connections checked out (its lanes) and sends those commands on them
directly, with the connection's own retry policy around the send and the read, as
``execute_command`` does.

Rules that keep a lane as safe as a pooled connection:

- a lane goes back to the idle list only after a complete reply (an error reply such as
  NOSCRIPT is a complete reply); after anything else (a timeout, a dropped connection, an
  interrupt mid-read) it is disconnected and returned to the pool, so no lane ever carries a
  half-read reply (redis-py disconnects a connection whose read failed as well; the lane does
  not rely on it);
- few lanes stay checked out between commands (:data:`MAX_IDLE`, and an eighth of a
  bounded pool); the rest go back to the pool, so the client's other users keep theirs;
- a lane its pool no longer owns goes back to the pool before use: behind Sentinel, once the
  pool has learnt of a new master, a lane still connected to the old one is dropped, as
  redis-py drops its idle connections then; so does a lane a maintenance notification
  (RESP3 ``MOVING``) marked for reconnection, before use and after its command, as
  ``execute_command`` and the pool's ``release`` do;
- after ``os.fork()`` the parent's lanes are dropped (never used, never closed), as redis-py
  resets its pool;
- a lane idle for over :data:`PROBE_AFTER` seconds is probed before use, as the pool probes
  each connection it hands out, so a connection the server closed meanwhile (its
  ``timeout``) is replaced rather than failing the command;
- ``client.close()`` disconnects the lanes with the rest of the pool; a later command
  reconnects, as redis-py's own do.

Only clients whose replies need no client-side processing get lanes: a standalone or
Sentinel ``redis.Redis`` without a single pinned connection, client-side caching or
maintenance notifications (:func:`redkit._redis_compat.lanes_allowed`; :func:`lanes_for`
returns None otherwise, and callers use the client's methods). The commands sent here have
no response callback in redis-py, so the replies are what the client's methods return.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from redkit._redis_compat import lanes_allowed, marked_for_reconnect, pool_size

#: Lanes kept checked out between commands, per client: at most this many, and at most an
#: eighth of a bounded pool (none for a pool of fewer than 8 connections).
MAX_IDLE = 8
#: Seconds idle after which a lane is probed before use, as the pool probes its connections.
PROBE_AFTER = 1.0

now = time.monotonic
_LANES: weakref.WeakKeyDictionary[Any, Lanes | None] = weakref.WeakKeyDictionary()


def lanes_for(client: Any) -> Lanes | None:
    """The lanes shared by every redkit pattern on ``client``; None when it cannot have them."""
    try:
        return _LANES[client]
    except KeyError:
        lanes = _LANES[client] = Lanes(client) if lanes_allowed(client) else None
        return lanes


class Lanes:
    """Connections of one client's pool kept for the hot commands (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._owns = self._pool.owns_connection
        self._max_idle = min(MAX_IDLE, pool_size(client) // 8)
        self._probe_after = PROBE_AFTER
        self._pid = os.getpid()
        self._idle: list[tuple[Any, float]] = []  # (connection, when it was put back)
        self._release = self._pool.release

    def execute(self, *args: Any) -> Any:
        """Send one command on a lane and return its reply as redis-py parses it."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._idle = []  # the parent's sockets: never used here, never closed here
        conn: Any = None
        stamp = 0.0
        keep = False  # True once the lane holds no reply still to read and may stay out
        try:
            try:
                # No call between reading the lane and removing it from the list: a signal
                # handler (whose exception would lose the lane) runs only after a call.
                conn, since = self._idle[-1]
                del self._idle[-1]
            except IndexError:
                conn = self._pool.get_connection()
            else:
                if not self._owns(conn) or marked_for_reconnect(conn):
                    # A new Sentinel master (the pool drops the old one's), or a maintenance
                    # notification (MOVING) marked it: the pool disconnects it on release.
                    self._pool.release(conn)
                    conn = None
                    conn = self._pool.get_connection()
                elif time.monotonic() - since > self._probe_after:
                    _probe(conn)
            try:
                reply = conn.retry.call_with_retry(
                    lambda: _send(conn, args), lambda _error: conn.disconnect()
                )
            except ResponseError:
                keep = self._keep(conn)  # an error reply is a complete reply: the lane is clean
                stamp = now()
                raise
            keep = self._keep(conn)
            stamp = now()
            return reply
        except BaseException:
            if conn is not None and not keep:
                conn.disconnect()  # it may hold a reply still to come
            raise
        finally:
            # One statement whose only call is the hand-back, so that no signal handler's
            # exception can land between the decision and the hand-back.
            conn is None or (self._idle.append((conn, stamp)) if keep else self._release(conn))  # type: ignore[func-returns-value]

    def _keep(self, conn: Any) -> bool:
        """Whether ``conn``, clean, stays out as an idle lane (else it goes back to the pool)."""
        return (
            len(self._idle) < self._max_idle
            and conn.pid == self._pid
            and not marked_for_reconnect(conn)
        )


def _probe(conn: Any) -> None:
    """Disconnect a lane that has data or an end of file waiting (the server closed an idle
    connection: its ``timeout``, a CLIENT KILL), so the send reconnects first instead of
    failing, whatever the retry policy; the pool does the same at each checkout."""
    try:
        stale = conn.can_read()
    except (OSError, RedisConnectionError):
        stale = True
    if stale:
        conn.disconnect()


def _send(conn: Any, args: tuple[Any, ...]) -> Any:
    conn.send_command(*args)
    return conn.read_response()
