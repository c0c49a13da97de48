"""The report: totals from every worker's results, the final table, the JSON file and the plot.

``assemble`` and ``exit_status`` are pure: they take plain dicts, as the workers send them.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.bench.config import RunConfig
from hub.bench.scenarios import scenario_for
from hub.bench.stats import merge_encoded, summarize

__all__ = ["SCHEMA", "assemble", "exit_status", "print_report", "write_plot"]

SCHEMA = "hub-bench/1"
SATURATED_CPU_PERCENT = 90.0
# A bench loop late by more than this distorts latencies a server is judged on.
LAG_WARN_MS = 20.0


def assemble(
    config: RunConfig,
    base: dict[str, Any],
    connected: dict[int, dict[str, Any]],
    results: dict[int, dict[str, Any]],
    extra: dict[str, Any],
    timeline: list[dict[str, Any]],
) -> dict[str, Any]:
    """Build the full report from the coordinator's notes and each worker's result."""
    report: dict[str, Any] = {"schema": SCHEMA} | base
    report["config"] = dataclasses.asdict(config)
    workers = [results[n] for n in sorted(results)]
    receivers_at_start = sum(c.get("receivers_connected", 0) for c in connected.values())

    errors: Counter[str] = Counter()
    for result in workers:
        errors.update(result["errors"])
    connections = report.setdefault("connections", {})
    connections["disconnected"] = sum(r["disconnected"] for r in workers)
    connections["errors"] = dict(errors)

    received = sum(r["tally"]["received"] for r in workers)
    unique = sum(r["tally"]["unique"] for r in workers)
    sent = sum(r["sent"] for r in workers)
    expected = scenario_for(config).expected(extra, sent, receivers_at_start)
    measured_s = float(report.get("measured_s") or 0.0)
    send_s = float(extra.get("send_s") or measured_s)
    report["messages"] = {
        "sent": sent,
        "expected": expected,
        "received": received,
        "unique": unique,
        "lost": max(0, expected - unique),
        "duplicates": sum(r["tally"]["duplicates"] for r in workers),
        "reordered": sum(r["tally"]["reordered"] for r in workers),
        "unexpected": max(0, unique - expected),
        "other_frames": sum(r["other_frames"] for r in workers),
        "foreign": sum(r.get("foreign", 0) for r in workers),
        "frames_received": sum(r["frames"] for r in workers),
        "bytes_received": sum(r["bytes"] for r in workers),
        "send_per_s": round(sent / send_s, 1) if send_s else None,
        "recv_per_s": round(received / measured_s, 1) if measured_s else None,
    }
    if "sent_by_pub" in extra:
        report["messages"]["sent_by_publisher"] = {
            str(k): v for k, v in sorted(extra["sent_by_pub"].items())
        }
    report["latency_us"] = summarize(merge_encoded([r["hist"] for r in workers]))
    report["timeline"] = aggregate_timeline(timeline, config.interval_s)
    if config.rate_phases:
        # What arrived after the workers' last progress tick is in their results.
        tail = [{"t_s": math.inf, "hist": r.get("interval_hist", b"")} for r in workers]
        report["rate_phases"] = rate_phase_rows(
            config, [*timeline, *tail], extra.get("sent_by_phase", [])
        )

    procs = [
        {
            "worker": n,
            "pid": r["pid"],
            "sockets": r["receivers"],
            "cpu_s": round(r["cpu_s"], 3),
            "cpu_percent_phase": round(r["cpu_percent_phase"], 1),
            "cpu_percent_max": round(r["cpu_percent_max"], 1),
            "rss_bytes": r["rss_bytes"],
            "loop_lag_ms": r.get("loop_lag", {}),
        }
        for n, r in zip(sorted(results), workers, strict=True)
    ]
    saturated = [p["worker"] for p in procs if p["cpu_percent_max"] > SATURATED_CPU_PERCENT]
    client_memory = report.pop("client_memory", {})
    report["client"] = {"procs": procs, "saturated_workers": saturated, "memory": client_memory}
    if "churn" in extra:
        report["churn"] = extra["churn"]
    if "server_memory" in extra:
        report["server_memory"] = extra["server_memory"]
    if "rounds" in extra:
        report["rounds"] = [
            {k: v for k, v in item.items() if k != "hist"} for item in extra["rounds"]
        ]

    warnings = []
    if saturated:
        warnings.append(
            f"worker(s) {saturated} passed {SATURATED_CPU_PERCENT:.0f}% of a core: "
            "the bench may be the bottleneck; add --procs"
        )
    lagging = {
        p["worker"]: p["loop_lag_ms"]["max_ms"]
        for p in procs
        if p["loop_lag_ms"].get("max_ms", 0.0) > LAG_WARN_MS
    }
    if lagging and config.scenario != "conns":  # conns times no messages
        warnings.append(
            f"the bench's own event loop ran late (worker: highest lag ms) {lagging}: "
            "latencies include up to that much of the bench's own delay; add --procs "
            "or lower the load per worker"
        )
    if connections.get("failed"):
        warnings.append(f"{connections['failed']} connection(s) failed: {dict(errors)}")
    if report.get("churn", {}).get("failed"):
        warnings.append(f"{report['churn']['failed']} churn reconnection(s) failed")
    if connections["disconnected"]:
        warnings.append(f"{connections['disconnected']} socket(s) were closed during the run")
    messages = report["messages"]
    for name in ("lost", "duplicates", "reordered"):
        if messages[name]:
            warnings.append(f"{messages[name]} message(s) {name}")
    if messages["foreign"]:
        warnings.append(
            f"{messages['foreign']} message(s) of another bench run on the same channels "
            "(counted apart, not in this run's figures)"
        )
    report["warnings"] = warnings
    report["thresholds"] = thresholds(config, report)
    report["ok"] = exit_status(report, strict=True) == 0
    return report


def aggregate_timeline(entries: list[dict[str, Any]], interval_s: float) -> list[dict[str, Any]]:
    """Merge the workers' interval histograms into one row per interval."""
    buckets: dict[int, list[bytes]] = {}
    for entry in entries:
        buckets.setdefault(int(entry["t_s"] // interval_s), []).append(entry["hist"])
    rows = []
    for bucket in sorted(buckets):
        summary = summarize(merge_encoded(buckets[bucket]))
        rows.append(
            {
                "t_s": round((bucket + 1) * interval_s, 3),
                "count": summary["count"],
                "per_s": round(summary["count"] / interval_s, 1),
                "p50": summary["p50"],
                "p99": summary["p99"],
                "max": summary["max"],
            }
        )
    return rows


def rate_phase_rows(
    config: RunConfig, entries: list[dict[str, Any]], sent_by_phase: list[int]
) -> list[dict[str, Any]]:
    """Each --rate-phases phase: what was sent in it, and what arrived in its time window
    (the workers' interval histograms, each placed at its interval's middle; the drain counts
    in the last phase)."""
    ends: list[float] = []
    elapsed = 0.0
    for _rate, seconds in config.rate_phases:
        elapsed += seconds
        ends.append(elapsed)
    hists: list[list[bytes]] = [[] for _ in ends]
    for entry in entries:
        if not entry["hist"]:
            continue
        middle = entry["t_s"] - config.interval_s / 2
        phase = next((n for n, end in enumerate(ends) if middle < end), len(ends) - 1)
        hists[phase].append(entry["hist"])
    rows = []
    for phase, (rate, seconds) in enumerate(config.rate_phases):
        summary = summarize(merge_encoded(hists[phase]))
        sent = sent_by_phase[phase] if phase < len(sent_by_phase) else None
        rows.append(
            {
                "phase": phase,
                "rate_per_s": rate,
                "start_s": round(ends[phase] - seconds, 3),
                "seconds": seconds,
                "sent": sent,
                "send_per_s": None if sent is None else round(sent / seconds, 1),
                "received": summary["count"],
                "recv_per_s": round(summary["count"] / seconds, 1),
                "latency_us": {k: summary[k] for k in ("p50", "p99", "max")},
            }
        )
    return rows


def thresholds(config: RunConfig, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each threshold checked: its name, limit, measured value and whether it failed. Zero
    sockets connected is always checked: a run that measured nothing has failed."""
    connections = report["connections"]
    target = connections.get("target") or 0
    connected = connections.get("connected", 0)
    share = connected / target if target else 0.0
    checks: list[dict[str, Any]] = [
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


def exit_status(report: dict[str, Any], *, strict: bool) -> int:
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


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"hub bench {report['scenario']}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    conn = report["connections"]
    table.add_row("sockets connected / target", f"{conn['connected']:,} / {conn['target']:,}")
    table.add_row("connect failures", _fmt(conn["failed"]))
    table.add_row("closed during run", _fmt(conn["disconnected"]))
    table.add_row("connect time", f"{conn['connect_s']:.3f} s")
    table.add_row("connect rate", _fmt(conn["connect_rate_per_s"], "/s"))
    messages = report["messages"]
    if report["scenario"] != "conns":
        for name in ("sent", "expected", "received", "lost", "duplicates", "reordered", "foreign"):
            table.add_row(f"messages {name}", _fmt(messages[name]))
        table.add_row("receive rate", _fmt(messages["recv_per_s"], "/s"))
        lat = report["latency_us"]
        for name in ("p50", "p90", "p99", "p99_9", "max"):
            table.add_row(f"latency {name.replace('_', '.')}", _fmt(lat[name], " µs"))
    for item in report.get("rate_phases", []):
        lat = item["latency_us"]
        table.add_row(
            f"phase {item['phase']} ({item['rate_per_s']:g}/s, {item['seconds']:g} s): "
            "sent / recv rate, p99",
            f"{_fmt(item['send_per_s'], '/s')} / {_fmt(item['recv_per_s'], '/s')}, "
            f"{_fmt(lat['p99'], ' µs')}",
        )
    for item in report.get("rounds", []):
        table.add_row(
            f"round {item['round']}: got / expected",
            f"{item['received']:,} / {item['expected']:,}",
        )
        table.add_row(f"round {item['round']}: all received", _fmt(item["all_received_us"], " µs"))
    churn = report.get("churn")
    if churn:
        table.add_row("churn cycles (failed)", f"{churn['cycles']:,} ({churn['failed']:,})")
        hs = churn["handshake_ms"]
        table.add_row("churn handshake p50 / p99", f"{_fmt(hs['p50'])} / {_fmt(hs['p99'])} ms")
        table.add_row("server RSS at the end", _fmt(churn["server_rss_end_bytes"], " B"))
    server = report.get("server_memory")
    if server:
        table.add_row("server RSS before", _fmt(server["rss_before_bytes"], " B"))
        table.add_row("server RSS after", _fmt(server["rss_after_bytes"], " B"))
        table.add_row("server memory / connection", _fmt(server["per_connection_bytes"], " B"))
    client = report["client"]
    table.add_row("client memory / socket", _fmt(client["memory"].get("per_socket_bytes"), " B"))
    for proc in client["procs"]:
        table.add_row(
            f"client worker {proc['worker']} CPU (phase / max)",
            f"{proc['cpu_percent_phase']:.0f}% / {proc['cpu_percent_max']:.0f}%",
        )
        lag = proc["loop_lag_ms"]
        if lag:
            table.add_row(
                f"client worker {proc['worker']} loop lag (mean / max)",
                f"{lag['mean_ms']:.2f} / {lag['max_ms']:.1f} ms",
            )
    for check in report.get("thresholds", []):
        verdict = "[red]FAILED[/red]" if check["failed"] else "ok"
        table.add_row(
            f"threshold {check['name']} (limit {check['limit']})",
            f"{_fmt(check['value'])} {verdict}",
        )
    console.print(table)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def plot_title(report: dict[str, Any]) -> str:
    """The run's settings, in one line or two: what a reader of the picture must know."""
    config = report["config"]
    rate = config.get("rate")
    parts = [
        f"hub bench {report['scenario']}",
        ", ".join(config["urls"]),
        f"{config['num_sockets']:,} sockets",
    ]
    if report["scenario"] == "fanout":
        parts.append(f"{config['num_publishers']} publishers")
        if config.get("rate_phases"):
            steps = ", ".join(f"{r:,.0f}/s for {t:g} s" for r, t in config["rate_phases"])
            parts.append(f"rate phases {steps}")
        else:
            parts.append("rate max" if rate is None else f"{rate:,.0f} msg/s")
    if report["scenario"] != "conns":
        parts.append(f"{config['size']} B")
    parts.append(f"{config['procs']} procs, {config['client']} client")
    if config.get("protocol", "raw") != "raw":
        parts.append(f"protocol {config['protocol']}")
    return " | ".join(parts)


def write_plot(report: dict[str, Any], histograms: list[bytes], path: str) -> None:
    """Latency over time (p50, p99, max per interval) and the latency histogram, as a PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = merge_encoded(histograms)
    fig, (top, rate, conns, bottom) = plt.subplots(4, 1, figsize=(10, 13))
    fig.suptitle(plot_title(report), fontsize=10)
    rows = report["timeline"]
    times = [row["t_s"] for row in rows]
    xlabel = "time (s)"
    if not rows and report.get("rounds"):
        # broadcast-all: one point per round
        rows = [item["latency_us"] for item in report["rounds"]]
        times = [item["round"] for item in report["rounds"]]
        xlabel = "round"
    for name in ("p50", "p99", "max"):
        values_ms = [math.nan if row[name] is None else row[name] / 1000 for row in rows]
        top.plot(times, values_ms, marker=".", label=name)
    top.set_yscale("log")
    # Plain numbers at 1-2-5 steps (0.5, 1, 2, 5, 10) on the log axis, not 4 x 10^0.
    top.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    top.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    top.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    top.set_xlabel(xlabel)
    top.set_ylabel("latency (ms)")
    top.set_title("latency over time (the measured phase)")
    top.grid(True, which="major", alpha=0.3)
    top.legend()
    rate.plot(
        [row["t_s"] for row in report["timeline"]],
        [row["per_s"] for row in report["timeline"]],
        marker=".",
    )
    rate.set_xlabel("time (s)")
    rate.set_ylabel("messages received / s")
    rate.set_title("throughput over time (the measured phase)")
    rate.grid(True, alpha=0.3)
    conn_rows = report.get("connections_timeline", [])
    conns.plot([r["t_s"] for r in conn_rows], [r["connected"] for r in conn_rows], marker=".")
    conns.set_xlabel("time (s, from the start of the run)")
    conns.set_ylabel("sockets connected")
    conns.set_title("connections over time")
    conns.grid(True, alpha=0.3)
    values, counts = [], []
    for item in hist.get_recorded_iterator():
        values.append(item.value_iterated_to)
        counts.append(item.count_at_value_iterated_to)
    if values:
        bottom.bar(range(len(values)), counts)
        ticks = list(range(0, len(values), max(1, len(values) // 10)))
        bottom.set_xticks(ticks, [f"{values[i] / 1000:g}" for i in ticks], rotation=45)
    bottom.set_xlabel("latency (ms)")
    bottom.set_ylabel("messages")
    bottom.set_title("latency histogram")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
