"""The report: the JSON document of a run, from what the coordinator gathered.

``assemble`` is pure: it takes the workers' messages (``messages.py``) and the scenario's
:class:`~hub.bench.scenarios.context.Outcome`, and returns the report docs/bench.md documents.
Its table is ``table.py``'s, its plot ``plot.py``'s, its verdict ``verdict.py``'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

from hub.bench.config import RunConfig
from hub.bench.messages import Connected, Ready, Result
from hub.bench.overhead import bench_bound
from hub.bench.scenarios import scenario_for
from hub.bench.scenarios.context import Outcome
from hub.bench.schema import SCHEMA, Report, Section
from hub.bench.stats import merge_encoded, summarize
from hub.bench.verdict import BENCH_BOUND, OVERSTATE, exit_status, plural, thresholds

__all__ = ["SCHEMA", "Run", "aggregate_timeline", "assemble", "rate_phase_rows"]

SATURATED_CPU_PERCENT = 90.0


@dataclass(frozen=True)
class Run:
    """What the coordinator gathered over one run, by worker number where per worker."""

    started_at: float  # wall clock
    ready: dict[int, Ready]
    connected: dict[int, Connected]
    connect_s: float
    results: dict[int, Result]
    #: Wall clock at the start signal, to line the measured phase up with the server's own
    #: figures (its CPU, its metrics) without the connecting and the closing around it.
    measured_started_at: float
    measured_s: float
    outcome: Outcome
    #: (seconds since the measured phase began, a worker's interval histogram)
    timeline: list[tuple[float, bytes]]
    #: Sockets connected over all workers, once per interval, from the start of the run.
    connections_timeline: list[dict[str, float]]


def assemble(config: RunConfig, run: Run) -> Report:
    """Build the full report from the coordinator's notes and each worker's result."""
    workers = [run.results[n] for n in sorted(run.results)]
    errors: Counter[str] = Counter()
    for result in workers:
        errors.update(result.errors)
    latency = merge_encoded([r.hist for r in workers])
    report: Report = {
        "schema": SCHEMA,
        "scenario": config.scenario,
        "started_at": run.started_at,
        "worker_pids": [run.ready[n].pid for n in sorted(run.ready)],
        "connections": connections(config, run, workers, errors),
        "measured_started_at": run.measured_started_at,
        "measured_s": round(run.measured_s, 4),
        "connections_timeline": run.connections_timeline,
        "config": dataclasses.asdict(config),
        "messages": messages(config, run, workers),
        "latency_us": summarize(latency),
        # The whole histogram, HdrHistogram-encoded: what 'hub bench plot' draws it from.
        "latency_histogram": latency.encode().decode("ascii") if latency.get_total_count() else "",
        "timeline": aggregate_timeline(run.timeline, config.interval_s),
    }
    if config.rate_phases:
        # What arrived after the workers' last progress tick is in their results.
        tail = [(math.inf, r.snapshot.interval_hist) for r in workers]
        report["rate_phases"] = rate_phase_rows(
            config, [*run.timeline, *tail], run.outcome.sent_by_phase
        )
    report["client"] = client(run, workers)
    # conns times no messages: its loop may lag without distorting anything.
    report["client"]["bench_bound"] = (
        bench_bound(report["client"]["procs"], report["latency_us"]["p99"])
        if config.scenario != "conns"
        else []
    )
    outcome = run.outcome
    for name, section in (
        ("churn", outcome.churn),
        ("server_memory", outcome.server_memory),
        ("rounds", outcome.rounds),
        ("script", outcome.script),
    ):
        if section is not None:
            report[name] = section
    for name, figures in outcome.overrides.items():
        report[name].update(figures)
    report["warnings"] = warnings(config, report, errors)
    report["thresholds"] = thresholds(config, report)
    report["ok"] = exit_status(report, strict=True) == 0
    return report


def connections(
    config: RunConfig, run: Run, workers: list[Result], errors: Counter[str]
) -> Section:
    """The report's ``connections``: how many sockets opened, how fast, and what failed."""
    connected = run.connected.values()
    num_connected = sum(c.connected for c in connected)
    connect_s = run.connect_s
    return {
        "target": config.num_sockets + config.num_publishers,
        "connected": num_connected,
        "failed": sum(c.failed for c in connected),
        "connect_s": round(connect_s, 4),
        "connect_rate_per_s": round(num_connected / connect_s, 1) if connect_s else None,
        "disconnected": sum(r.snapshot.disconnected for r in workers),
        "errors": dict(errors),
    }


