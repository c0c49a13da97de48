"""Files to share a run: OpenMetrics text (for Prometheus: the node_exporter textfile collector
or a Pushgateway) and one self-contained HTML page with the plots inlined.

Both are written from the final report (``report.assemble``); nothing here touches sockets.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import tempfile
from pathlib import Path

from hub.bench.schema import Report
from hub.bench.script.summary import openmetrics_lines

__all__ = ["live_openmetrics", "openmetrics", "write_atomically", "write_html"]


def _sample(name: str, value: float | None, labels: dict[str, str]) -> str | None:
    if value is None:
        return None
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"hub_bench_{name}{{{text}}} {value}"


def openmetrics(report: Report) -> str:
    """The run's totals as OpenMetrics text: gauges labelled with the scenario and run id."""
    labels = {"scenario": report["scenario"], "run_id": str(report["config"]["run_id"])}
    connections, messages = report["connections"], report["messages"]
    latency = report.get("latency_us", {})
    families: list[tuple[str, str, list[tuple[str, float | None, dict[str, str]]]]] = [
        (
            "sockets",
            "sockets by state at the start of the measured phase",
            [
                ("sockets", connections["target"], labels | {"state": "target"}),
                ("sockets", connections["connected"], labels | {"state": "connected"}),
                ("sockets", connections["failed"], labels | {"state": "failed"}),
                ("sockets", connections["disconnected"], labels | {"state": "disconnected"}),
            ],
        ),
        (
            "messages",
            "messages by outcome",
            [
                ("messages", messages[k], labels | {"outcome": k})
                for k in ("sent", "expected", "received", "lost", "duplicates", "reordered")
            ]
            + [("messages", messages.get("foreign", 0), labels | {"outcome": "foreign"})],
        ),
        (
            "latency_seconds",
            "latency percentiles of the run",
            [
                (
                    "latency_seconds",
                    None if latency.get(q) is None else latency[q] / 1e6,
                    labels | {"quantile": quantile},
                )
                for q, quantile in (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"))
            ],
        ),
        (
            "receive_rate",
            "messages received per second over the measured phase",
            [("receive_rate", messages.get("recv_per_s"), labels)],
        ),
        (
            "threshold_failed",
            "1 when the threshold was crossed",
            [
                ("threshold_failed", int(c["failed"]), labels | {"threshold": c["name"]})
                for c in report.get("thresholds", [])
            ],
        ),
    ]
    lines = []
    for family, help_text, samples in families:
        lines.append(f"# TYPE hub_bench_{family} gauge")
        lines.append(f"# HELP hub_bench_{family} {help_text}")
        for name, value, sample_labels in samples:
            line = _sample(name, value, sample_labels)
            if line is not None:
                lines.append(line)
    lines += openmetrics_lines(report, labels)  # a script run's checks, errors and trends
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def live_openmetrics(
    scenario: str,
    run_id: int,
    *,
    phase: str,
    connected: int,
    failed: int,
    sent: int,
    received: int,
    receive_rate: float,
    p99_us: int | None,
    loop_lag_ms: float,
) -> str:
    """The run so far, as OpenMetrics text: what a soak shows in Grafana while it runs (the
    file is rewritten about once a second; the final totals replace it at the end)."""
    labels = {"scenario": scenario, "run_id": str(run_id), "phase": phase}
    samples = [
        ("live_sockets", connected, labels | {"state": "connected"}, "sockets now"),
        ("live_sockets", failed, labels | {"state": "failed"}, ""),
        ("live_messages", sent, labels | {"outcome": "sent"}, "messages so far"),
        ("live_messages", received, labels | {"outcome": "received"}, ""),
        ("live_receive_rate", round(receive_rate, 1), labels, "messages received per second"),
        (
            "live_latency_p99_seconds",
            None if p99_us is None else p99_us / 1e6,
            labels,
            "p99 of the last interval",
        ),
        ("live_loop_lag_seconds", loop_lag_ms / 1e3, labels, "the bench's worst loop lag"),
    ]
    lines = []
    for name, value, sample_labels, help_text in samples:
        if help_text:
            lines.append(f"# TYPE hub_bench_{name} gauge")
            lines.append(f"# HELP hub_bench_{name} {help_text}")
        line = _sample(name, value, sample_labels)
        if line is not None:
            lines.append(line)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so a collector never reads half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".hub-bench-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_html(report: Report, histograms: list[bytes], path: str) -> None:
    """One HTML file, nothing to fetch: the plots as an inline PNG, the main figures as a
    table, the warnings and the full JSON report. Needs matplotlib, as --plot does."""
    from hub.bench.plot import plot_title, write_plot

    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "plot.png"
        write_plot(report, histograms, str(png))
        image = base64.b64encode(png.read_bytes()).decode("ascii")
    connections, messages = report["connections"], report["messages"]
    latency = report.get("latency_us", {})
    rows = [
        ("sockets connected / target", f"{connections['connected']:,} / {connections['target']:,}"),
        ("connect failures", f"{connections['failed']:,}"),
        (
            "messages sent / expected / received",
            f"{messages['sent']:,} / {messages['expected']:,} / {messages['received']:,}",
        ),
        (
            "lost / duplicates / reordered",
            f"{messages['lost']:,} / {messages['duplicates']:,} / {messages['reordered']:,}",
        ),
        (
            "latency p50 / p99 / max (ms)",
            " / ".join(
                "-" if latency.get(k) is None else f"{latency[k] / 1000:g}"
                for k in ("p50", "p99", "max")
            ),
        ),
    ]
    rows += [
        (
            f"threshold {c['name']} (limit {c['limit']})",
            f"{c['value']} {'FAILED' if c['failed'] else 'ok'}",
        )
        for c in report.get("thresholds", [])
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in report.get("warnings", []))
    title = html.escape(plot_title(report))
    body = json.dumps(report, indent=2, default=str)
    Path(path).write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:1040px;margin:auto}"
        "th{text-align:left;padding-right:2em}img{max-width:100%}</style></head><body>"
        f"<h1>{title}</h1><table>{table}</table><ul>{warnings}</ul>"
        f"<img alt='plots' src='data:image/png;base64,{image}'>"
        f"<details><summary>JSON report</summary><pre>{html.escape(body)}</pre></details>"
        "</body></html>\n",
        encoding="utf-8",
    )
