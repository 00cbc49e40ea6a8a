"""The spawner: every server is forked by one long-lived thread with a death signal set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import pytest

from redkit.embedded import spawn as spawn_module
from redkit.embedded.spawn import spawn

_PRINT_PDEATHSIG = (
    "import ctypes, signal\n"
    "value = ctypes.c_int()\n"
    "ctypes.CDLL(None).prctl(2, ctypes.byref(value))  # PR_GET_PDEATHSIG\n"
    "print(value.value)\n"
)


def _run(tmp_path: Path, code: str) -> subprocess.Popen[bytes]:
    with open(tmp_path / "out", "wb") as output:
        return spawn([sys.executable, "-c", code], tmp_path, output)


def test_a_server_gets_sigkill_as_its_death_signal(tmp_path: Path) -> None:
    proc = _run(tmp_path, _PRINT_PDEATHSIG)
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "out").read_text().strip() == str(int(signal.SIGKILL))


def test_a_child_whose_owner_is_gone_exits_before_exec(tmp_path: Path) -> None:
    not_the_parent = os.getpid() + 1  # the hook compares getppid() with the owner it was given
    hook = spawn_module._die_with_owner_hook(not_the_parent)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=hook)
    assert proc.wait(timeout=30) == 1


def test_every_spawn_happens_on_one_long_lived_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = spawn_module._popen

    def recording(*args: object) -> subprocess.Popen[bytes]:
        threads.append(threading.current_thread())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(spawn_module, "_popen", recording)
    procs: list[subprocess.Popen[bytes]] = []
    workers = [threading.Thread(target=lambda: procs.append(_run(tmp_path, "pass"))) for _ in "abc"]
    for worker in workers:
        worker.start()
        worker.join()
    procs.append(_run(tmp_path, "pass"))
    for proc in procs:
        assert proc.wait(timeout=30) == 0
    assert len(threads) == 4 and len(set(threads)) == 1
    (spawner,) = set(threads)
    assert spawner.daemon and spawner.is_alive()
    assert spawner not in workers and spawner is not threading.main_thread()


def test_an_interrupted_spawn_kills_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the spawner forks: the process it then starts is not leaked."""
    entered, release = threading.Event(), threading.Event()
    started: list[subprocess.Popen[bytes]] = []
    real = spawn_module._popen

    def slow(*args: object) -> subprocess.Popen[bytes]:
        entered.set()
        release.wait(30)
        proc = real(*args)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if not entered.is_set():  # the spawner has not taken the job yet: try again soon
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            return
        release.set()
        raise Interrupted

    monkeypatch.setattr(spawn_module, "_popen", slow)
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    output = open(tmp_path / "out", "wb")  # noqa: SIM115  open until the spawner is done
    try:
        with pytest.raises(Interrupted):
            spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, output)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    deadline = time.monotonic() + 30
    while not started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert started[0].wait(timeout=30) == -signal.SIGKILL
    output.close()
