"""Reading what each load tool says about its own run: hub bench's JSON report, Artillery's
``--output`` JSON and Tsung's ``tsung.log``, into the same few figures (None where the tool does
not give one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from load_tool_configs import TSUNG_ROUND_TRIP


def hub_figures(report: dict[str, Any]) -> dict[str, Any]:
    m, lat = report["messages"], report.get("latency_us") or {}
    return {
        "connected": report["connections"]["connected"],
        "sent": m["sent"],
        "received": m["received"],
        "lost": m["lost"],
        "p50_ms": lat["p50"] / 1000 if lat.get("p50") is not None else None,
        "p99_ms": lat["p99"] / 1000 if lat.get("p99") is not None else None,
        "mean_ms": lat["mean"] / 1000 if lat.get("mean") is not None else None,
        "max_ms": lat["max"] / 1000 if lat.get("max") is not None else None,
    }


def artillery_figures(report: dict[str, Any]) -> dict[str, Any]:
    agg = report["aggregate"]
    counters = agg.get("counters", {})
    errors = {k: v for k, v in counters.items() if k.startswith("errors.")}
    created, failed = counters.get("vusers.created", 0), counters.get("vusers.failed", 0)
    latency = agg.get("summaries", {}).get("hub.latency_ms")  # only with the listen hook
    sent = counters.get("websocket.messages_sent")
    received = counters.get("websocket.messages_received", counters.get("hub.frames_received"))
    return {
        "connected": created - failed,
        "sent": sent,
        "received": received,
        "lost": sent - (received or 0) if sent is not None else None,
        "p50_ms": latency["p50"] if latency else None,
        "p99_ms": latency["p99"] if latency else None,
        "mean_ms": latency["mean"] if latency else None,
        "max_ms": latency["max"] if latency else None,
        "errors": errors,
    }


def tsung_stats(log: Path) -> dict[str, dict[str, float]]:
    """``tsung.log``'s figures over all dumps: for a sample (``request``, ``connect``, ...)
    ``count``, ``mean`` (weighted), ``max``, ``min``; for a counter (``size_rcv``,
    ``websocket_succ``, ``error_*``...) its ``total`` (the last column, cumulative)."""
    out: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines():
        if not line.startswith("stats: "):
            continue
        name, *cols = line.split()[1:]
        values = [float(c) for c in cols]
        if len(values) == 7:  # count mean stddev max min (global mean, global count)
            count, mean, _, high, low = values[:5]
            old = out.setdefault(name, {"count": 0.0, "mean": 0.0, "max": high, "min": low})
            total = old["count"] + count
            if total:
                old["mean"] = (old["mean"] * old["count"] + mean * count) / total
            old["count"] = total
            if count:
                old["max"], old["min"] = max(old["max"], high), min(old["min"], low)
        elif len(values) == 2:
            out.setdefault(name, {})["total"] = max(out.get(name, {}).get("total", 0), values[1])
    return out


def tsung_figures(logdir: Path) -> dict[str, Any]:
    logs = sorted(logdir.glob("*/tsung.log"))
    if not logs:
        raise FileNotFoundError(f"no tsung.log under {logdir}")
    stats = tsung_stats(logs[-1])
    handshakes = stats.get("websocket_succ", {}).get("total", 0)
    # each echo is one transaction, timed from its send to its reply (the upgrades are apart)
    trip = stats.get(f"tr_{TSUNG_ROUND_TRIP}", {})
    errors = {k: v["total"] for k, v in stats.items() if k.startswith("error") or k == "timeout"}
    messages = int(trip.get("count", 0))
    return {
        "connected": int(handshakes),
        "sent": messages or None,
        "received": messages or None,
        "lost": None,
        "p50_ms": None,
        "p99_ms": None,
        "mean_ms": trip.get("mean") if messages else None,
        "max_ms": trip.get("max") if messages else None,
        "bytes_received": stats.get("size_rcv", {}).get("total"),
        "errors": errors,
    }


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
