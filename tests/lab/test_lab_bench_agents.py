"""hub bench agents on separate hosts of the lab: a hub and its redis-server on two hosts, one
agent on each of two load hosts, the controller in the test process. The merged report is the
sum of the agents' parts; an agent cut off by the network (no FIN, no RST) is lost by name
after its silence, its part left out, and it stops its own load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import HubProcess, RedisServer, wait_until
from support.bench_agents import Agent, pid_alive, run_bench, run_with_fault
from support.hosts import Lab

from hub.bench.agents.server import SILENCE_S

TOKEN = "lab-agents-token"


@pytest.fixture
def setup(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, HubProcess, list[Agent]]]:
    redis_host, hub_host, load1, load2 = lab.add_hosts("redis", "hub", "load1", "load2")
    redis = RedisServer(host=redis_host)
    redis.start()
    hub = HubProcess("--redis", redis.url, "--workers", "1", host=hub_host, log_dir=tmp_path)
    agents: list[Agent] = []
    try:
        hub.wait_ready()
        agents += [Agent(TOKEN, tmp_path / f"{h.name}.log", host=h) for h in (load1, load2)]
        yield lab, hub, agents
    finally:
        for agent in agents:
            agent.stop()
        hub.stop()
        redis.close()


def bench_args(hub: HubProcess, agents: list[Agent], *args: str) -> list[str]:
    return [
        *("fanout", "--url", f"ws://{hub.address}:{hub.port}", "--procs", "1", *args),
        *("--agents", ",".join(a.name for a in agents), "--agent-token", TOKEN),
    ]


def test_two_agents_on_two_hosts_make_one_report_that_is_their_sum(
    setup: tuple[Lab, HubProcess, list[Agent]], tmp_path: Path
) -> None:
    _, hub, agents = setup
    args = bench_args(hub, agents, "-n", "20", "-p", "2", "--messages", "400", "--rate", "400")
    status, report, output = run_bench(tmp_path, *args, "--strict")
    assert status == 0, output
    assert report is not None
    rows = report["agents"]
    assert [r["agent"] for r in rows] == [a.name for a in agents]
    assert all(r["agent"].startswith("198.18.") for r in rows)
    messages = report["messages"]
    # 20 subscribers, 10 on each host, hear the 400 messages of 2 publishers, one on each.
    assert messages["expected"] == messages["unique"] == messages["received"] == 8000
    assert [r["received"] for r in rows] == [4000, 4000]
    assert [r["sent"] for r in rows] == [200, 200]
    for figure in ("sent", "expected", "received", "unique", "lost", "duplicates", "reordered"):
        assert sum(r[figure] for r in rows) == messages[figure], figure
    assert sum(r["latency_us"]["count"] for r in rows) == report["latency_us"]["count"]
    # Namespaces of one kernel share its monotonic clock: the measured offset is near zero.
    assert all(abs(r["clock_offset_us"]) <= max(r["clock_rtt_us"], 1000) for r in rows)


def test_an_agent_cut_off_by_the_network_is_lost_by_name_and_stops_its_load(
    setup: tuple[Lab, HubProcess, list[Agent]], tmp_path: Path
) -> None:
    lab, hub, agents = setup
    victim = agents[1]
    args = bench_args(hub, agents, "-n", "20", "--rate", "100", "--duration", "9")
    victim_host = lab["load2"]
    status, report, output, workers = run_with_fault(
        tmp_path,
        victim,
        lambda: lab.isolate(victim_host),
        *args,
        sockets=10,
        after_s=1.5,
    )
    assert status == 0, output
    assert report is not None
    lost = _row(report, victim.name)
    assert lost["state"] == "lost"
    assert lost["reason"] == f"silent for {SILENCE_S:g} s"
    assert lost["lost_while"] in ("running", "draining")
    assert lost["covered"]["connected"] == 10
    messages = report["messages"]
    # The first agent's 10 subscribers had every message; the victim's count for nothing.
    assert messages["expected"] == messages["sent"] * 10 == messages["unique"]
    assert messages["lost"] == 0
    assert _row(report, agents[0].name)["unique"] == messages["unique"]
    # Cut off from its controller, the agent stopped its workers by itself.
    wait_until(lambda: not any(map(pid_alive, workers)), 30, "the cut-off agent's workers")
    lab.heal()


def _row(report: dict[str, Any], name: str) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {r["agent"]: r for r in report["agents"]}
    return rows[name]
