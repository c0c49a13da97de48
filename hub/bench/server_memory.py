"""The server's resident memory, read from its pids (psutil) or its Prometheus ``/metrics``
(``conns``: the server's memory per connection)."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

import psutil

__all__ = [
    "ServerMemoryOptions",
    "parse_resident_memory",
    "read_metrics_rss",
    "read_pids_rss",
    "server_rss",
]

RSS_METRIC = "process_resident_memory_bytes"


def parse_resident_memory(text: str) -> int | None:
    """Sum every ``process_resident_memory_bytes`` sample of a Prometheus text exposition.

    A multi-process server exposes one sample per process (with labels); they add up.
    Returns None when the metric is absent.
    """
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(RSS_METRIC):
            continue
        name_end = len(RSS_METRIC)
        if len(line) > name_end and line[name_end] not in " {":
            continue  # another metric sharing the prefix
        parts = line.rsplit("}", 1)[-1].split() if "{" in line else line.split()[1:]
        if not parts:
            continue
        try:
            total += float(parts[0])
        except ValueError:
            continue
        found = True
    return int(total) if found else None


def read_metrics_rss(url: str, timeout_s: float = 5.0) -> int | None:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
    return parse_resident_memory(body.decode("utf-8", "replace"))


def read_pids_rss(pids: list[int], include_children: bool) -> int:
    """The sum of the RSS of ``pids`` (and of their descendants with ``include_children``)."""
    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            procs = [psutil.Process(pid)]
            if include_children:
                procs.extend(procs[0].children(recursive=True))
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return total


def server_rss(
    pids: list[int], include_children: bool, metrics_url: str | None
) -> tuple[int | None, str]:
    """Read the server's RSS the way the options say; returns (bytes or None, source)."""
    if pids:
        return read_pids_rss(pids, include_children), "pids"
    if metrics_url:
        return read_metrics_rss(metrics_url), "metrics"
    return None, "none"


@dataclass(frozen=True)
class ServerMemoryOptions:
    """Where the server's memory is read (--server-pid, --metrics-url) and when."""

    pids: list[int] = field(default_factory=list)
    include_children: bool = False
    metrics_url: str | None = None
    hold_s: float = 5.0
    settle_s: float = 1.0

    def read(self) -> tuple[int | None, str]:
        """The server's RSS now, and where it was read (see :func:`server_rss`)."""
        return server_rss(self.pids, self.include_children, self.metrics_url)
