"""A script run's report, told: the table printed after the run, the figures of the verdict
line, and the OpenMetrics families. Pure: it reads the report's ``script`` section."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.bench.schema import Report, Section

__all__ = ["openmetrics_lines", "print_script", "verdict_parts"]


def _ms(micros: object) -> str:
    return "-" if not isinstance(micros, int | float) else f"{micros / 1000:,.2f}"


def print_script(report: Report, console: Console) -> None:
    """The VUs' figures: iterations, checks, errors, and each trend's percentiles."""
    script: Section = report["script"]
    table = Table(title=f"hub bench script {script['file']}", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    runs = script["iterations"]
    table.add_row("VUs (peak)", f"{script['vus_peak']:,}")
    table.add_row(
        "iterations completed / failed / interrupted / dropped",
        f"{runs['completed']:,} / {runs['failed']:,} / {runs['interrupted']:,} / "
        f"{runs['dropped']:,}",
    )
    messages = report["messages"]
    table.add_row("frames sent / received", f"{messages['sent']:,} / {messages['received']:,}")
    expects = script["expects"]
    table.add_row(
        "expects matched / timed out / closed",
        f"{expects['matched']:,} / {expects['timed_out']:,} / {expects['closed']:,}",
    )
    checks = script["checks"]
    for name, counts in checks["by_name"].items():
        total = counts["passes"] + counts["fails"]
        table.add_row(
            f"check {escape(name)}", f"{counts['passes']:,} of {total:,} ({_share(counts)})"
        )
    for key, count in script["errors"].items():
        table.add_row(f"[red]error[/red] {escape(key)}", f"{count:,}")
    console.print(table)
    trends = Table(title="trends (ms)", show_header=True)
    columns = ("count", "p50", "p90", "p95", "p99", "max")
    trends.add_column("trend")
    for column in columns:
        trends.add_column(column, justify="right")
    for name, row in script["trends_us"].items():
        cells = [f"{row['count']:,}", *(_ms(row.get(c)) for c in columns[1:])]
        trends.add_row(escape(name), *cells)
    console.print(trends)


def _share(counts: Section) -> str:
    total = counts["passes"] + counts["fails"]
    return f"{100 * counts['passes'] / total:.2f}%" if total else "-"


def verdict_parts(report: Report) -> list[str]:
    """What the verdict line says of a script run."""
    script: Section = report["script"]
    runs = script["iterations"]
    errors = sum(script["errors"].values())
    parts = [f"{runs['completed']:,} iterations, {errors:,} errors"]
    checks = script["checks"]
    if checks["rate"] is not None:
        parts.append(
            f"checks {100 * checks['rate']:.2f}% ({checks['passes']:,} of "
            f"{checks['passes'] + checks['fails']:,})"
        )
    latency = script["trends_us"].get("expect_latency")
    if latency and latency.get("p95") is not None:
        parts.append(f"expect p95 {latency['p95'] / 1000:g} ms")
    return parts


def openmetrics_lines(report: Report, labels: dict[str, str]) -> list[str]:
    """The script's families: iterations, checks, errors, and each trend's quantiles."""
    script: Section | None = report.get("script")
    if not script:
        return []

    def sample(name: str, value: float | None, extra: dict[str, str]) -> str | None:
        if value is None:
            return None
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted((labels | extra).items()))
        return f"hub_bench_{name}{{{text}}} {value}"

    runs = script["iterations"]
    families: list[tuple[str, str, list[str | None]]] = [
        (
            "script_iterations",
            "script iterations by outcome",
            [
                sample("script_iterations", runs[k], {"outcome": k})
                for k in ("completed", "failed", "interrupted", "dropped")
            ],
        ),
        (
            "script_checks",
            "script checks by name and result",
            [
                sample("script_checks", counts[r], {"check": name, "result": r})
                for name, counts in script["checks"]["by_name"].items()
                for r in ("passes", "fails")
            ],
        ),
        (
            "script_errors",
            "script errors by kind",
            [sample("script_errors", n, {"error": k}) for k, n in script["errors"].items()],
        ),
        (
            "script_trend_seconds",
            "script trends' quantiles",
            [
                sample(
                    "script_trend_seconds",
                    None if row.get(q) is None else row[q] / 1e6,
                    {"trend": name, "quantile": quantile},
                )
                for name, row in script["trends_us"].items()
                for q, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))
            ],
        ),
    ]
    lines = []
    for family, help_text, samples in families:
        lines.append(f"# TYPE hub_bench_{family} gauge")
        lines.append(f"# HELP hub_bench_{family} {help_text}")
        lines.extend(s for s in samples if s is not None)
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
