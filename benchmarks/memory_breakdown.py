"""Where an idle connection's bytes go: one worker in this process, ``hub bench conns`` against
it, then tracemalloc's growth per connection (by line) and one connection's own object graph.

    python benchmarks/memory_breakdown.py --protocol raw -n 2000
    python benchmarks/memory_breakdown.py --protocol hub.v1 -n 2000

The object graph is walked (``gc.get_referents``) from two connections; what both reach is
shared and left out, so what remains is what one connection alone holds. Sizes are
``sys.getsizeof`` (an instance's ``__dict__`` added), grouped by the first attribute of the
connection through which the walk reached them. tracemalloc sees every Python allocation,
uvloop's and websockets' included; the kernel's socket (its buffers, the TCP state) is in no
process's RSS, and /proc/slabinfo's TCP line is printed for it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import os
import socket
import sys
import tracemalloc
import types
from pathlib import Path
from typing import Any

_SKIP_TYPES = (type, types.ModuleType, types.CodeType, types.BuiltinFunctionType)
# Objects whose ``__dict__`` is made on first access: reading it would add what was not there.
_LAZY_DICT = (*_SKIP_TYPES, functools.partial, types.FunctionType, types.MethodType)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def size_of(obj: object) -> int:
    return sys.getsizeof(obj)


def walk(root: object, stop: set[int], limit: int = 100_000) -> dict[int, tuple[object, str]]:
    """Every object reachable from ``root`` without passing ``stop``: id -> (object, the
    root's attribute it was first reached through)."""
    seen: dict[int, tuple[object, str]] = {id(root): (root, "(the connection object)")}
    queue: collections.deque[tuple[object, str]] = collections.deque()
    first: dict[str, object] = dict(vars(root))
    seen[id(vars(root))] = (vars(root), "(the connection object)")
    task = handler_task(root)
    if task is not None:
        first["(its handler task)"] = task
    for name, value in first.items():
        if id(value) not in seen and id(value) not in stop and not isinstance(value, _SKIP_TYPES):
            seen[id(value)] = (value, name)
            queue.append((value, name))
    while queue and len(seen) < limit:
        obj, group = queue.popleft()
        refs = gc.get_referents(obj)
        d = None if isinstance(obj, _LAZY_DICT) else getattr(obj, "__dict__", None)
        if type(d) is dict:
            refs.append(d)  # an instance's dict, which 3.11 keeps unmaterialized if it can
        for ref in refs:
            if id(ref) in seen or id(ref) in stop or isinstance(ref, _SKIP_TYPES):
                continue
            seen[id(ref)] = (ref, group)
            queue.append((ref, group))
    return seen


def handler_task(conn: object) -> asyncio.Task[Any] | None:
    """The task websockets runs the handshake and then hub's handler in, for ``conn``."""
    for task in asyncio.all_tasks():
        # The coroutine's referents, not its cr_frame: a frame object would be made for it.
        if conn in gc.get_referents(task.get_coro()):
            return task
    return None


def stop_set(app: Any, conns: list[Any]) -> set[int]:
    """Objects every connection reaches: modules' globals, the app, the node, the loop."""
    stop = {id(c) for c in conns}
    for m in list(sys.modules.values()):
        stop.add(id(m))
        stop.add(id(getattr(m, "__dict__", None)))
    for obj in (app, app.node, app.handler, app.server, app.broker, asyncio.get_running_loop()):
        stop.add(id(obj))
        d = getattr(obj, "__dict__", None)
        if d is not None:
            stop.add(id(d))
    server = app.server._server
    for obj in (server, server.all_connections, server.handler_tasks, server.__dict__):
        stop.add(id(obj))
    return stop


def object_graph(app: Any) -> tuple[dict[str, int], dict[str, int], int]:
    conns = list(app.server._server.all_connections)
    a, b = conns[len(conns) // 2], conns[len(conns) // 2 + 1]
    stop = stop_set(app, conns)
    reach_a = walk(a, stop - {id(a)})
    reach_b = walk(b, stop - {id(b)})
    own = {k: v for k, v in reach_a.items() if k not in reach_b}
    by_group: collections.Counter[str] = collections.Counter()
    by_type: collections.Counter[str] = collections.Counter()
    for obj, group in own.values():
        n = size_of(obj)
        by_group[group] += n
        by_type[f"{group}: {type(obj).__qualname__}"] += n
    return dict(by_group), dict(by_type), sum(by_group.values())


def kernel_slabs() -> dict[str, int]:
    """The kernel's own objects per TCP socket (root only): in no process's RSS."""
    if not os.access("/proc/slabinfo", os.R_OK):
        return {}
    out = {}
    for line in Path("/proc/slabinfo").read_text().splitlines():
        f = line.split()
        if f[:1] in (["TCP"], ["sock_inode_cache"], ["filp"], ["dentry"]):
            out[f[0]] = int(f[3])
    return out


async def run(args: argparse.Namespace) -> None:
    from hub.app import App
    from hub.core.config import Settings

    port = free_port()
    app = App(Settings.from_env({}, port=port, workers=1, log_level="warning"))
    await app.start()
    await asyncio.sleep(0.5)
    gc.collect()
    before, rss0 = tracemalloc.take_snapshot(), rss()
    cmd = [sys.executable, "-m", "hub.bench", "conns", "--url", f"ws://127.0.0.1:{port}"]
    cmd += ["--protocol", args.protocol, "-n", str(args.n), "--hold", str(args.hold), "-q"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
    want_subs = args.n if args.protocol == "hub.v1" else 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.hold
    while loop.time() < deadline:
        if app.handler.num_connections >= args.n and app.node.num_subscriptions >= want_subs:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    gc.collect()
    n = app.handler.num_connections
    after, rss1 = tracemalloc.take_snapshot(), rss()
    groups, kinds, total = object_graph(app)
    stats = after.compare_to(before, "traceback" if args.frames > 1 else "lineno")
    print(f"protocol {args.protocol}: {n} connections held")
    print(f"RSS growth per connection: {(rss1 - rss0) / n:,.0f} B")
    traced = sum(s.size_diff for s in stats)
    print(f"tracemalloc growth per connection: {traced / n:,.0f} B; by line:")
    for s in stats[: args.top]:
        if s.size_diff / n < 8:
            break
        where = " < ".join(
            "/".join(Path(f.filename).parts[-2:]) + f":{f.lineno}" for f in s.traceback
        )
        print(f"  {s.size_diff / n:8,.0f} B  {s.count_diff / n:5.1f} blocks  {where}")
    print(f"one connection's own objects (getsizeof): {total:,} B; by attribute:")
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {v:8,} B  {k}")
    print("by attribute and type:")
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[: 2 * args.top]:
        print(f"  {v:8,} B  {k}")
    for name, size in kernel_slabs().items():
        print(f"kernel slab {name}: {size} B per object (not in RSS)")
    await proc.wait()
    await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=["raw", "hub.v1"], default="raw")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth shown per line")
    args = parser.parse_args()
    tracemalloc.start(args.frames)
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
