"""``hub bench``: the load tester's command line.

The main ``hub`` command dispatches ``hub bench ARGS...`` to :func:`main`; ``python -m hub.bench``
runs it directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hub import DISTRIBUTION
from hub.bench.agents.handshake import HandshakeError
from hub.bench.agents.options import agent_main, agent_pool
from hub.bench.config import RunConfig
from hub.bench.coordinator import BenchError, Coordinator, LiveState
from hub.bench.export import live_openmetrics, openmetrics, write_atomically, write_html
from hub.bench.from_args import config_from_args
from hub.bench.options import build_parser
from hub.bench.plot import write_plot
from hub.bench.schema import SCHEMA, Report
from hub.bench.server_memory import ServerMemoryOptions
from hub.bench.sizing import SizingError
from hub.bench.table import print_report
from hub.bench.verdict import exit_status, verdict_line
from hub.bench.worker import run_worker

__all__ = ["build_parser", "main", "plot_command"]


def _live_table(state: LiveState) -> Table:
    table = Table(show_header=True, title="hub bench")
    columns = ("phase", "connected", "failed", "msgs/s", "p99 (µs)", "CPU % per worker")
    for name in (*columns, "bench loop lag (ms)"):
        table.add_column(name)
    table.add_row(
        state.phase,
        f"{sum(state.connected.values()):,} / {state.target:,}",
        f"{sum(state.failed.values()):,}",
        f"{state.recv_rate:,.0f}",
        "-" if state.p99_us is None else f"{state.p99_us:,}",
        " ".join(f"{state.cpu[w]:.0f}" for w in sorted(state.cpu)),
        " ".join(f"{state.loop_lag_ms[w]:.1f}" for w in sorted(state.loop_lag_ms)),
    )
    return table


def main(argv: list[str] | None = None) -> int:
    """Run ``hub bench``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    if args.scenario == "plot":
        return plot_command(args.report, args.plot, args.html, err)
    if args.scenario == "agent":
        return agent_main(args)
    pool = None
    try:
        config = config_from_args(args)
        if args.agents:  # every agent authenticated before anything runs anywhere
            pool, config = agent_pool(args, config, run_worker)
    except (SizingError, HandshakeError) as exc:
        err.print(f"hub bench: error: {exc}", markup=False, soft_wrap=True)
        return 2
    memory = ServerMemoryOptions(
        pids=getattr(args, "server_pids", []),
        include_children=getattr(args, "server_children", False),
        metrics_url=getattr(args, "metrics_url", None),
        hold_s=getattr(args, "hold", 0.0),
        settle_s=getattr(args, "settle", 1.0),
        ca_file=config.handshake.ca_file,
        insecure=config.handshake.insecure,
    )
    console = Console()
    show_live = console.is_terminal and not args.quiet
    live = (
        Live(_live_table(LiveState()), console=console, refresh_per_second=4) if show_live else None
    )
    update = _updater(args, config, live, err)
    coordinator = Coordinator(config, memory=memory, on_update=update, pool=pool)
    try:
        if live is not None:
            with live:
                report = coordinator.run()
        else:
            report = coordinator.run()
    except BenchError as exc:
        err.print(f"hub bench: error: {exc}")
        return 3
    except KeyboardInterrupt:
        err.print("hub bench: interrupted")
        return 130
    _write_files(args, report, err)
    if not args.quiet:
        print_report(report, console)
    # The verdict line comes even with -q: it is what a CI log shows of the run.
    console.print(verdict_line(report, strict=args.strict), markup=False, soft_wrap=True)
    # Files that could not be drawn do not change it: the run's exit status is its own.
    return exit_status(report, strict=args.strict)


def plot_command(path: str, png: str | None, page: str | None, err: Console) -> int:
    """``hub bench plot RUN.json``: draw a --json report's pictures (--plot, by default next to
    it, and --html), as the run would have with matplotlib installed."""
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except (OSError, ValueError) as exc:
        err.print(f"hub bench plot: cannot read {path}: {exc}", markup=False, soft_wrap=True)
        return 2
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        err.print(
            f"hub bench plot: {path} is not a hub bench --json report (schema {SCHEMA})",
            markup=False,
            soft_wrap=True,
        )
        return 2
    if png is None and page is None:
        png = str(Path(path).with_suffix(".png"))
    if not _have_matplotlib():
        err.print(
            f"hub bench plot: drawing needs matplotlib: {_PIP_PLOT}", markup=False, soft_wrap=True
        )
        return 1
    try:
        _draw(report, png, page, err)
    except OSError as exc:
        err.print(f"hub bench plot: cannot write: {exc}", markup=False, soft_wrap=True)
        return 1
    return 0


