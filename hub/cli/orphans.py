"""No orphans: children die with the process that started them, and the temporary folders of
a hub that was killed are removed by the next one.

A SIGKILLed supervisor runs no cleanup. Its workers and its redis-server get SIGTERM from the
kernel the moment it dies (PR_SET_PDEATHSIG); the folders it made carry an owner file (its pid
and start time), so a later hub can tell that their owner is gone and remove them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

__all__ = ["OWNER_FILE", "PREFIXES", "die_with_parent", "make_owned_dir", "remove_stale_dirs"]

logger = logging.getLogger(__name__)

#: The temporary folders hub makes: the embedded Redis's and the workers' metric files.
PREFIXES = ("hub-redis-", "hub-metrics-")
OWNER_FILE = ".hub-owner"
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux; elsewhere
    a no-op, and the workers' own parent watch still applies).

    The kernel only signals a death that comes after this call. A parent that died while
    this process was still starting (a worker imports for a second before it gets here) is
    caught by comparing ``parent``, the pid it was started by, with the current one: then
    this process exits at once.
    """
    name = ctypes.util.find_library("c")
    if name is not None:
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def make_owned_dir(prefix: str) -> Path:
    """A new temporary folder that names this process as its owner."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    pid = os.getpid()
    (path / OWNER_FILE).write_text(f"{pid} {_start_time(pid) or ''}\n")
    return path


def _owner_is_gone(path: Path) -> bool:
    try:
        pid_text, _, started = (path / OWNER_FILE).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # not ours to judge: no owner file
    current = _start_time(pid)
    return current is None or (bool(started) and current != started)


def remove_stale_dirs(root: str | None = None) -> list[Path]:
    """Remove the hub folders under the temporary directory whose owner is dead."""
    removed = []
    base = Path(root or tempfile.gettempdir())
    for prefix in PREFIXES:
        for path in base.glob(prefix + "*"):
            if path.is_dir() and _owner_is_gone(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        logger.info("removed %d folders left by hubs that were killed", len(removed))
    return removed
