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
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hub import DISTRIBUTION
from hub.bench.config import RunConfig
from hub.bench.coordinator import BenchError, Coordinator, LiveState
from hub.bench.export import live_openmetrics, openmetrics, write_atomically, write_html
from hub.bench.from_args import config_from_args
from hub.bench.options import build_parser
from hub.bench.plot import write_plot
from hub.bench.schema import Report
from hub.bench.server_memory import ServerMemoryOptions
from hub.bench.sizing import SizingError
from hub.bench.table import print_report
from hub.bench.verdict import exit_status

__all__ = ["build_parser", "main"]


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
    try:
        config = config_from_args(args)
    except SizingError as exc:
        err.print(f"hub bench: error: {exc}")
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
    coordinator = Coordinator(config, memory=memory, on_update=update)
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
    drawn = _write_files(args, report, coordinator.histograms, err)
    if not args.quiet:
        print_report(report, console)
    return exit_status(report, strict=args.strict) or (0 if drawn else 1)


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


def _write_files(
    args: argparse.Namespace, report: Report, histograms: list[bytes], err: Console
) -> bool:
    """Write the --json, --plot, --openmetrics and --html files; False when a picture was asked
    for and could not be drawn."""
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(_jsonable(report), file, indent=2)
            file.write("\n")
    drawn = True
    if args.plot:
        # Drawing takes seconds (tens of seconds on a busy machine): say so.
        err.print(f"hub bench: drawing the plots to {args.plot} ...", soft_wrap=True)
        try:
            write_plot(report, histograms, args.plot)
            err.print(f"hub bench: wrote {args.plot}", soft_wrap=True)
        except ImportError:
            drawn = _needs_matplotlib("--plot", err)
    if args.openmetrics:
        write_atomically(args.openmetrics, openmetrics(_jsonable(report)))
    if args.html:
        err.print(f"hub bench: writing the HTML report to {args.html} ...", soft_wrap=True)
        try:
            write_html(_jsonable(report), histograms, args.html)
        except ImportError:
            drawn = _needs_matplotlib("--html", err)
    return drawn


def _needs_matplotlib(option: str, err: Console) -> bool:
    # markup=False: rich would take "[plot]" for a style tag and drop it.
    err.print(
        f"hub bench: {option} needs matplotlib: pip install '{DISTRIBUTION}[plot]'",
        markup=False,
    )
    return False


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
