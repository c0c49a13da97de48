"""--rate-phases over a real hub: the publish rate steps through its phases, and the report
gives each phase what was sent, what arrived and its latency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, t
from test_bench_protocols import hub_url  # noqa: F401 - a fixture
from test_bench_targets import bench

from hub.bench.ramp import parse_rate_phases


def test_the_rate_steps_through_its_phases(
    hub_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    rc, report, stderr = bench(
        tmp_path,
        *("fanout", "--url", hub_url, "-n", "3", "-p", "2", "--procs", "1"),
        *("--rate-phases", "40/2s,160/2s", "--interval", "0.25", "--strict"),
    )
    assert rc == 0, stderr
    messages = report["messages"]
    assert (messages["lost"], messages["duplicates"], messages["reordered"]) == (0, 0, 0)
    slow, fast = report["rate_phases"]
    assert (slow["rate_per_s"], slow["start_s"], slow["seconds"]) == (40, 0, 2)
    assert (fast["rate_per_s"], fast["start_s"], fast["seconds"]) == (160, 2, 2)
    # Generous tolerance for a loaded machine: the schedule is exact, the clock is not.
    assert 60 <= slow["sent"] <= 100, slow
    assert 260 <= fast["sent"] <= 340, fast
    assert slow["sent"] + fast["sent"] == messages["sent"]
    # Every delivery is in one phase or the other; each phase has its own latency.
    assert slow["received"] + fast["received"] == messages["received"] == 3 * messages["sent"]
    assert fast["recv_per_s"] > 2.5 * slow["recv_per_s"]
    assert slow["latency_us"]["p99"] is not None and fast["latency_us"]["p99"] is not None


def test_rate_phases_parse() -> None:
    assert parse_rate_phases("100/10s, 1000/30") == ((100.0, 10.0), (1000.0, 30.0))
    assert parse_rate_phases("0.5/2.5s") == ((0.5, 2.5),)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("100", "expected RATE/SECONDSs"),
        ("0/1s", "above 0"),
        ("10/0s", "above 0"),
        ("", "expected RATE"),
    ],
)
def test_bad_rate_phases_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_rate_phases(text)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["fanout", "--rate-phases", "100/10s,fast"], "expected RATE/SECONDSs"),
        (["fanout", "--join-event", "join"], "add --protocol socketio"),
    ],
)
def test_bad_options_are_refused_before_starting(args: list[str], why: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.bench", *args, "--url", "ws://127.0.0.1:9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(60),
    )
    assert result.returncode == 2
    assert why in result.stderr
    assert "Traceback" not in result.stderr