def _updater(
    args: argparse.Namespace, config: RunConfig, live: Live | None, err: Console
) -> Callable[[LiveState], None]:
    """What each progress update does: redraw the live view, and rewrite the --openmetrics
    file about once a second."""
    written_at = [0.0]

    def update(state: LiveState) -> None:
        if live is not None:
            live.update(_live_table(state))
        if args.openmetrics and time.monotonic() - written_at[0] >= 1.0:
            written_at[0] = time.monotonic()
            text = live_openmetrics(
                config.scenario,
                config.run_id,
                phase=state.phase,
                connected=sum(state.connected.values()),
                failed=sum(state.failed.values()),
                sent=sum(state.sent.values()),
                received=sum(state.frames.values()),
                receive_rate=state.recv_rate,
                p99_us=state.p99_us,
                loop_lag_ms=max(state.loop_lag_ms.values(), default=0.0),
            )
            try:
                write_atomically(args.openmetrics, text)
            except OSError as exc:
                err.print(f"hub bench: cannot write {args.openmetrics}: {exc}", markup=False)

    return update


def _write_files(args: argparse.Namespace, report: Report, err: Console) -> None:
    """Write the --json, --plot, --openmetrics and --html files. Without matplotlib, the
    pictures are left to ``hub bench plot``: the JSON is written next to them, and one line
    says how to draw them later."""
    if args.json:
        _write_json(report, args.json)
    if args.openmetrics:
        write_atomically(args.openmetrics, openmetrics(_jsonable(report)))
    if not (args.plot or args.html):
        return
    if _have_matplotlib():
        try:
            _draw(report, args.plot, args.html, err)
        except OSError as exc:  # a folder that is not there: the run's status stays its own
            err.print(f"hub bench: cannot write the pictures: {exc}", markup=False, soft_wrap=True)
        return
    wanted = [(flag, path) for flag, path in (("--plot", args.plot), ("--html", args.html)) if path]
    saved = args.json or _next_to(wanted[0][1])
    if not args.json:
        _write_json(report, saved)
    flags = " and ".join(flag for flag, _ in wanted)
    later = " ".join(f"{flag} {path}" for flag, path in wanted)
    err.print(
        f"hub bench: {flags} {'needs' if len(wanted) == 1 else 'need'} matplotlib, not "
        f"installed: the report is in {saved}; draw it later with 'hub bench plot {saved} "
        f"{later}' once you {_PIP_PLOT}",
        markup=False,
        soft_wrap=True,
    )


# markup=False wherever it is printed: rich would take "[plot]" for a style tag and drop it.
_PIP_PLOT = f"pip install '{DISTRIBUTION}[plot]' (in a checkout: pip install -e '.[plot]')"


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _next_to(picture: str) -> str:
    """Where the JSON of a run goes when only pictures were asked for: beside the first."""
    path = Path(picture).with_suffix(".json")
    return str(path) if str(path) != picture else picture + ".json"


def _write_json(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(_jsonable(report), file, indent=2)
        file.write("\n")


def _draw(report: Report, png: str | None, page: str | None, err: Console) -> None:
    """The --plot PNG and the --html page, from the report (its ``latency_histogram`` is the
    histogram they draw)."""
    histograms = [(report.get("latency_histogram") or "").encode("ascii")]
    if png:
        # Drawing takes seconds (tens of seconds on a busy machine): say so.
        err.print(f"hub bench: drawing the plots to {png} ...", markup=False, soft_wrap=True)
        write_plot(report, histograms, png)
        err.print(f"hub bench: wrote {png}", markup=False, soft_wrap=True)
    if page:
        err.print(f"hub bench: writing the HTML report to {page} ...", markup=False, soft_wrap=True)
        write_html(_jsonable(report), histograms, page)
        err.print(f"hub bench: wrote {page}", markup=False, soft_wrap=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
