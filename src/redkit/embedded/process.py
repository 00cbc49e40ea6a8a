"""Supervising the server processes of one topology: spawn, wait for, signal and stop them."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from redkit.embedded.options import quote
from redkit.embedded.spawn import spawn
from redkit.errors import ConfigurationError, EmbeddedServerError

__all__ = ["PortTaken", "ServerProcess", "Supervisor"]

_POLL_INTERVAL = 0.02
_STOP_TIMEOUT = 5.0
_LOG_TAIL_LINES = 25
_MASK = "***"


class PortTaken(Exception):
    """A process could not bind its port: another process took it after we chose it."""


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(eq=False)
class ServerProcess:
    """One server process: its role in the topology, port, folder and ``Popen``."""

    role: str
    port: int
    directory: Path
    popen: subprocess.Popen[bytes]
    paused: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` unless the process has already exited."""
        if self.alive:
            with suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def log_tail(self) -> str:
        """The end of its log file and of its stdout/stderr (unmasked)."""
        parts = (_tail(self.directory / "server.log"), _tail(self.directory / "output.log"))
        return "\n".join(t for t in parts if t) or "(empty log)"


class Supervisor:
    """The processes of one topology, in one folder; messages mask ``secrets``."""

    def __init__(self, binary: str, directory: Path, secrets: Iterable[str] = ()) -> None:
        self.binary = binary
        self.directory = directory
        self.processes: list[ServerProcess] = []
        # A secret may appear as given, or quoted as it was written to a config file.
        masked = {s for secret in secrets if secret for s in (quote(secret), secret)}
        self._secrets = sorted(masked, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    def describe(self, proc: ServerProcess) -> str:
        return self.mask(f"{proc.role} on port {proc.port}:\n{proc.log_tail()}")

    def spawn(
        self, role: str, port: int, conf: str, extra_args: Sequence[str] = ()
    ) -> ServerProcess:
        """Write ``conf`` to ``<role>-<port>/server.conf`` and start the binary on it."""
        directory = self.directory / f"{role}-{port}"
        directory.mkdir()
        conf_path = directory / "server.conf"
        conf_path.write_text(conf)
        with open(directory / "output.log", "wb") as output:
            popen = spawn([self.binary, str(conf_path), *extra_args], directory, output)
        proc = ServerProcess(role, port, directory, popen)
        self.processes.append(proc)
        return proc

    def find(self, port: int) -> ServerProcess:
        """The process listening on ``port``; ConfigurationError if none of ours does."""
        for proc in self.processes:
            if proc.port == port:
                return proc
        ports = ", ".join(str(p.port) for p in self.processes)
        raise ConfigurationError(f"port {port!r} is not a process of this server (ports: {ports})")

    def check_alive(self, procs: Sequence[ServerProcess]) -> None:
        """Raise if one of ``procs`` exited: PortTaken if it lost its port, else the log."""
        for proc in procs:
            if proc.alive:
                continue
            details = self.describe(proc)
            if "already in use" in details or "Could not create server TCP" in details:
                raise PortTaken(details)
            raise EmbeddedServerError(
                f"{proc.role} exited with status {proc.popen.returncode}\n{details}"
            )

    def wait_until(
        self,
        ready: Callable[[], bool],
        procs: Sequence[ServerProcess],
        deadline: float,
        failure: Callable[[], str],
    ) -> None:
        """Poll ``ready`` until true; raise if one of ``procs`` dies or ``deadline`` passes.

        ``failure`` says what was not ready (called once, for the timeout message).
        """
        while True:
            self.check_alive(procs)
            if ready():
                return
            if time.monotonic() > deadline:
                logs = "\n\n".join(self.describe(p) for p in procs)
                raise EmbeddedServerError(self.mask(f"{failure()}\n{logs}"))
            time.sleep(_POLL_INTERVAL)

    def kill(self, proc: ServerProcess) -> None:
        """SIGKILL ``proc`` and reap it."""
        proc.signal(signal.SIGKILL)
        proc.popen.wait()
        proc.paused = False

    def pause(self, proc: ServerProcess) -> None:
        """SIGSTOP ``proc``: it keeps its port but answers nothing until resumed."""
        if not proc.alive:
            raise EmbeddedServerError(f"{proc.role} on port {proc.port} is not running")
        proc.signal(signal.SIGSTOP)
        proc.paused = True

    def resume(self, proc: ServerProcess) -> None:
        """SIGCONT ``proc``."""
        proc.signal(signal.SIGCONT)
        proc.paused = False

    def stop_all(self) -> None:
        """SIGTERM every process (sentinels first), resume the paused, SIGKILL the slow."""
        procs = sorted(self.processes, key=lambda p: p.role != "sentinel")
        for proc in procs:
            proc.signal(signal.SIGTERM)
            proc.signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once resumed
        deadline = time.monotonic() + _STOP_TIMEOUT
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                self.kill(proc)
        self.processes = []
