"""A run where the bench itself is the bottleneck says so: a row of the table, the verdict line,
the report's ``client.bench_bound``, and exit status 1 under --strict.

The bottleneck is real, not simulated: the bench (one worker process, 500 subscribers at
200 messages/s: 100k deliveries/s to read, about a third of a core) is pinned to one CPU that
four busy sibling processes share with it, so it gets about a fifth of that CPU; the hub runs
on the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, free_port, stop_process, t
from test_bench_e2e import wait_listening

BURNERS = 4
BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def pinned(cpus: set[int]) -> object:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


@pytest.fixture
def crowded_cpu() -> Iterator[int]:
    """One CPU of this process's, with BURNERS processes spinning on it (bounded to a minute)."""
    cpu = min(os.sched_getaffinity(0))
    burners = [
        subprocess.Popen(
            [sys.executable, "-c", BURN.format(seconds=t(60))],
            preexec_fn=pinned({cpu}),  # type: ignore[arg-type]
        )
        for _ in range(BURNERS)
    ]
    try:
        yield cpu
    finally:
        for burner in burners:
            stop_process(burner, t(5))  # type: ignore[arg-type]


@pytest.fixture
def hub_url(crowded_cpu: int) -> Iterator[str]:
    others = os.sched_getaffinity(0) - {crowded_cpu}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--workers", "1", "--port", str(port)],
        cwd=ROOT,
        preexec_fn=pinned(others) if others else None,  # type: ignore[arg-type]
    )
    try:
        wait_listening(port, process, t(20))
        yield f"ws://127.0.0.1:{port}"
    finally:
        stop_process(process, t(10))


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the hub needs a CPU of its own, apart from the bench"
)
def test_a_starved_bench_says_it_is_the_bottleneck(
    hub_url: str, crowded_cpu: int, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "hub.bench", "fanout", "--url", hub_url, "-n", "500",
            "--procs", "1", "--rate", "200", "-d", "2", "--drain-timeout", "2",
            "--json", str(out), "--strict",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(120),
        preexec_fn=pinned({crowded_cpu}),  # type: ignore[arg-type]
    )  # fmt: skip
    report = json.loads(out.read_text())
    reasons = report["client"]["bench_bound"]
    assert reasons, (report["client"], result.stdout)
    assert all(reason.startswith("worker 0") for reason in reasons)
    assert result.returncode == 1, result.stdout
    # The table's row and the verdict line, as a CI log shows them.
    row = next(line for line in result.stdout.splitlines() if "│ bench-bound" in line)
    assert "yes" in row
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("hub bench fanout: FAILED:"), verdict
    assert "bench-bound: worker 0" in verdict
    assert "latency figures overstate the server" in verdict
    assert report["ok"] is False
