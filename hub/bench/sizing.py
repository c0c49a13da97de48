"""Pure sizing: how sockets are spread over processes, targets and source addresses.

Every socket has a global index. Socket ``i`` is owned by process ``i % procs``, talks to
``urls[i % len(urls)]`` and binds ``source_addrs[(i // len(urls)) % len(source_addrs)]``, so
each kind of resource is shared out evenly and the assignment is the same in every process.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.core.addresses import is_loopback

__all__ = [
    "FD_MARGIN",
    "MAX_SOCKETS_PER_ADDR_PAIR",
    "SizingError",
    "check_fd_limit",
    "default_procs",
    "fd_hard_limit",
    "is_loopback_url",
    "local_port_range",
    "pick_source_addrs",
    "source_port",
    "worker_indices",
]

# File descriptors a process needs besides its sockets: stdio, pipes, the event loop, imports.
FD_MARGIN = 100
# The ephemeral port range (32768-60999) gives about 28k ports per (source, destination) pair.
# Stay below it with some room for sockets in TIME_WAIT.
MAX_SOCKETS_PER_ADDR_PAIR = 25_000


class SizingError(ValueError):
    """A run that cannot fit: too few processes or source addresses for the sockets asked."""


def fd_hard_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def sockets_per_proc(num_sockets: int, procs: int) -> int:
    return math.ceil(num_sockets / procs) if num_sockets else 0


def check_fd_limit(num_sockets: int, procs: int, fd_limit: int) -> None:
    """Raise SizingError when one process would need more file descriptors than ``fd_limit``."""
    if procs < 1:
        raise SizingError(f"--procs must be at least 1, not {procs}")
    per_proc = sockets_per_proc(num_sockets, procs)
    if per_proc + FD_MARGIN > fd_limit:
        needed = math.ceil(num_sockets / max(1, fd_limit - FD_MARGIN))
        raise SizingError(
            f"{num_sockets} sockets over {procs} process{'' if procs == 1 else 'es'} is {per_proc} "
            "per process, "
            f"which with a margin of {FD_MARGIN} passes the open-file limit of {fd_limit}; "
            f"use --procs {needed} or more"
        )


def default_procs(num_sockets: int, cpu_count: int, fd_limit: int) -> int:
    """As many processes as CPUs (no more than sockets), or more when the fd limit needs it."""
    by_fds = math.ceil(num_sockets / max(1, fd_limit - FD_MARGIN))
    return max(1, min(cpu_count, num_sockets), by_fds)


def is_loopback_url(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def pick_source_addrs(num_sockets: int, urls: list[str], explicit: list[str] | None) -> list[str]:
    """The local addresses to bind; an empty list lets the kernel choose.

    With loopback targets, the bench spreads sockets over 127.0.0.1, 127.0.0.2, ... when one
    (source, destination) pair would pass MAX_SOCKETS_PER_ADDR_PAIR. Elsewhere it cannot invent
    addresses: it says how many are missing instead.
    """
    per_url = math.ceil(num_sockets / max(1, len(urls)))
    needed = max(1, math.ceil(per_url / MAX_SOCKETS_PER_ADDR_PAIR))
    if explicit:
        if len(explicit) < needed:
            raise SizingError(
                f"{per_url} sockets per target need {needed} source addresses, "
                f"but --source-addr gives {len(explicit)}"
            )
        return list(explicit)
    if needed == 1:
        return []
    if not all(is_loopback_url(url) for url in urls):
        raise SizingError(
            f"{per_url} sockets per target need {needed} source addresses; "
            "give them with --source-addr (repeatable)"
        )
    if needed > 254:
        raise SizingError(f"{needed} source addresses needed: too many")
    return [f"127.0.0.{n}" for n in range(1, needed + 1)]


@dataclass(frozen=True)
class SocketPlace:
    url: str
    source_addr: str | None


def local_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral port range, (low, high) inclusive; Linux's default elsewhere."""
    try:
        with open(path) as f:
            low, high = (int(part) for part in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def source_port(
    index: int, urls: list[str], source_addrs: list[str], port_range: tuple[int, int]
) -> int | None:
    """The local port socket ``index`` binds with its source address: its rank among the
    sockets of its (target, source address) pair, counted up from the bottom of
    ``port_range``; None (the kernel picks) without source addresses or past the range.

    Why not let the kernel pick: with IP_BIND_ADDRESS_NO_PORT, each connect() walks the port
    range until it finds a free 4-tuple, and the walk grows as the range fills. Connecting
    100,000 sockets over 4 addresses, that walk (``__inet_check_established``,
    ``__inet_hash_connect``) was 61% of the machine's CPU (perf), and connecting took 75 s.
    """
    if not source_addrs:
        return None
    low, high = port_range
    port = low + index // (len(urls) * len(source_addrs))
    return port if port <= high else None


def place(index: int, urls: list[str], source_addrs: list[str]) -> SocketPlace:
    """Where socket ``index`` connects to and from."""
    url = urls[index % len(urls)]
    addr = source_addrs[(index // len(urls)) % len(source_addrs)] if source_addrs else None
    return SocketPlace(url, addr)


def worker_indices(num: int, worker: int, procs: int) -> range:
    """The global indices, out of ``num``, that process ``worker`` owns."""
    return range(worker, num, procs)
