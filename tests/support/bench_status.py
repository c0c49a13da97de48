"""The exit status a ``hub bench`` test of counting checks."""

from __future__ import annotations

from typing import Any

from hub.bench.verdict import exit_status


def counted_status(returncode: int, report: dict[str, Any]) -> int:
    """``returncode`` less a bench-bound verdict (``client.bench_bound``): a loaded test machine
    can lag the bench's own loop past the verdict's floor, which says nothing of what these tests
    check (connections and exact counts). ``tests/bench/test_bench_bound.py`` checks the verdict.
    Any other fault still fails, with or without --strict."""
    client = report.get("client") or {}
    if returncode != 1 or not client.get("bench_bound"):
        return returncode
    return exit_status({**report, "client": {**client, "bench_bound": []}}, strict=True)
