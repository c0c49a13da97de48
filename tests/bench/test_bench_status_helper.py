"""tests/support/bench_status.py: only a bench-bound verdict is taken off a run's status."""

from __future__ import annotations

from typing import Any

from support.bench_status import counted_status


def report(bound: list[str], lost: int = 0) -> dict[str, Any]:
    return {
        "scenario": "fanout",
        "connections": {"connected": 2, "target": 2, "failed": 0, "disconnected": 0},
        "messages": {"lost": lost, "duplicates": 0, "reordered": 0},
        "thresholds": [{"name": "lost = 0", "failed": lost > 0}],
        "client": {"bench_bound": bound},
    }


def test_only_the_bench_bound_verdict_is_taken_off() -> None:
    assert counted_status(1, report(["worker 0's event loop lagged 9 ms at p99"])) == 0
    assert counted_status(1, report(["worker 0 had work 99% of the time"], lost=3)) == 1
    assert counted_status(1, report([])) == 1
    assert counted_status(0, report([])) == 0
    assert counted_status(2, report(["x"])) == 2
