"""No orphans: a SIGKILLed supervisor takes its workers and its redis-server with it, and the
next hub removes the folders it left."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from support import HubProcess, wait_until

from hub.cli.orphans import OWNER_FILE, make_owned_dir, remove_stale_dirs


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def owned_dirs(pid: int) -> list[Path]:
    """The hub folders whose owner file names ``pid``."""
    out = []
    for path in Path(tempfile.gettempdir()).glob("hub-*"):
        owner = path / OWNER_FILE
        if owner.exists() and owner.read_text().split()[0] == str(pid):
            out.append(path)
    return out


def test_a_killed_supervisor_leaves_no_process_and_no_folder(
    start_hub: Callable[..., HubProcess],
) -> None:
    first = start_hub("--workers", "2", wait=False).wait_serving(30)
    supervisor = first.proc.pid
    wait_until(lambda: len(children(supervisor)) >= 3, 15, "two workers and a redis-server")
    kids = children(supervisor)
    folders = owned_dirs(supervisor)
    assert len(folders) == 2, folders  # the embedded Redis's and the metrics'
    os.kill(supervisor, signal.SIGKILL)
    first.proc.wait(10)
    wait_until(lambda: not any(alive(k) for k in kids), 30, f"its children {kids} to die")
    assert all(f.exists() for f in folders)  # nothing ran to remove them...
    second = start_hub("--workers", "2", wait=False).wait_serving(30)
    wait_until(lambda: not any(f.exists() for f in folders), 10, "the next hub to remove them")
    assert second.proc.poll() is None


def test_only_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    mine = make_owned_dir("hub-redis-")
    try:
        dead = tmp_path / "hub-redis-dead"
        dead.mkdir()
        (dead / OWNER_FILE).write_text("999999999 1\n")
        reused = tmp_path / "hub-metrics-reused"
        reused.mkdir()
        (reused / OWNER_FILE).write_text(f"{os.getpid()} 1\n")  # a pid reused since
        foreign = tmp_path / "hub-redis-foreign"
        foreign.mkdir()  # no owner file: not ours to judge
        removed = remove_stale_dirs(str(tmp_path))
        assert sorted(removed) == sorted([dead, reused])
        assert foreign.exists()
        remove_stale_dirs(str(mine.parent))  # this process owns it, and lives
        assert mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)
