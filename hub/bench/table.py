"""The report as the table printed at the end of a run (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.bench.agents.summary import table_rows as agent_rows
from hub.bench.overhead import MIN_PHASE_S
from hub.bench.schema import Report, Section
from hub.bench.verdict import BENCH_BOUND, OVERSTATE

__all__ = ["print_report"]


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _bench_bound(client: Section) -> str:
    bound = client.get("bench_bound", [])
    if bound:
        return f"[red]yes[/red]: {escape('; '.join(bound))}; {OVERSTATE}"
    if all(proc.get("phase_s", 0.0) < MIN_PHASE_S for proc in client["procs"]):
        return f"not judged: a measured phase under {MIN_PHASE_S:g} s"
    return "no"


def print_report(report: Report, console: Console) -> None:
    """The report as one table, then its warnings."""
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
    if report["scenario"] not in ("conns", "script"):  # a script's: script/summary.py
        for name in ("sent", "expected", "received", "lost", "duplicates", "reordered", "foreign"):
            table.add_row(f"messages {name}", _fmt(messages[name]))
            if name == "lost" and "loss_percent" in messages:
                table.add_row("loss (of expected)", f"{messages['loss_percent']:g}%")
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
                f"client worker {proc['worker']} loop lag (mean / p99 / max)",
                f"{lag['mean_ms']:.2f} / {lag.get('p99_ms', 0.0):.1f} / {lag['max_ms']:.1f} ms",
            )
        wait = proc.get("run_wait_percent_phase")
        if wait:
            table.add_row(f"client worker {proc['worker']} waiting for a CPU", f"{wait:.0f}%")
    if report["scenario"] != "conns":
        table.add_row(BENCH_BOUND, _bench_bound(client))
    for name, value in agent_rows(report):
        table.add_row(name, value)
    for check in report.get("thresholds", []):
        verdict = "[red]FAILED[/red]" if check["failed"] else "ok"
        table.add_row(
            f"threshold {check['name']} (limit {check['limit']})",
            # A share (0.0005) keeps its digits: one decimal would show it as 0.0.
            f"{check['value']:,.6g} {verdict}"
            if isinstance(check["value"], float)
            else f"{_fmt(check['value'])} {verdict}",
        )
    console.print(table)
    for warning in report["warnings"]:
        # One line each, as written: an error's "[SSL: ...]" is no markup.
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
