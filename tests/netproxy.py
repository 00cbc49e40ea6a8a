"""A loopback TCP proxy that can partition the network between a client and a server.

``with Proxy(host, port) as proxy:`` listens on a free loopback port (``proxy.url_for(url)``
rewrites a ``redis://`` URL to go through it). ``proxy.partition()`` stops forwarding in both
directions without closing anything: commands get no answer, like packets lost on a broken
network (not a refused connection). ``proxy.heal()`` resumes forwarding.
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
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), daemon=True, name="proxy pump"
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                self._open.wait()
                data = source.recv(_CHUNK)
                self._open.wait()  # data read just before a partition is held, not sent
                if not data or self._closed.is_set():
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
