"""Starting server processes that die with the process that owns them.

``atexit`` does not run when the owner is killed (SIGKILL, the OOM killer, a crash), so each
server is also told by the kernel to die with its parent: Linux's ``PR_SET_PDEATHSIG``,
set in the child between fork and exec. That signal follows the *thread* that forked the
child, not the process: with it set from a worker thread, the server is killed as soon as that
thread ends, so it was only set from the main thread, and servers started elsewhere outlived
a killed owner. To make "dies with its owner" true however the server is started (main
thread, another thread, a thread that has since exited), every server is forked from one
dedicated spawner thread that lives as long as the process: a daemon thread, started on first
use, that does nothing but fork. The child also checks, after setting the signal, that its
parent is still the owner, closing the window where the owner dies between fork and
``prctl``. (A supervisor process watching the owner's pid would do too, at the cost of one
more process per server and a poll.)

The signal is SIGKILL: a server paused with SIGSTOP (see ``EmbeddedServer.pause``) would
never act on a SIGTERM. Elsewhere than Linux there is no such signal: servers are spawned
directly and stopped by ``atexit`` and by :meth:`~redkit.embedded.EmbeddedServer.stop` only.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

__all__ = ["spawn"]

_PR_SET_PDEATHSIG = 1

_Job = Callable[[], None]


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_PRCTL = _prctl()


def _die_with_owner_hook(owner: int) -> Callable[[], None] | None:
    """The pre-exec hook: SIGKILL when the forking thread ends; exit if the owner is gone."""
    prctl = _PRCTL
    if prctl is None:
        return None

    def hook() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != owner:
            os._exit(1)  # the owner died while forking: the signal came too late to see

    return hook


def _popen(args: Sequence[str], cwd: Path, output: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_owner_hook(os.getpid()),
    )


class _Spawner:
    """One daemon thread, alive as long as the process, that forks every server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] | None = None
        self._thread: threading.Thread | None = None

    def _queue(self) -> queue.SimpleQueue[_Job]:
        # A child forked from this process has no spawner thread: is_alive() is False there.
        with self._lock:
            if self._jobs is None or self._thread is None or not self._thread.is_alive():
                jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=_work, args=(jobs,), name="redkit-embedded-spawner", daemon=True
                )
                thread.start()
                self._jobs, self._thread = jobs, thread
            return self._jobs

    def spawn(self, args: Sequence[str], cwd: Path, output: IO[bytes]) -> subprocess.Popen[bytes]:
        if _PRCTL is None:
            return _popen(args, cwd, output)
        future: Future[subprocess.Popen[bytes]] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(_popen(args, cwd, output))
            except BaseException as exc:
                future.set_exception(exc)

        self._queue().put(job)
        try:
            return future.result()
        except BaseException:
            # Interrupted while the spawner works (Ctrl-C): kill what it starts for us.
            if not future.done() and not future.cancel():
                future.add_done_callback(_kill_result)
            raise


def _work(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        jobs.get()()


def _kill_result(future: Future[subprocess.Popen[bytes]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    popen = future.result()
    popen.kill()
    popen.wait()


_SPAWNER = _Spawner()


def spawn(args: Sequence[str], cwd: Path, output: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``args`` in ``cwd`` with stdout and stderr to ``output``; it dies with us.

    Called from any thread; on Linux the fork happens on the spawner thread.
    """
    return _SPAWNER.spawn(args, cwd, output)
