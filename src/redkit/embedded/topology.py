"""Building the topologies: a standalone server, an N-primary Cluster, a Sentinel group.

Each builder spawns its processes through a :class:`~redkit.embedded.process.Supervisor`,
configures them through a :class:`~redkit.embedded.probe.Probe` and returns only once
clients can use the whole topology:

- standalone: the server answers on its port as our process (not a squatter on the port);
- Cluster: ``CLUSTER ADDSLOTSRANGE`` splits the 16384 slots evenly, ``CLUSTER MEET`` joins
  every pair of nodes, and every node reports ``cluster_state:ok``, which it does only once
  it knows a live owner for every slot (so it knows every other node);
- Sentinel group: a primary, a replica in sync with it, and three sentinels (quorum 2) that
  each name the primary and see it and the replica up. The sentinels are told about the
  replica and about each other in their configuration (each with a preset ``myid``) instead
  of discovering them, which takes seconds; their links to each other come up within a
  second, well before a failover could start (``down-after-milliseconds`` is 2000).

Start-up is bounded by the servers, not by polling: about 0.05 s for a standalone server and
0.15 s for a Sentinel group; a Cluster primary waits two seconds after it starts before it
reports ok (``CLUSTER_WRITABLE_DELAY``), so a Cluster takes just over two.

With a ``requirepass``, readiness checks authenticate, every data node also gets it as
``masterauth`` (a replica, or a primary demoted after a failover, authenticates to its
primary) and the sentinels get it as ``sentinel auth-pass``. The sentinels themselves take no
password. The Cluster bus carries no password on either server.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import redis

from redkit.embedded.options import Options, conf_text
from redkit.embedded.probe import Probe, call, fields, pairs
from redkit.embedded.process import ServerProcess, Supervisor
from redkit.errors import ConfigurationError

__all__ = ["CLUSTER_SLOTS", "Layout", "build"]

CLUSTER_SLOTS = 16384
_QUORUM = "2"
_SENTINELS = 3
_DOWN_AFTER_MS = "2000"
_FAILOVER_TIMEOUT_MS = "10000"
_CLUSTER_NODE_TIMEOUT_MS = "5000"


@dataclass
class Layout:
    """Where a built topology listens: data node ports and sentinel ports."""

    ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)


def free_ports(host: str, count: int) -> list[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            try:
                sock.bind((host, 0))
            except OSError as exc:
                raise ConfigurationError(f"host={host!r} cannot be bound here: {exc}") from None
            port = int(sock.getsockname()[1])
            if port not in ports:
                ports.append(port)
        return ports


def build(options: Options, supervisor: Supervisor, master_name: str) -> Layout:
    """Start the topology ``options`` describes; return once it is ready for clients."""
    builder = _Builder(options, supervisor, master_name)
    if options.cluster:
        return builder.cluster()
    if options.sentinel:
        return builder.sentinel_group()
    return builder.standalone()


class _Builder:
    def __init__(self, options: Options, supervisor: Supervisor, master_name: str) -> None:
        self.options = options
        self.host = options.host
        self.supervisor = supervisor
        self.master_name = master_name
        self.probe = Probe(options.host, options.password)
        self.deadline = time.monotonic() + options.startup_timeout

    # ------------------------------------------------------------------ processes

    def _data_conf(self, port: int, role: str, extra: Mapping[str, tuple[str, ...]]) -> str:
        directory = self.supervisor.directory / f"{role}-{port}"
        options: dict[str, tuple[str, ...]] = {
            "port": (str(port),),
            "bind": (self.host,),
            "save": ("",),
            "appendonly": ("no",),
            "dir": (str(directory),),
            "logfile": (str(directory / "server.log"),),
            "daemonize": ("no",),
            "protected-mode": ("no",),
            "shutdown-timeout": ("1",),
            "repl-diskless-sync-delay": ("0",),
            # A replica loads the primary's snapshot from the socket; loading it from disk
            # waits for Valkey's replication cron (a second).
            "repl-diskless-load": ("on-empty-db",),
            **extra,
        }
        password = self.options.password
        if password:
            options["masterauth"] = (password,)
        options.update({name: (value,) for name, value in self.options.config.items()})
        return conf_text((name, *args) for name, args in options.items())

    def _data_node(
        self, role: str, port: int, extra: Mapping[str, tuple[str, ...]] | None = None
    ) -> ServerProcess:
        return self.supervisor.spawn(role, port, self._data_conf(port, role, extra or {}))

    def _wait(self, procs: Sequence[ServerProcess], what: str, ready: Callable[[], bool]) -> None:
        topology = self.options.topology

        def failure() -> str:
            last = f" (last error: {self.probe.last_error})" if self.probe.last_error else ""
            return f"{topology} not ready after {self.options.startup_timeout}s: {what}{last}"

        self.supervisor.wait_until(ready, procs, self.deadline, failure)

    def _wait_answering(self, procs: Sequence[ServerProcess]) -> None:
        """Wait until each process answers on its port (checking the pid: not a squatter's)."""
        pending = list(procs)

        def ready() -> bool:
            pending[:] = [
                p
                for p in pending
                if not self.probe.is_process(p.port, p.pid, data_node=p.role != "sentinel")
            ]
            return not pending

        self._wait(procs, "no answer on the port", ready)

    # ------------------------------------------------------------------ standalone

    def standalone(self) -> Layout:
        (port,) = free_ports(self.host, 1)
        layout = Layout(ports=[port])
        self._wait_answering([self._data_node("server", port)])
        return layout

    # ------------------------------------------------------------------ cluster

    def cluster(self) -> Layout:
        count = self.options.cluster
        ports = free_ports(self.host, 2 * count)
        data_ports, bus_ports = ports[:count], ports[count:]
        procs = [
            self._data_node(
                "cluster-node",
                port,
                {
                    "cluster-enabled": ("yes",),
                    "cluster-config-file": ("nodes.conf",),
                    "cluster-node-timeout": (_CLUSTER_NODE_TIMEOUT_MS,),
                    "cluster-port": (str(bus),),
                },
            )
            for port, bus in zip(data_ports, bus_ports, strict=True)
        ]
        self._wait_answering(procs)
        for index, port in enumerate(data_ports):
            first = index * CLUSTER_SLOTS // count
            last = (index + 1) * CLUSTER_SLOTS // count - 1
            self.probe.command(port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            self.probe.command(port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        # Every pair meets: learning a third node through gossip alone can take seconds.
        for index, port in enumerate(data_ports):
            for other, bus in zip(data_ports[index + 1 :], bus_ports[index + 1 :], strict=True):
                self.probe.command(port, "CLUSTER", "MEET", self.host, other, bus)

        def ready() -> bool:
            return all(self.probe.ask(port, _cluster_ok) for port in data_ports)

        self._wait(procs, "cluster_state is not ok on every node", ready)
        return Layout(ports=data_ports)

    # ------------------------------------------------------------------ sentinel group

    def sentinel_group(self) -> Layout:
        ports = free_ports(self.host, 2 + _SENTINELS)
        primary_port, replica_port = ports[:2]
        layout = Layout(ports=ports[:2], sentinel_ports=ports[2:])
        primary = self._data_node("primary", primary_port)
        replica = self._data_node("replica", replica_port)
        self._wait_answering([primary, replica])
        # REPLICAOF at run time connects at once; from the config file, at the next
        # replication cron tick (up to a second later on Valkey).
        self.probe.command(replica_port, "REPLICAOF", self.host, primary_port)
        ids = {port: secrets.token_hex(20) for port in layout.sentinel_ports}
        sentinels = [
            self._sentinel(port, primary_port, replica_port, ids) for port in layout.sentinel_ports
        ]
        everything = [primary, replica, *sentinels]
        self._wait_answering(sentinels)

        def replica_synced() -> bool:
            info = self.probe.ask(replica_port, lambda c: c.info("replication"))
            return info is not None and info.get("master_link_status") == "up"

        self._wait(everything, "the replica did not sync with the primary", replica_synced)

        check = _SentinelCheck(self.master_name, self.host, primary_port)

        def sentinels_agree() -> bool:
            return all(
                self.probe.ask(port, check, data_node=False) for port in layout.sentinel_ports
            )

        self._wait(
            everything,
            "the sentinels did not agree on the primary, its replica and each other",
            sentinels_agree,
        )
        return layout

    def _sentinel(
        self, port: int, primary_port: int, replica_port: int, ids: Mapping[int, str]
    ) -> ServerProcess:
        directory = self.supervisor.directory / f"sentinel-{port}"
        name = self.master_name
        lines: list[tuple[str, ...]] = [
            ("port", str(port)),
            ("bind", self.host),
            ("daemonize", "no"),
            ("protected-mode", "no"),
            ("dir", str(directory)),
            ("logfile", str(directory / "server.log")),
            ("sentinel", "monitor", name, self.host, str(primary_port), _QUORUM),
            ("sentinel", "down-after-milliseconds", name, _DOWN_AFTER_MS),
            ("sentinel", "failover-timeout", name, _FAILOVER_TIMEOUT_MS),
            ("sentinel", "parallel-syncs", name, "1"),
            # Known from the start rather than discovered (hello messages every 2 s).
            ("sentinel", "myid", ids[port]),
            ("sentinel", "known-replica", name, self.host, str(replica_port)),
            *(
                ("sentinel", "known-sentinel", name, self.host, str(other), other_id)
                for other, other_id in ids.items()
                if other != port
            ),
        ]
        if self.options.password:
            lines.append(("sentinel", "auth-pass", name, self.options.password))
        return self.supervisor.spawn("sentinel", port, conf_text(lines), ["--sentinel"])


def _cluster_ok(client: redis.Redis) -> bool:
    """A node says ``cluster_state:ok`` only once it knows a live owner for every slot."""
    return fields(call(client, "CLUSTER", "INFO")).get("cluster_state") == "ok"


_UNHEALTHY = {"s_down", "o_down", "disconnected"}


def _healthy(state: Mapping[str, str]) -> bool:
    return not set(state.get("flags", "").split(",")) & _UNHEALTHY


@dataclass(frozen=True)
class _SentinelCheck:
    """A sentinel is ready: it names the primary, sees it and the replica up, knows the others."""

    name: str
    host: str
    primary_port: int

    def __call__(self, client: redis.Redis) -> bool:
        address = call(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        if address != [self.host, str(self.primary_port)]:
            return False
        if not _healthy(pairs(call(client, "SENTINEL", "MASTER", self.name))):
            return False
        replicas = [pairs(r) for r in call(client, "SENTINEL", "REPLICAS", self.name)]
        if len(replicas) != 1 or not _healthy(replicas[0]):
            return False
        return len(call(client, "SENTINEL", "SENTINELS", self.name)) == _SENTINELS - 1
