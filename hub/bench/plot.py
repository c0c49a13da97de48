"""The report's pictures (matplotlib, the ``plot`` extra): latency and throughput over time,
connections over time, and the latency histogram, in one PNG."""

from __future__ import annotations

import math

from hub.bench.schema import Report
from hub.bench.stats import merge_encoded
from hub.bench.verdict import plural

__all__ = ["plot_title", "write_plot"]


def plot_title(report: Report) -> str:
    """The run's settings, in one line or two: what a reader of the picture must know."""
    config = report["config"]
    rate = config.get("rate")
    parts = [
        f"hub bench {report['scenario']}",
        ", ".join(config["urls"]),
        plural(config["num_sockets"], "socket"),
    ]
    if report["scenario"] == "fanout":
        parts.append(plural(config["num_publishers"], "publisher"))
        if config.get("rate_phases"):
            steps = ", ".join(f"{r:,.0f}/s for {t:g} s" for r, t in config["rate_phases"])
            parts.append(f"rate phases {steps}")
        else:
            parts.append("rate max" if rate is None else f"{rate:,.0f} msg/s")
    elif report["scenario"] == "echo":
        parts.append("closed loop" if rate is None else f"{rate:,.0f} msg/s")
    if report["scenario"] != "conns":
        parts.append(f"{config['size']} B")
    parts.append(f"{plural(config['procs'], 'proc')}, {config['client']} client")
    if config.get("protocol", "raw") != "raw":
        parts.append(f"protocol {config['protocol']}")
    return " | ".join(parts)


def write_plot(report: Report, histograms: list[bytes], path: str) -> None:
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
