"""A loopback TCP proxy that can partition the network between a client and a server.

``with Proxy(host, port) as proxy:`` listens on a free loopback port (``proxy.url_for(url)``
rewrites a ``redis://`` URL to go through it). ``proxy.partition()`` stops forwarding in both
directions without closing anything: commands get no answer, like packets lost on a broken
network (not a refused connection). ``proxy.heal()`` resumes forwarding.

``proxy.delay_reply(b"EVALSHA", hold)`` holds back the server's reply to the next request
that contains ``b"EVALSHA"`` until the event ``hold`` is set (or the proxy closes): a client
whose ``socket_timeout`` passes meanwhile gives up on a command the server has already run,
and redis-py's retry re-sends it on a new connection. ``proxy.delayed`` is set once such a
reply has been held back, so a test can wait for it instead of sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class Proxy:
    """Forwards every connection to ``(host, port)``; see the module docstring."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._delay: tuple[bytes, threading.Event] | None = None
        self.delayed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="proxy accept").start()

    def url_for(self, url: str) -> str:
        """``url`` (a ``redis://`` URL of the upstream server) pointed at this proxy."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def partition(self) -> None:
        """Stop forwarding: nothing is lost or closed, nothing arrives."""
        self._open.clear()

    def heal(self) -> None:
        """Resume forwarding."""
        self._open.set()

    def delay_reply(self, match: bytes, hold: threading.Event) -> None:
        """Hold back the reply to the next request containing ``match`` until ``hold`` is set.

        Only one request is affected; later ones (the client's re-send included) flow.
        """
        with self._lock:
            self._delay = (match, hold)
            self.delayed.clear()

    def close(self) -> None:
        """Stop listening and close every proxied connection."""
        self._closed.set()
        self._open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            # The request pump tells the reply pump of its connection which reply to hold.
            held: list[threading.Event] = []
            for source, target, requests in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump,
                    args=(source, target, requests, held),
                    daemon=True,
                    name="proxy pump",
                ).start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        requests: bool,
        held: list[threading.Event],
    ) -> None:
        try:
            while True:
                self._open.wait()
                data = source.recv(_CHUNK)
                self._open.wait()  # data read just before a partition is held, not sent
                if not data or self._closed.is_set():
                    break
                if requests:
                    self._arm(data, held)
                elif held:
                    hold = held.pop()
                    self.delayed.set()
                    while not hold.wait(0.05) and not self._closed.is_set():
                        pass
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _arm(self, request: bytes, held: list[threading.Event]) -> None:
        with self._lock:
            if self._delay is not None and self._delay[0] in request:
                held.append(self._delay[1])
                self._delay = None
