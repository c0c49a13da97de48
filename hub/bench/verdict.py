"""The run's verdict: each threshold checked against the report, and the exit status."""

from __future__ import annotations

from hub.bench.config import RunConfig
from hub.bench.schema import Report, Section

__all__ = ["exit_status", "thresholds"]


def thresholds(config: RunConfig, report: Report) -> list[Section]:
    """Each threshold checked: its name, limit, measured value and whether it failed. Zero
    sockets connected is always checked: a run that measured nothing has failed."""
    connections = report["connections"]
    target = connections.get("target") or 0
    connected = connections.get("connected", 0)
    share = connected / target if target else 0.0
    checks: list[Section] = [
        {"name": "connected > 0", "limit": 1, "value": connected, "failed": connected < 1}
    ]
    if config.min_connected is not None:
        checks.append(
            {
                "name": "min-connected",
                "limit": config.min_connected,
                "value": round(share, 6),
                "failed": share < config.min_connected,
            }
        )
    messages = report["messages"]
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


def exit_status(report: Report, *, strict: bool) -> int:
    """1 when a threshold failed (zero sockets connected always does), or under --strict when
    anything was lost, duplicated, reordered or failed; else 0."""
    if any(check["failed"] for check in report.get("thresholds", [])):
        return 1
    if not strict:
        return 0
    connections = report.get("connections", {})
    messages = report.get("messages", {})
    failures = connections.get("failed", 0) + connections.get("disconnected", 0)
    bad = messages.get("lost", 0) + messages.get("duplicates", 0) + messages.get("reordered", 0)
    return 1 if failures or bad else 0
