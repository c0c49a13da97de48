"""Each agent's part of the run, for the report: one row per agent, and what a lost one covered.

Pure: it takes what the controller saw of each agent (:class:`AgentRecord`) and the
coordinator's :class:`~hub.bench.report.Run`, whose totals already leave a lost agent's
workers out. A counted agent's row adds up to the totals: its received, unique, duplicates,
reordered and expected (the scenario's own rule, over its receivers) sum over the agents to the
report's ``messages``. A lost agent's row says when and why it was lost, and what it had done
by its last progress report; its sockets are in no expected count, so nothing it missed is
counted as the server's loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.bench.config import RunConfig
from hub.bench.messages import Connected, Snapshot
from hub.bench.report import Run
from hub.bench.scenarios import scenario_for
from hub.bench.schema import Report, Section
from hub.bench.sizing import worker_indices
from hub.bench.stats import merge_encoded, summarize
from hub.bench.verdict import exit_status, plural

__all__ = ["AgentRecord", "LostPart", "add_agents", "clock_skew", "phase_of", "table_rows"]

#: What the run was doing after each command the controller sent last.
PHASES = {
    "": "starting",
    "Connect": "connecting",
    "Start": "running",
    "Drain": "draining",
    "Round": "sending rounds",
    "Finish": "finishing",
}


def phase_of(last_command: str) -> str:
    return PHASES.get(last_command, f"after {last_command}")


@dataclass(frozen=True)
class LostPart:
    """How an agent was lost."""

    reason: str
    phase: str
    #: Seconds after the measured phase began (None: before it).
    after_s: float | None


@dataclass
class AgentRecord:
    """What the controller knows of one agent: who it is, its workers, what they said."""

    name: str  # HOST:PORT, as --agents gave it
    host: str = ""  # its hostname
    workers: list[int] = field(default_factory=list)
    offset_ns: int = 0
    rtt_ns: int = 0
    connected: dict[int, Connected] = field(default_factory=dict)
    progress: dict[int, Snapshot] = field(default_factory=dict)  # each worker's last
    progress_s: float | None = None  # its last progress, seconds after the measured start
    lost: LostPart | None = None


def add_agents(config: RunConfig, run: Run, agents: list[AgentRecord], report: Report) -> None:
    """Add the ``agents`` rows to ``report``, warn of each lost agent, and redo its verdict."""
    rows = []
    lost = [a for a in agents if not all(n in run.results for n in a.workers)]
    for agent in agents:
        rows.append(_lost_row(agent) if agent in lost else _counted_row(config, run, agent))
    report["agents"] = rows
    report["connections"]["agents_lost"] = len(lost)
    report["warnings"].extend(_warning(config, agent) for agent in lost)
    skew = clock_skew(config, agents)
    if skew:
        report["warnings"].append(skew)
    report["ok"] = exit_status(report, strict=True) == 0


#: Clocks further apart than this (past the round trips) are not one clock.
SKEW_WARN_NS = 1_000_000
#: Where a message is timed against the stamp of a worker on another agent.
CROSS_HOST_LATENCY = ("fanout", "broadcast-all")


def clock_skew(config: RunConfig, agents: list[AgentRecord]) -> str | None:
    """A warning when the agents' monotonic clocks differ (separate machines) in a scenario
    that times a message sent on one agent where another receives it."""
    if len(agents) < 2 or config.scenario not in CROSS_HOST_LATENCY:
        return None
    low = min(agents, key=lambda a: a.offset_ns)
    high = max(agents, key=lambda a: a.offset_ns)
    if high.offset_ns - low.offset_ns <= SKEW_WARN_NS + (low.rtt_ns + high.rtt_ns) // 2:
        return None
    apart = (high.offset_ns - low.offset_ns) / 1e6
    return (
        f"the agents' clocks differ by up to {apart:,.1f} ms ({low.name} and {high.name}): "
        "they are separate machines, and a message sent on one and received on another is "
        "timed across two clocks, so its latency is off by their difference; its counts are "
        "exact (docs/bench.md, 'Agents: many load hosts')"
    )


def _base(agent: AgentRecord) -> Section:
    return {
        "agent": agent.name,
        "host": agent.host,
        "workers": agent.workers,
        "clock_offset_us": round(agent.offset_ns / 1000, 1),
        "clock_rtt_us": round(agent.rtt_ns / 1000, 1),
    }


def _counted_row(config: RunConfig, run: Run, agent: AgentRecord) -> Section:
    results = [run.results[n] for n in agent.workers]
    connected = [run.connected[n] for n in agent.workers if n in run.connected]
    receivers = sum(c.receivers_connected for c in connected)
    sent = sum(r.snapshot.sent for r in results)
    unique = sum(r.tally.unique for r in results)
    expected = scenario_for(config).expected(run.outcome, sent, receivers)
    latency = summarize(merge_encoded([r.hist for r in results]))
    return _base(agent) | {
        "state": "ok",
        "connected": sum(c.connected for c in connected),
        "failed": sum(c.failed for c in connected),
        "receivers": receivers,
        "sent": sent,
        "expected": expected,
        "received": sum(r.tally.received for r in results),
        "unique": unique,
        "lost": max(0, expected - unique),
        "duplicates": sum(r.tally.duplicates for r in results),
        "reordered": sum(r.tally.reordered for r in results),
        "latency_us": {k: latency[k] for k in ("count", "p50", "p99", "max")},
        "cpu_percent_max": max((round(r.cpu_percent_max, 1) for r in results), default=0.0),
    }


def _lost_row(agent: AgentRecord) -> Section:
    assert agent.lost is not None
    snapshots = list(agent.progress.values())
    connected = list(agent.connected.values())
    return _base(agent) | {
        "state": "lost",
        "reason": agent.lost.reason,
        "lost_while": agent.lost.phase,
        "lost_after_s": agent.lost.after_s,
        # What it had done by its last progress report: told, never counted in the totals.
        "covered": {
            "connected": sum(c.connected for c in connected) if connected else None,
            "as_of_s": agent.progress_s,
            "sent": sum(s.sent for s in snapshots),
            "frames_received": sum(s.frames for s in snapshots),
            "unique": sum(s.unique for s in snapshots),
        },
    }


def _warning(config: RunConfig, agent: AgentRecord) -> str:
    assert agent.lost is not None
    lost = agent.lost
    when = f" {lost.after_s:.1f} s into the measured phase" if lost.after_s is not None else ""
    covered = _lost_row(agent)["covered"]
    line = (
        f"agent {agent.name} was lost while {lost.phase}{when} ({lost.reason}): its "
        f"{plural(len(agent.workers), 'worker')} {agent.workers} had "
        f"{'?' if covered['connected'] is None else format(covered['connected'], ',')} sockets "
        f"and {covered['frames_received']:,} frames received by its last report; its sockets are "
        "left out of the expected deliveries, so nothing it missed counts as the server's loss"
    )
    publishers = [
        pub
        for number in agent.workers
        for pub in worker_indices(config.num_publishers, number, config.procs)
    ]
    if publishers:
        line += (
            f"; it held publishers {publishers}, whose sends are unknown: what the other agents "
            "got of them counts as unexpected, and the loss figure is not exact"
        )
    return line


def table_rows(report: Report) -> list[tuple[str, str]]:
    """The final table's row for each agent (none without agents)."""
    rows = []
    for agent in report.get("agents", []):
        name = f"agent {agent['agent']} ({agent['host']}, workers {agent['workers']})"
        if agent["state"] == "ok":
            p99 = agent["latency_us"]["p99"]
            rows.append(
                (
                    f"{name}: sockets / received / lost / p99",
                    f"{agent['connected']:,} / {agent['received']:,} / {agent['lost']:,} / "
                    f"{'-' if p99 is None else f'{p99:,} µs'}",
                )
            )
        else:
            after = agent["lost_after_s"]
            when = "" if after is None else f" at {after:.1f} s"
            rows.append((name, f"LOST while {agent['lost_while']}{when}: {agent['reason']}"))
    return rows
