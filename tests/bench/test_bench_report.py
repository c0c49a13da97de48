"""Tests of hub.bench.report, hub.bench.verdict and hub.bench.thresholds: totals, exit status,
thresholds."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from rich.console import Console

from hub.bench.config import RunConfig
from hub.bench.messages import Connected, Ready, Result, Snapshot
from hub.bench.report import Run, assemble
from hub.bench.scenarios.context import Outcome
from hub.bench.stats import LatencyRecorder, Tally
from hub.bench.table import print_report
from hub.bench.thresholds import ThresholdError, parse_threshold
from hub.bench.verdict import exit_status, verdict_line


def worker_result(
    received: int, unique: int, dups: int = 0, reordered: int = 0, cpu: float = 10.0
) -> Result:
    recorder = LatencyRecorder()
    for value in range(1, received + 1):
        recorder.add(value)
    recorder.flush()
    return Result(
        worker=0,
        snapshot=Snapshot(frames=received, payload_bytes=received * 64),
        tally=Tally(received=received, unique=unique, duplicates=dups, reordered=reordered),
        other_frames=0,
        errors={},
        hist=recorder.total.encode(),
        pid=1,
        rss_bytes=1,
        cpu_s=1.0,
        cpu_percent_max=cpu,
        cpu_percent_phase=cpu,
        receivers=10,
    )


def fanout_report(results: dict[int, Result], failed: int = 0) -> dict[str, Any]:
    """20 subscribers and 2 publishers over 2 workers, 22 - ``failed`` of them connected."""
    config = RunConfig(
        scenario="fanout", urls=["ws://x"], procs=2, num_sockets=20, num_publishers=2
    )
    connected = {
        n: Connected(
            worker=n,
            connected=11 - (failed if n == 0 else 0),
            receivers_connected=10,
            failed=failed if n == 0 else 0,
            connect_s=1.0,
            rss_before=0,
            rss_after=0,
        )
        for n in (0, 1)
    }
    run = Run(
        started_at=0.0,
        ready={n: Ready(worker=n, pid=1, rss_bytes=1) for n in (0, 1)},
        connected=connected,
        connect_s=1.0,
        results=results,
        measured_started_at=0.5,
        measured_s=1.0,
        outcome=Outcome(sent_by_pub={0: 50, 1: 50}, send_s=1.0),
        timeline=[],
        connections_timeline=[],
    )
    return assemble(config, run)


def test_fanout_totals_clean() -> None:
    """Expected is messages sent times subscribers; nothing lost gives ok."""
    report = fanout_report({0: worker_result(1000, 1000), 1: worker_result(1000, 1000)})
    messages = report["messages"]
    assert messages["expected"] == 2000
    assert messages["received"] == 2000
    assert messages["lost"] == 0
    assert report["latency_us"]["count"] == 2000
    assert report["ok"] is True
    assert exit_status(report, strict=True) == 0


def test_fanout_loss_duplicates_reorder() -> None:
    """Loss is expected minus unique; duplicates and reordering add up across workers."""
    report = fanout_report(
        {0: worker_result(1000, 990, dups=10), 1: worker_result(995, 995, reordered=3)}
    )
    messages = report["messages"]
    assert messages["lost"] == 15
    assert messages["duplicates"] == 10
    assert messages["reordered"] == 3
    assert report["ok"] is False
    assert exit_status(report, strict=True) == 1
    # Exactness is the default verdict: without a threshold that allows them, they fail.
    assert exit_status(report, strict=False) == 1
    failed = [c["name"] for c in report["thresholds"] if c["failed"]]
    assert failed == ["lost = 0", "duplicates = 0", "reordered = 0"]
    assert messages["loss_percent"] == 0.75
    assert report["warnings"][-3:] == ["15 messages lost", "10 duplicates", "3 messages reordered"]


def test_failures_fail_strict() -> None:
    """A failed connection makes --strict exit nonzero."""
    report = fanout_report({0: worker_result(1000, 1000), 1: worker_result(1000, 1000)}, 1)
    assert exit_status(report, strict=True) == 1


def test_saturation_warning() -> None:
    """A worker over 90% of a core is named in the report."""
    report = fanout_report({0: worker_result(1000, 1000, cpu=97.0), 1: worker_result(1000, 1000)})
    assert report["client"]["saturated_workers"] == [0]
    assert any("bottleneck" in w for w in report["warnings"])


def test_a_lagging_bench_loop_is_reported() -> None:
    """A worker whose loop lagged a real part of the tail makes the run bench-bound: a warning,
    a table row, the verdict line, and --strict fails (without it, the run stays ok)."""
    lag = {"max_ms": 40.0, "mean_ms": 0.4, "p99_ms": 35.0}
    lagging = replace(worker_result(1000, 1000), loop_lag=lag, phase_s=2.0)
    calm = replace(worker_result(1000, 1000), loop_lag={"max_ms": 3.0, "mean_ms": 0.1})
    report = fanout_report({0: lagging, 1: calm})
    assert report["client"]["procs"][0]["loop_lag_ms"] == lag
    reason = "worker 0's event loop lagged 35.0 ms at p99 (up to 40.0 ms)"
    assert report["client"]["bench_bound"] == [reason]
    assert report["warnings"] == [f"bench-bound: {reason}; latency figures overstate the server"]
    assert exit_status(report, strict=False) == 0
    assert exit_status(report, strict=True) == 1
    assert report["ok"] is False
    assert verdict_line(report, strict=False).endswith(
        f"; bench-bound: {reason}; latency figures overstate the server"
    )
    assert verdict_line(report, strict=True).endswith("; --strict: bench-bound")
    console = Console(record=True, width=200)
    print_report(report, console)
    rows = [line for line in console.export_text().splitlines() if "│ bench-bound" in line]
    assert len(rows) == 1 and f"yes: {reason}; latency figures overstate the server" in rows[0]


def bench_bound_row(report: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    print_report(report, console)
    row = next(line for line in console.export_text().splitlines() if "│ bench-bound" in line)
    return row.split("│")[2].strip()


def test_a_calm_bench_says_so() -> None:
    calm = replace(worker_result(1000, 1000), phase_s=2.0)
    report = fanout_report({0: calm, 1: calm})
    assert report["client"]["bench_bound"] == []
    assert "bench-bound" not in verdict_line(report, strict=True)
    assert bench_bound_row(report) == "no"
    # A run too short to judge says so rather than "no".
    short = fanout_report({0: worker_result(1000, 1000), 1: worker_result(1000, 1000)})
    assert bench_bound_row(short) == "not judged: a measured phase under 1 s"


def test_zero_connected_fails_without_strict() -> None:
    report = fanout_report({0: worker_result(0, 0), 1: worker_result(0, 0)}, failed=22)
    assert report["thresholds"][0]["failed"] is True
    assert exit_status(report, strict=False) == 1


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("p99<50ms", "p99", "<", 50.0),
        ("p99 < 250us", "p99", "<", 0.25),
        ("max<=2s", "max", "<=", 2000.0),
        ("loss<=0.1%", "loss", "<=", 0.001),
        ("loss<0.01", "loss", "<", 0.01),
        ("connected>=990", "connected", ">=", 990.0),
        ("rate>=90000", "rate", ">=", 90000.0),
    ],
)
def test_threshold_expressions_parse(text: str, metric: str, op: str, limit: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.op) == (metric, op)
    assert threshold.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("p99", "METRIC OP NUMBER"),
        ("p98<5ms", "unknown metric"),
        ("p99<5kg", "ms (the default)"),
        ("loss<=150%", "between 0 and 1"),
        ("lost<3ms", "plain number"),
    ],
)
def test_bad_threshold_expressions_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ThresholdError, match=re.escape(says)):
        parse_threshold(text)


def test_thresholds_measure_the_report() -> None:
    """Each metric reads its figure, in the expression's unit; no latency fails a bound."""
    report = {
        "messages": {"expected": 1000, "lost": 2, "duplicates": 0, "recv_per_s": 500.0},
        "connections": {"target": 100, "connected": 99, "failed": 1},
        "latency_us": {"p99": 12_000, "p50": None},
    }
    rows = {t: parse_threshold(t).check(report) for t in (
        "p99<12ms", "p99<=12ms", "loss<=0.2%", "connected>=99%", "connected>99", "failed<1",
        "rate>=500", "p50<1s",
    )}  # fmt: skip
    assert {t: r["failed"] for t, r in rows.items()} == {
        "p99<12ms": True,
        "p99<=12ms": False,
        "loss<=0.2%": False,
        "connected>=99%": False,
        "connected>99": True,
        "failed<1": True,
        "rate>=500": False,
        "p50<1s": True,
    }
    assert rows["loss<=0.2%"]["value"] == 0.002 and rows["connected>=99%"]["value"] == 0.99
