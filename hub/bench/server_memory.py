"""The server's resident memory, read from its pids (psutil) or its Prometheus ``/metrics``
(``conns``: the server's memory per connection)."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import psutil

from hub.bench.target import Handshake, ssl_context

__all__ = [
    "ServerMemoryOptions",
    "fetch_error",
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


def read_metrics_rss(
    url: str, timeout_s: float = 5.0, context: ssl.SSLContext | None = None
) -> int | None:
    """The summed RSS of a Prometheus text at ``url`` (``context``: an https:// URL's TLS)."""
    with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
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
    pids: list[int],
    include_children: bool,
    metrics_url: str | None,
    context: ssl.SSLContext | None = None,
) -> tuple[int | None, str]:
    """Read the server's RSS the way the options say; returns (bytes or None, source)."""
    if pids:
        return read_pids_rss(pids, include_children), "pids"
    if metrics_url:
        return read_metrics_rss(metrics_url, context=context), "metrics"
    return None, "none"


def fetch_error(url: str, exc: Exception) -> str:
    """One line on why ``url`` could not be read, with what to do about a certificate."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = f"cannot read --metrics-url {url}: {reason}"
    if isinstance(reason, ssl.SSLCertVerificationError):
        text += " (--ca-file PEM trusts its CA, --insecure checks no certificate)"
    return text


@dataclass(frozen=True)
class ServerMemoryOptions:
    """Where the server's memory is read (--server-pid, --metrics-url) and when."""

    pids: list[int] = field(default_factory=list)
    include_children: bool = False
    metrics_url: str | None = None
    hold_s: float = 5.0
    settle_s: float = 1.0
    # The run's TLS settings (--ca-file, --insecure), for an https:// --metrics-url too.
    ca_file: str | None = None
    insecure: bool = False
    #: Why a read failed, one line per failure (the report warns once, with the first).
    errors: list[str] = field(default_factory=list, compare=False)

    def read(self) -> tuple[int | None, str]:
        """The server's RSS now, and where it was read (see :func:`server_rss`); None when
        --metrics-url could not be read (the reason goes to ``errors``)."""
        try:
            context = None
            if self.metrics_url and self.metrics_url.startswith("https:") and not self.pids:
                context = ssl_context(Handshake(ca_file=self.ca_file, insecure=self.insecure))
            return server_rss(self.pids, self.include_children, self.metrics_url, context)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.errors.append(fetch_error(self.metrics_url or "", exc))
            return None, "metrics"
