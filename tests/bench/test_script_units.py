"""The script engine's pure parts: --stages, the ramp's target, how iterations and VUs split
over workers, the totals merging exactly, thresholds on checks and trends, and what a bad
script is refused for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hub.bench.script.executors import run_executor, stage_target, worker_iterations
from hub.bench.script.load import ScriptError, load_data, load_script
from hub.bench.script.spec import RAMPING, Executor, parse_stages
from hub.bench.script.totals import (
    MAX_ERROR_KINDS,
    MAX_NAMES,
    OTHER_ERRORS,
    Collector,
    merge,
    section,
)
from hub.bench.script.vu import VU
from hub.bench.sizing import worker_indices
from hub.bench.thresholds import ThresholdError, parse_threshold


def test_stages_parse_units_and_refuse_what_is_not_a_stage() -> None:
    assert parse_stages("10s:100,30s:1000,10s:0") == ((10.0, 100), (30.0, 1000), (10.0, 0))
    assert parse_stages("500ms:5, 2m:3,1:0") == ((0.5, 5), (120.0, 3), (1.0, 0))
    for bad in ("10s", "10s:x", "0s:10", "10s:0,5s:0", "-1s:3"):
        with pytest.raises(ValueError, match="--stages"):
            parse_stages(bad)


def test_stage_target_is_linear_within_each_stage() -> None:
    stages = ((10.0, 100), (30.0, 1000), (10.0, 0))
    assert stage_target(stages, 0) == 0
    assert stage_target(stages, 5) == 50
    assert stage_target(stages, 10) == 100
    assert stage_target(stages, 25) == 550
    assert stage_target(stages, 45) == 500
    assert stage_target(stages, 50) == 0
    assert stage_target(stages, 99) == 0


@pytest.mark.parametrize("procs", [1, 2, 3, 7])
def test_iterations_and_vus_split_over_workers_add_up(procs: int) -> None:
    """Any split covers each global iteration and VU exactly once."""
    iterations = [n for w in range(procs) for n in worker_iterations(20.0, 2.5, w, procs)]
    assert sorted(iterations) == list(range(50))
    vus = [i for w in range(procs) for i in worker_indices(10, w, procs)]
    assert sorted(vus) == list(range(10))


def test_totals_merge_exactly() -> None:
    """Two workers' counts and trends add up to one report, as one worker's would."""
    one, two, both = Collector(), Collector(), Collector()
    for index, value in enumerate([1.0, 2.0, 3.0, 250.0, 4.0, 5.0]):
        part = one if index % 2 else two
        for collector in (part, both):
            collector.add("room_join", value)
            collector.check("ok", index != 3)
            collector.iterations += 1
    assert one.error("ValueError: x (s.py:3)", "traceback 1") is True
    assert one.error("ValueError: x (s.py:3)", "traceback 2") is False
    assert two.error("ValueError: x (s.py:3)", "traceback 3") is True
    merged = merge([one.totals(4, 5), two.totals(6, 7)])
    assert (merged.iterations, merged.sent, merged.received) == (6, 10, 12)
    assert merged.checks == {"ok": (5, 1)}
    assert merged.errors == {"ValueError: x (s.py:3)": 3}
    assert merged.tracebacks == {"ValueError: x (s.py:3)": "traceback 1"}
    report = section(merged, 2.0)
    alone = section(both.totals(10, 12), 2.0)
    assert report["trends_us"] == alone["trends_us"]
    assert report["trends_us"]["room_join"]["count"] == 6
    assert report["trends_us"]["room_join"]["max"] == pytest.approx(250_000, rel=0.001)
    assert report["checks"] == {
        "passes": 5,
        "fails": 1,
        "rate": round(5 / 6, 6),
        "by_name": {"ok": {"passes": 5, "fails": 1}},
    }
    assert report["iterations"]["per_s"] == 3.0


def test_thresholds_on_checks_and_trends() -> None:
    report = {
        "script": {
            "checks": {"rate": 0.995},
            "errors": {"a": 2, "b": 1},
            "iterations": {"completed": 40},
            "trends_us": {"room_join": {"p99": 900_000, "count": 7}, "expect_latency": {}},
        }
    }

    def value(text: str) -> float | None:
        return parse_threshold(text).measure(report)

    assert parse_threshold("checks>99%").limit == 0.99
    assert value("checks>99%") == 0.995
    assert not parse_threshold("checks>99%").check(report)["failed"]
    assert parse_threshold("checks>99.9%").check(report)["failed"]
    assert value("room_join.p99<1s") == 900.0
    assert not parse_threshold("room_join.p99<1s").check(report)["failed"]
    assert parse_threshold("room_join.p99<500ms").check(report)["failed"]
    assert value("room_join.count>=7") == 7
    assert value("errors<5") == 3
    assert value("iterations>=40") == 40
    # Not measured (no such trend, or no figure): the threshold fails, as a missing p99 does.
    assert parse_threshold("expect_latency.p95<200ms").check(report)["failed"]
    assert parse_threshold("nothing.p95<200ms").check(report)["failed"]
    assert parse_threshold("checks>99%").check({})["failed"]
    for bad, what in (
        ("room_join.p42<1s", "one of"),
        ("room_join.count<1s", "plain number"),
        ("room_join.p99<1kg", "ms"),
        ("checks>120%", "between 0 and 1"),
        ("errors<2%", "plain number"),
    ):
        with pytest.raises(ThresholdError, match=what):
            parse_threshold(bad)


def test_a_good_script_loads() -> None:
    user = load_script("import math\nasync def user(vu):\n    return math.pi\n", "ok.py")
    assert user.__name__ == "user"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("async def user(vu)\n    pass\n", "does not compile"),
        ("import no_such_module_here\nasync def user(vu): pass\n", "does not import"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("async def person(vu): pass\n", "defines no 'user'"),
        ("def user(vu): pass\n", "must be 'async def user"),
        ("async def user(): pass\n", "must take one argument"),
        ("user = 3\n", "must be 'async def user"),
    ],
)
def test_a_bad_script_is_refused_with_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        load_script(text, "bad.py")


def test_data_rows(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("name,token\nalice,t1\nbob,\n")
    assert load_data(str(users)) == ({"name": "alice", "token": "t1"}, {"name": "bob", "token": ""})
    users.write_text("name,token\n")
    with pytest.raises(ScriptError, match="no rows"):
        load_data(str(users))
    users.write_text("")
    with pytest.raises(ScriptError, match="no header"):
        load_data(str(users))
    with pytest.raises(ScriptError, match="--data"):
        load_data(str(tmp_path / "missing.csv"))


def test_distinct_errors_and_names_are_bounded() -> None:
    """A script whose errors carry an id each cannot grow the worker without bound, nor can
    one that names a check per VU."""
    collector = Collector()
    firsts = [collector.error(f"KeyError: {n}", "tb") for n in range(MAX_ERROR_KINDS + 50)]
    assert firsts.count(True) == MAX_ERROR_KINDS + 1  # the lumped kind is told once too
    assert len(collector.errors) == MAX_ERROR_KINDS + 1
    assert collector.errors[OTHER_ERRORS] == 50
    for n in range(MAX_NAMES):
        collector.check(f"check {n}", True)
    with pytest.raises(ValueError, match="not per VU"):
        collector.check("one too many", True)
    collector.check("check 0", False)  # a name it has still counts
    assert collector.checks["check 0"] == [1, 1]


def test_ramping_starts_vus_in_order_and_none_past_the_target() -> None:
    """On one worker's share: VUs start as the target passes their number, and none starts
    an iteration after the stages end."""
    starts: list[tuple[float, int]] = []

    async def iterate(vu: VU) -> None:
        starts.append((time.monotonic(), vu.id))
        await asyncio.sleep(0.02)

    async def main() -> float:
        vus = [VU(None, Collector(), i, {}) for i in range(0, 8, 2)]  # worker 0 of 2
        executor = Executor(RAMPING, 8, 0.0, ((0.4, 8), (0.2, 8), (0.2, 0)), graceful_stop_s=1)
        t0 = time.monotonic()
        await run_executor(executor, vus, iterate, t0, 0, 2)
        return t0

    t0 = asyncio.run(main())
    first = {}
    for at, vu_id in starts:
        first.setdefault(vu_id, at - t0)
    assert sorted(first) == [0, 2, 4, 6]
    assert first[0] <= first[2] <= first[4] <= first[6]
    assert first[6] >= 0.4 * 6.5 / 8 - 0.05  # VU 6 waits until the target passes 6.5
    assert max(at for at, _ in starts) - t0 < 0.8
