"""hub bench over agents on loopback: three real ``hub bench agent`` processes, a real hub on a
real redis-server, one controller. The merged report is the sum of its agents' parts, a killed
agent is told apart by name, and a wrong token starts nothing anywhere."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import HubProcess, RedisServer, wait_until
from support.bench_agents import (
    Agent,
    pid_alive,
    read_report,
    run_bench,
    run_with_fault,
    start_bench,
)

from hub.bench.agents.codec import encode
from hub.bench.agents.frames import Channel
from hub.bench.agents.handshake import controller_side
from hub.bench.config import RunConfig
from hub.bench.verdict import exit_status, verdict_line

TOKEN = "agents-test-token"
#: The figures that add up over the agents to the report's ``messages``.
SUMMED = ("sent", "expected", "received", "unique", "lost", "duplicates", "reordered")


@pytest.fixture
def hub(redis_server: RedisServer, tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess("--redis", redis_server.url, "--workers", "1", log_dir=tmp_path / "logs")
    try:
        yield hub.wait_ready()
    finally:
        hub.stop()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[Agent]]:
    started = [Agent(TOKEN, tmp_path / f"agent-{n}.log") for n in range(3)]
    try:
        yield started
    finally:
        for agent in started:
            agent.stop()


def agent_args(agents: list[Agent], token: str = TOKEN) -> list[str]:
    return ["--agents", ",".join(a.name for a in agents), "--agent-token", token]


def assert_sums(report: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Each summed figure of the agents' rows is the report's."""
    for figure in SUMMED:
        assert sum(r[figure] for r in rows) == report["messages"][figure], figure
    assert sum(r["connected"] for r in rows) == report["connections"]["connected"]
    assert sum(r["latency_us"]["count"] for r in rows) == report["latency_us"]["count"]


@pytest.mark.parametrize(
    ("scenario", "args", "expected"),
    [
        # 30 subscribers hear 2 publishers' 300 messages: 9,000 deliveries.
        ("fanout", ["-n", "30", "-p", "2", "--messages", "300", "--rate", "300"], 9000),
        # 12 echo clients, 25 round trips each.
        ("echo", ["-n", "12", "--messages", "25"], 300),
        # 3 rounds to 30 sockets.
        ("broadcast-all", ["-n", "30", "--rounds", "3"], 90),
    ],
)
def test_three_agents_merge_into_one_report_that_is_the_sum_of_theirs(
    hub: HubProcess,
    agents: list[Agent],
    tmp_path: Path,
    scenario: str,
    args: list[str],
    expected: int,
) -> None:
    url = ["--url", f"ws://127.0.0.1:{hub.port}", "--channel", f"agents-{scenario}"]
    status, report, output = run_bench(
        tmp_path, scenario, *url, *args, "--procs", "1", *agent_args(agents), "--strict"
    )
    assert status == 0, output
    assert report is not None
    rows = report["agents"]
    assert [r["agent"] for r in rows] == [a.name for a in agents]
    assert [r["state"] for r in rows] == ["ok"] * 3
    # One worker each, numbered over the whole run: each took its own share of the sockets.
    assert [r["workers"] for r in rows] == [[0], [1], [2]]
    assert report["config"]["procs"] == 3
    messages = report["messages"]
    assert messages["expected"] == messages["received"] == messages["unique"] == expected
    assert messages["lost"] == messages["duplicates"] == messages["reordered"] == 0
    assert_sums(report, rows)
    assert all(r["received"] > 0 for r in rows)
    # The workers ran on the agents: their pids are the agents' children, not this run's.
    assert report["connections"]["agents_lost"] == 0
    for agent in agents:
        assert "workers [" in agent.log() and "workers stopped" in agent.log()
        assert agent.workers() == []  # every worker stopped with the run


def fanout(hub: HubProcess, channel: str, *args: str) -> list[str]:
    url = ["--url", f"ws://127.0.0.1:{hub.port}", "--channel", channel]
    return ["fanout", *url, "--procs", "1", *args]