def messages(config: RunConfig, run: Run, workers: list[Result]) -> Section:
    """The report's ``messages``: sent, expected, received, and what went wrong with them."""
    receivers_at_start = sum(c.receivers_connected for c in run.connected.values())
    received = sum(r.tally.received for r in workers)
    unique = sum(r.tally.unique for r in workers)
    sent = sum(r.snapshot.sent for r in workers)
    outcome = run.outcome
    expected = scenario_for(config).expected(outcome, sent, receivers_at_start)
    measured_s = round(run.measured_s, 4)
    send_s = outcome.send_s or measured_s
    lost = max(0, expected - unique)
    section: Section = {
        "sent": sent,
        "expected": expected,
        "received": received,
        "unique": unique,
        "lost": lost,
        # In percent of the expected deliveries: what --threshold 'loss<1%' checks.
        "loss_percent": round(100 * lost / expected, 4) if expected else 0.0,
        "duplicates": sum(r.tally.duplicates for r in workers),
        "reordered": sum(r.tally.reordered for r in workers),
        "unexpected": max(0, unique - expected),
        "other_frames": sum(r.other_frames for r in workers),
        "foreign": sum(r.foreign for r in workers),
        "frames_received": sum(r.snapshot.frames for r in workers),
        "bytes_received": sum(r.snapshot.payload_bytes for r in workers),
        "send_per_s": round(sent / send_s, 1) if send_s else None,
        "recv_per_s": round(received / measured_s, 1) if measured_s else None,
    }
    if outcome.sent_by_pub is not None:
        section["sent_by_publisher"] = {str(k): v for k, v in sorted(outcome.sent_by_pub.items())}
    return section


def client(run: Run, workers: list[Result]) -> Section:
    """The report's ``client``: each worker process's CPU, memory and loop lag."""
    procs: list[Section] = [
        {
            "worker": n,
            "pid": r.pid,
            "sockets": r.receivers,
            "cpu_s": round(r.cpu_s, 3),
            "cpu_percent_phase": round(r.cpu_percent_phase, 1),
            "cpu_percent_max": round(r.cpu_percent_max, 1),
            "rss_bytes": r.rss_bytes,
            "run_wait_percent_phase": round(r.run_wait_percent_phase, 1),
            "phase_s": round(r.phase_s, 3),
            "loop_lag_ms": r.loop_lag,
        }
        for n, r in zip(sorted(run.results), workers, strict=True)
    ]
    saturated = [p["worker"] for p in procs if p["cpu_percent_max"] > SATURATED_CPU_PERCENT]
    num_connected = sum(c.connected for c in run.connected.values())
    rss_delta = sum(c.rss_after - c.rss_before for c in run.connected.values())
    memory = {
        "rss_delta_bytes": rss_delta,
        "per_socket_bytes": round(rss_delta / num_connected, 1) if num_connected else None,
    }
    return {"procs": procs, "saturated_workers": saturated, "memory": memory}


