"""The run's verdict: each threshold checked against the report, the exit status, and the
one line that says it.

Exactness is the bench's point, so the default verdict is strict about messages: a run fails
(exit status 1) when no socket connected, or when any expected delivery was lost, duplicated or
reordered. A threshold on the same figure loosens its default: ``--max-loss`` or a
``--threshold`` on ``loss`` or ``lost`` replaces "lost = 0", one on ``duplicates`` replaces
"duplicates = 0", one on ``reordered`` replaces "reordered = 0".

When the bench itself was the bottleneck (``overhead.bench_bound``: a worker that had work
nearly all the time, or whose loop lag was a real part of the tail), the line says so, and
``--strict`` fails the run: its latencies overstate the server.
"""

from __future__ import annotations

from hub.bench.config import RunConfig
from hub.bench.schema import Report, Section
from hub.bench.script.summary import verdict_parts

__all__ = [
    "BENCH_BOUND",
    "DEFAULT_CHECKS",
    "OVERSTATE",
    "exit_status",
    "plural",
    "thresholds",
    "verdict_line",
]

BENCH_BOUND = "bench-bound"
OVERSTATE = "latency figures overstate the server"

#: The checks of every run unless a threshold on the same figure replaces them: (the report's
#: ``messages`` figure, the threshold metrics that replace it).
DEFAULT_CHECKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lost", ("loss", "lost")),
    ("duplicates", ("duplicates",)),
    ("reordered", ("reordered",)),
)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 socket``, ``2 sockets``, with thousands separators."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def thresholds(config: RunConfig, report: Report) -> list[Section]:
    """Each threshold checked: its name, limit, measured value and whether it failed. Zero
    sockets connected is always checked (a run that measured nothing has failed), and so are
    no loss, no duplicate and no reordering unless a threshold on the figure loosens them."""
    connections = report["connections"]
    target = connections.get("target") or 0
    connected = connections.get("connected", 0)
    share = connected / target if target else 0.0
    checks: list[Section] = [
        {"name": "connected > 0", "limit": 1, "value": connected, "failed": connected < 1}
    ]
    messages = report["messages"]
    loosened = {t.metric for t in config.thresholds}
    if config.max_loss is not None:
        loosened.add("loss")
    for figure, metrics in DEFAULT_CHECKS:
        if not loosened.intersection(metrics):
            value = messages.get(figure, 0)
            checks.append(
                {"name": f"{figure} = 0", "limit": 0, "value": value, "failed": value > 0}
            )
    if config.min_connected is not None:
        checks.append(
            {
                "name": "min-connected",
                "limit": config.min_connected,
                "value": round(share, 6),
                "failed": share < config.min_connected,
            }
        )
    if config.max_loss is not None:
        loss = messages["lost"] / messages["expected"] if messages["expected"] else 0.0
        checks.append(
            {
                "name": "max-loss",
                "limit": config.max_loss,
                "value": round(loss, 6),
                "failed": loss > config.max_loss,
            }
        )
    if config.max_p99_ms is not None:
        p99_us = report["latency_us"].get("p99")
        p99_ms = None if p99_us is None else p99_us / 1000
        checks.append(
            {
                "name": "max-p99-ms",
                "limit": config.max_p99_ms,
                "value": p99_ms,
                # No latency at all is no proof of a good one.
                "failed": p99_ms is None or p99_ms > config.max_p99_ms,
            }
        )
    checks.extend(threshold.check(report) for threshold in config.thresholds)
    return checks


def _strict_faults(report: Report) -> list[str]:
    """What --strict fails a run for beyond its thresholds."""
    connections = report.get("connections", {})
    messages = report.get("messages", {})
    faults = [
        plural(connections.get(key, 0), what, whats)
        for key, what, whats in (
            ("failed", "socket failed to connect", "sockets failed to connect"),
            ("disconnected", "socket closed during the run", "sockets closed during the run"),
            ("agents_lost", "agent lost", "agents lost"),
        )
        if connections.get(key, 0)
    ]
    faults += [
        f"{messages[key]:,} {key}"
        for key in ("lost", "duplicates", "reordered")
        if messages.get(key, 0)
    ]
    if _bench_bound(report):
        faults.append(BENCH_BOUND)
    return faults


def _bench_bound(report: Report) -> list[str]:
    reasons: list[str] = report.get("client", {}).get("bench_bound", [])
    return reasons


def exit_status(report: Report, *, strict: bool) -> int:
    """1 when a threshold failed (the default ones included), or under --strict when anything
    was lost, duplicated or reordered, any socket failed or was closed, or the bench was the
    bottleneck; else 0."""
    if any(check["failed"] for check in report.get("thresholds", [])):
        return 1
    return 1 if strict and _strict_faults(report) else 0


def verdict_line(report: Report, *, strict: bool) -> str:
    """The run's verdict in one line: ok or FAILED, the figures it rests on, and why."""
    status = exit_status(report, strict=strict)
    connections = report.get("connections", {})
    messages = report.get("messages", {})
    target = connections.get("target", 0)
    parts = [f"{connections.get('connected', 0):,} of {plural(target, 'socket')} connected"]
    if connections.get("agents_lost"):  # its sockets are in no figure below
        agents = connections["agents_lost"]
        parts.append(
            f"{plural(agents, 'agent')} lost, {'its' if agents == 1 else 'their'} part left out"
        )
    expected = messages.get("expected", 0)
    if "script" in report:
        parts += verdict_parts(report)
    elif report.get("scenario") != "conns" or expected:
        lost = messages.get("lost", 0)
        share = f" ({messages.get('loss_percent', 0):g}%)" if lost else ""
        deliveries = plural(expected, "expected delivery", "expected deliveries")
        duplicates = plural(messages.get("duplicates", 0), "duplicate")
        parts.append(
            f"{messages.get('unique', 0):,} of {deliveries} arrived, {lost:,} lost{share}, "
            f"{duplicates}, {messages.get('reordered', 0):,} reordered"
        )
        p99 = report.get("latency_us", {}).get("p99")
        if p99 is not None:
            parts.append(f"p99 {p99 / 1000:g} ms")
    bound = _bench_bound(report)
    if bound:
        parts.append(f"{BENCH_BOUND}: {'; '.join(bound)}; {OVERSTATE}")
    line = f"hub bench {report.get('scenario', '')}: {'FAILED' if status else 'ok'}: "
    line += "; ".join(parts)
    failed = [c["name"] for c in report.get("thresholds", []) if c["failed"]]
    if failed:
        line += f"; failed: {', '.join(failed)}"
    elif status:
        line += f"; --strict: {', '.join(_strict_faults(report))}"
    return line