def test_a_killed_agent_is_reported_by_name_and_its_part_is_no_loss(
    hub: HubProcess, agents: list[Agent], tmp_path: Path
) -> None:
    # One publisher (worker 0, on the first agent), 30 subscribers over the three agents.
    victim = agents[2]
    status, report, output, workers = run_with_fault(
        tmp_path,
        victim,
        lambda: os.kill(victim.proc.pid, signal.SIGKILL),
        *fanout(hub, "agents-killed", "-n", "30", "--rate", "200", "--duration", "6"),
        *agent_args(agents),
        sockets=10,
        after_s=1.5,  # well into the measured phase
    )
    # The server lost nothing: the run passes, and says an agent was lost.
    assert status == 0, output
    assert "1 agent lost, its part left out" in output
    assert report is not None
    rows = {r["agent"]: r for r in report["agents"]}
    lost = rows[victim.name]
    assert lost["state"] == "lost" and lost["workers"] == [2]
    assert lost["lost_while"] == "running" and lost["lost_after_s"] > 0
    assert lost["reason"] == "connection closed"
    assert lost["covered"]["connected"] == 10 and lost["covered"]["frames_received"] > 0
    told = f"agent {victim.name} was lost while running"
    assert any(w.startswith(told) for w in report["warnings"])
    assert report["connections"]["agents_lost"] == 1
    # Only the 20 receivers of the two other agents are expected to have had each message.
    messages = report["messages"]
    assert messages["sent"] > 0
    assert messages["expected"] == messages["sent"] * 20
    assert messages["lost"] == 0 and messages["unique"] == messages["expected"]
    counted = [r for r in report["agents"] if r["state"] == "ok"]
    assert len(counted) == 2
    assert_sums(report, counted)
    # --strict fails the run: it did not make the load asked for.
    assert exit_status(report, strict=True) == 1
    assert "--strict: 1 agent lost" in verdict_line(report, strict=True)
    # Its worker died with it: no load is left running.
    wait_until(lambda: not any(map(pid_alive, workers)), 15, "the killed agent's worker to exit")


def test_a_wrong_token_is_refused_and_nothing_runs_anywhere(
    hub: HubProcess, tmp_path: Path
) -> None:
    good = [Agent(TOKEN, tmp_path / f"good-{n}.log") for n in range(2)]
    other = Agent("another-token", tmp_path / "other.log")
    try:
        small = fanout(hub, "agents-token", "-n", "6", "--messages", "10")
        status, report, output = run_bench(tmp_path, *small, *agent_args([*good, other]))
        assert status == 2, output
        assert f"agent {other.name} refused the controller: wrong token" in output
        assert report is None
        assert "wrong token" in other.log()
        # The agents that took the token were never given work.
        for agent in [*good, other]:
            assert "workers [" not in agent.log()
        # And an agent that refused one controller serves the next.
        status, report, output = run_bench(tmp_path, *small, *agent_args([other], "another-token"))
        assert status == 0, output
        assert report is not None and report["messages"]["unique"] == 60
    finally:
        for agent in [*good, other]:
            agent.stop()


def test_an_agent_runs_one_controller_at_a_time(hub: HubProcess, tmp_path: Path) -> None:
    agent = Agent(TOKEN, tmp_path / "agent.log")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    try:
        # A connection that never proves the token holds nothing: the run after it goes on.
        host, port = agent.name.rsplit(":", 1)
        idle = socket.create_connection((host, int(port)))
        # conns through an agent: it holds the sockets, the controller reads nothing of it.
        args = ["conns", "--url", f"ws://127.0.0.1:{hub.port}", "-n", "8", "--hold", "4"]
        first = start_bench(first_dir, *args, "--procs", "2", *agent_args([agent]))
        try:
            wait_until(lambda: agent.sockets() >= 8, 60, "the first run's sockets")
            status, report, output = run_bench(second_dir, *args, *agent_args([agent]))
            assert status == 2, output
            assert f"agent {agent.name} refused the controller: busy" in output
            assert report is None
            out, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode == 0, out + err
        report = read_report(first_dir)
        assert report is not None
        assert report["connections"]["connected"] == 8
        assert report["agents"][0]["workers"] == [0, 1]
        idle.close()
    finally:
        agent.stop()


def test_an_agent_runs_nothing_but_a_hub_bench_worker(agents: list[Agent]) -> None:
    """An authenticated controller still cannot make an agent run any other function."""
    agent = agents[0]
    host, port = agent.name.rsplit(":", 1)
    channel = Channel(socket.create_connection((host, int(port)), timeout=10), agent.name)
    try:
        controller_side(channel, TOKEN)
        config = RunConfig(scenario="fanout", urls=["ws://127.0.0.1:9"], procs=1, num_sockets=1)
        channel.send(
            {
                "type": "run",
                "target": "os:system",
                "config": encode(config),
                "workers": [0],
                "offset_ns": 0,
            }
        )
        refusal = channel.recv(10)
    finally:
        channel.close()
    assert refusal == {
        "type": "error",
        "error": "refused the run: 'os:system' is not a hub.bench worker entry point",
    }
    wait_until(lambda: "refused the run" in agent.log(), 10, "the agent's log")
    assert agent.workers() == []
