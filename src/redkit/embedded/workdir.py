"""The temporary folder of a running topology, and sweeping the folders of dead owners.

Each folder is ``<tmp>/redkit-XXXXXXXX`` (made by :func:`tempfile.mkdtemp`, mode 0700) and
holds an owner record, ``redkit-owner.json``: the owner's pid, its start time and the boot
it started in. A killed owner cannot remove its folder (its servers die with it, see
:mod:`redkit.embedded.spawn`), so every :func:`make_workdir` first sweeps the folders whose
owner is gone: no such process, a zombie, or a different process under a reused pid (other
start time or boot). A folder without a readable record, not a directory, or belonging to
another user is never touched; neither is the folder of a live owner.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["OWNER_FILE", "PREFIX", "make_workdir", "owner_alive", "owner_record", "sweep"]

PREFIX = "redkit-"
OWNER_FILE = "redkit-owner.json"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

logger = logging.getLogger("redkit.embedded")


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux), or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def owner_record() -> dict[str, object]:
    """This process as an owner record: pid, start time and boot id."""
    pid = os.getpid()
    return {"pid": pid, "start_time": _start_time(pid), "boot_id": _boot_id()}


def owner_alive(record: dict[str, object]) -> bool:
    """Whether the process described by an owner record still runs."""
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True  # not a record we wrote: leave the folder alone
    boot = record.get("boot_id")
    if isinstance(boot, str) and boot != _boot_id():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if fields is None:  # no /proc: the pid exists, trust it
        return True
    if fields[0] == "Z":  # killed, not yet reaped by its parent
        return False
    started = record.get("start_time")
    return not (isinstance(started, int) and len(fields) > 19 and int(fields[19]) != started)


def _read_record(folder: Path) -> dict[str, object] | None:
    try:
        with open(folder / OWNER_FILE, "rb") as file:
            data = json.loads(file.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the folders of dead owners under ``parent`` (the temp dir); return them."""
    parent = Path(parent or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        folder = Path(entry.path)
        record = _read_record(folder)
        if record is None or owner_alive(record):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        logger.debug("removed %s, left by process %s", folder, record.get("pid"))
        removed.append(folder)
    return removed


def make_workdir() -> Path:
    """Sweep leftovers, then make a new folder recording this process as its owner."""
    sweep()
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    staging = folder / (OWNER_FILE + ".tmp")
    staging.write_text(json.dumps(owner_record()))
    staging.replace(folder / OWNER_FILE)
    return folder
