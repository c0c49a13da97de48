"""The Markdown tables of benchmarks/compare_load_tools.py: per workload, one row per tool, each
figure the median over the repeats."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from load_tool_runs import Settings

Rows = list[dict[str, Any]]


def median(rows: Rows, *path: str) -> float | None:
    values = []
    for row in rows:
        v: Any = row
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, int | float):
            values.append(v)
    return statistics.median(values) if values else None


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    whole = abs(v) >= 100 or float(v).is_integer()
    return f"{v:,.0f}" if whole else f"{v:,.{digits}f}"


def latency(tool: str, rows: Rows) -> str:
    """What the tool itself says of its latency."""
    p50, p99 = median(rows, "own", "p50_ms"), median(rows, "own", "p99_ms")
    if p99 is not None:
        hook = " (our hook)" if tool == "artillery" else ""
        return f"p50 {fmt(p50, 2)} / p99 {fmt(p99, 2)} ms{hook}"
    mean, high = median(rows, "own", "mean_ms"), median(rows, "own", "max_ms")
    if mean is not None:
        return f"mean {fmt(mean, 2)} / max {fmt(high, 2)} ms, no percentiles"
    return "none"


def own_loss(tool: str, rows: Rows) -> str:
    """What the tool itself says of the fan-out's loss."""
    expected = fmt(median(rows, "expected"))
    if tool == "tsung":
        return f"none: bytes only, ≈{fmt(median(rows, 'own', 'received_estimated'))} frames of {expected}"  # noqa: E501
    if tool == "artillery":
        return f"none: our hook counted {fmt(median(rows, 'own', 'received'))} of {expected}"
    return fmt(median(rows, "own", "lost"))


def independent(rows: Rows) -> str:
    p50, p99 = median(rows, "independent", "p50_ms"), median(rows, "independent", "p99_ms")
    return f"p50 {fmt(p50, 2)} / p99 {fmt(p99, 2)} ms"


Column = tuple[str, Callable[[str, Rows], str]]


def columns(workload: str, s: Settings) -> list[Column]:
    def of(*path: str, digits: int = 1) -> Callable[[str, Rows], str]:
        return lambda _tool, rows: fmt(median(rows, *path), digits)

    rss: Column = ("client RSS per socket (KiB)", of("kib_per_socket"))
    if workload == "conns":
        return [
            (f"sockets held (of {s.conns:,})", of("held")),
            rss,
            ("client CPU per socket (ms)", of("cpu_ms_per_socket", digits=3)),
            ("RSS before the first socket (MiB)", of("rss_base_mib")),
        ]
    if workload == "echo":
        expected = s.echo_sockets * max(1, round(s.echo_rate * s.echo_seconds))
        return [
            (f"round trips, by the echo server (of {expected:,})", of("server_frames")),
            ("round trips, by the tool", of("own", "received")),
            ("round trips per client CPU-second", of("msgs_per_core_s")),
            ("latency it reports", latency),
            rss,
        ]
    return [
        (f"subscribers held (of {s.fanout_subscribers:,})", of("subscribers")),
        ("deliveries per client CPU-second", of("msgs_per_core_s")),
        ("latency it reports", latency),
        ("independent receiver", lambda _t, rows: independent(rows)),
        ("loss it reports", own_loss),
        ("independent receiver's loss", of("independent", "lost")),
        rss,
    ]


def table(workload: str, s: Settings, by_tool: dict[str, Rows]) -> str:
    cols = columns(workload, s)
    lines = [
        f"### {workload}",
        "",
        "| tool | " + " | ".join(name for name, _ in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for tool, rows in by_tool.items():
        lines.append(f"| {tool} | " + " | ".join(cell(tool, rows) for _, cell in cols) + " |")
    return "\n".join([*lines, ""])
