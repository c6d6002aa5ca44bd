"""Scratch space: files a process writes before they are complete, in a folder named for that process.

Staged parquet files and partial downloads live in ``<folder>/<owner>/``, where the owner
names the host, the process id and the process's start time. A process removes its own
files when it is done with them; a process that was killed cannot, so the next process
that makes scratch space under the same folder removes the folders of owners on this
host that are no longer running. Folders of other hosts (a shared data root) are left to
them, and removed once they are a day old.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from functools import cache
from pathlib import Path

FOREIGN_MAX_AGE_S = 24 * 3600
_mine: set[Path] = set()  # the scratch folders this process made


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (tells a process from a later one with the same id); ``"0"``
    where there is no /proc (macOS), and ``""`` if the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            return "0"
        return ""
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


@cache
def owner() -> str:
    """This process, as a folder name: ``<host>-<pid>-<start time>``."""
    pid = os.getpid()
    return f"{socket.gethostname()}-{pid}-{_start_time(pid)}"


def _running(name: str) -> bool | None:
    """Whether the process a scratch folder is named for still runs (``None``: another host's, unknown)."""
    host, pid, start = (name.rsplit("-", 2) + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if start == "0":  # no /proc here: a live process with that id is the best we can know
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return _start_time(int(pid)) == start


def sweep(folder: Path) -> list[Path]:
    """Remove the scratch folders under ``folder`` whose process is gone; return them."""
    removed = []
    for sub in folder.iterdir() if folder.is_dir() else ():
        if sub.name == owner():
            continue
        try:
            old = time.time() - sub.stat().st_mtime > FOREIGN_MAX_AGE_S
        except FileNotFoundError:  # another process swept it
            continue
        if not sub.is_dir():  # a loose file, from a version that kept no folder per process
            if old:
                sub.unlink(missing_ok=True)
                removed.append(sub)
            continue
        running = _running(sub.name)
        if running is False or (running is None and old):
            shutil.rmtree(sub, ignore_errors=True)
            removed.append(sub)
    return removed


def scratch_dir(folder: Path) -> Path:
    """This process's scratch folder under ``folder`` (created), once what killed processes
    left there is swept away."""
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder)
    mine = folder / owner()
    mine.mkdir(exist_ok=True)
    _mine.add(mine)
    return mine


def remove_mine() -> None:
    """Remove every scratch folder this process made: for a process about to end without unwinding
    (``os._exit``), whose files would otherwise wait for the next process to sweep them."""
    for folder in _mine:
        shutil.rmtree(folder, ignore_errors=True)