def warnings(config: RunConfig, report: Report, errors: Counter[str]) -> list[str]:
    """What a reader of the figures must know: the bench was the bottleneck, sockets failed,
    messages went wrong, the server's memory could not be read."""
    out = []
    saturated = report["client"]["saturated_workers"]
    if saturated:
        workers = "worker " if len(saturated) == 1 else "workers "
        out.append(
            f"{workers}{', '.join(map(str, saturated))} passed {SATURATED_CPU_PERCENT:.0f}% of "
            "a core: the bench may be the bottleneck; add --procs"
        )
    bound = report["client"]["bench_bound"]
    if bound:
        out.append(f"{BENCH_BOUND}: {'; '.join(bound)}; {OVERSTATE}")
    connections = report["connections"]
    if connections.get("failed"):
        failed = connections["failed"]
        line = f"{plural(failed, 'connection')} failed: {dict(errors)}"
        if any(name.startswith("SSLCertVerificationError") for name in errors):
            line += (
                "; the server's certificate is not trusted: --ca-file PEM trusts its CA, "
                "--insecure checks no certificate"
            )
        out.append(line)
    if report.get("churn", {}).get("failed"):
        out.append(f"{plural(report['churn']['failed'], 'churn reconnection')} failed")
    if connections["disconnected"]:
        closed = connections["disconnected"]
        out.append(f"{plural(closed, 'socket was', 'sockets were')} closed during the run")
    messages = report["messages"]
    for name, one, many in (
        ("lost", "message lost", "messages lost"),
        ("duplicates", "duplicate", "duplicates"),
        ("reordered", "message reordered", "messages reordered"),
    ):
        if messages[name]:
            out.append(plural(messages[name], one, many))
    if messages["foreign"]:
        out.append(
            f"{plural(messages['foreign'], 'message')} of another bench run on the same "
            "channels (counted apart, not in this run's figures)"
        )
    memory_error = report.get("server_memory", {}).get("error")
    if memory_error:
        out.append(f"the server's memory was not read: {memory_error}")
    return out


def aggregate_timeline(entries: list[tuple[float, bytes]], interval_s: float) -> list[Section]:
    """Merge the workers' interval histograms into one row per interval."""
    buckets: dict[int, list[bytes]] = {}
    for t_s, hist in entries:
        buckets.setdefault(int(t_s // interval_s), []).append(hist)
    rows = []
    for bucket in sorted(buckets):
        summary = summarize(merge_encoded(buckets[bucket]))
        rows.append(
            {
                "t_s": round((bucket + 1) * interval_s, 3),
                "count": summary["count"],
                "per_s": round(summary["count"] / interval_s, 1),
                "p50": summary["p50"],
                "p99": summary["p99"],
                "max": summary["max"],
            }
        )
    return rows


def rate_phase_rows(
    config: RunConfig, entries: list[tuple[float, bytes]], sent_by_phase: list[int]
) -> list[Section]:
    """Each --rate-phases phase: what was sent in it, and what arrived in its time window
    (the workers' interval histograms, each placed at its interval's middle; the drain counts
    in the last phase)."""
    ends: list[float] = []
    elapsed = 0.0
    for _rate, seconds in config.rate_phases:
        elapsed += seconds
        ends.append(elapsed)
    hists: list[list[bytes]] = [[] for _ in ends]
    for t_s, hist in entries:
        if not hist:
            continue
        middle = t_s - config.interval_s / 2
        phase = next((n for n, end in enumerate(ends) if middle < end), len(ends) - 1)
        hists[phase].append(hist)
    rows = []
    for phase, (rate, seconds) in enumerate(config.rate_phases):
        summary = summarize(merge_encoded(hists[phase]))
        sent = sent_by_phase[phase] if phase < len(sent_by_phase) else None
        rows.append(
            {
                "phase": phase,
                "rate_per_s": rate,
                "start_s": round(ends[phase] - seconds, 3),
                "seconds": seconds,
                "sent": sent,
                "send_per_s": None if sent is None else round(sent / seconds, 1),
                "received": summary["count"],
                "recv_per_s": round(summary["count"] / seconds, 1),
                "latency_us": {k: summary[k] for k in ("p50", "p99", "max")},
            }
        )
    return rows
