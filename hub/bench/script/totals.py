"""A script run's exact counts and trends: kept per worker by a :class:`Collector`, sent up as
one frozen :class:`ScriptTotals` (counts, and trends as encoded HdrHistograms, so that they
merge exactly however many workers or agents there were), merged, and made the report's
``script`` section. Pure: no sockets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from hub.bench.schema import Section
from hub.bench.stats import HIGHEST_US, merge_encoded, new_histogram

__all__ = ["EXPECT_LATENCY", "ITERATION_DURATION", "Collector", "ScriptTotals", "merge", "section"]

#: The built-in trends: each expect()'s wait, and each iteration's run time.
EXPECT_LATENCY = "expect_latency"
ITERATION_DURATION = "iteration_duration"

#: The most distinct errors kept apart; the others are counted under OTHER_ERRORS, so a script
#: whose messages differ each time (an id in them) cannot grow the worker without bound.
MAX_ERROR_KINDS = 100
OTHER_ERRORS = f"other errors (past the first {MAX_ERROR_KINDS} kinds)"
#: The most check and trend names: a name per VU or per message is a script's mistake.
MAX_NAMES = 1000

#: Percentiles of a trend, as its report row names them.
TREND_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


@dataclass(frozen=True, slots=True)
class ScriptTotals:
    """One worker's script counts; every field merges by addition."""

    iterations: int = 0  # completed without an exception
    failed: int = 0  # ended by an exception
    interrupted: int = 0  # still running when the run (or a ramp-down) ended
    dropped: int = 0  # arrival rate: due when no VU was free
    vus_peak: int = 0  # the most VUs running at once (summed over workers: an upper bound)
    errors: dict[str, int] = field(default_factory=dict)  # by distinct error
    tracebacks: dict[str, str] = field(default_factory=dict)  # the first of each error
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (passes, fails)
    trends: dict[str, bytes] = field(default_factory=dict)  # name: encoded histogram, µs
    expects: dict[str, int] = field(default_factory=dict)  # matched, timed_out, closed
    connects: dict[str, int] = field(default_factory=dict)  # opened, failed
    connect_errors: dict[str, int] = field(default_factory=dict)  # by type
    sent: int = 0  # frames the VUs sent
    received: int = 0  # frames the VUs got (the protocols' own frames not counted)


class Collector:
    """What one worker's VUs count, as they run."""

    def __init__(self) -> None:
        self.iterations = 0
        self.failed = 0
        self.interrupted = 0
        self.dropped = 0
        self.running = 0
        self.vus_peak = 0
        self.errors: Counter[str] = Counter()
        self.tracebacks: dict[str, str] = {}
        self.checks: dict[str, list[int]] = {}
        self.trends: dict[str, HdrHistogram] = {}
        self.expects: Counter[str] = Counter()
        self.connects: Counter[str] = Counter()
        self.connect_errors: Counter[str] = Counter()

    def check(self, name: str, ok: bool) -> None:
        counts = self.checks.get(name)
        if counts is None:
            _check_room(self.checks, "check", name)
            counts = self.checks[name] = [0, 0]
        counts[0 if ok else 1] += 1

    def add(self, trend: str, ms: float) -> None:
        """One value of a trend, in milliseconds (kept in µs, from 1 µs)."""
        hist = self.trends.get(trend)
        if hist is None:
            _check_room(self.trends, "metric", trend)
            hist = self.trends[trend] = new_histogram()
        hist.record_value(min(max(1, round(ms * 1000)), HIGHEST_US))

    def error(self, key: str, text: str) -> bool:
        """Count one error; True when it is the first of its kind here."""
        if key not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            key = OTHER_ERRORS
            text = f"{OTHER_ERRORS}: the next is {text}"
        self.errors[key] += 1
        if key in self.tracebacks:
            return False
        self.tracebacks[key] = text
        return True

    def vu_started(self) -> None:
        self.running += 1
        self.vus_peak = max(self.vus_peak, self.running)

    def vu_stopped(self) -> None:
        self.running -= 1

    def totals(self, sent: int, received: int) -> ScriptTotals:
        return ScriptTotals(
            iterations=self.iterations,
            failed=self.failed,
            interrupted=self.interrupted,
            dropped=self.dropped,
            vus_peak=self.vus_peak,
            errors=dict(self.errors),
            tracebacks=dict(self.tracebacks),
            checks={k: (v[0], v[1]) for k, v in self.checks.items()},
            trends={k: h.encode() for k, h in self.trends.items() if h.get_total_count()},
            expects=dict(self.expects),
            connects=dict(self.connects),
            connect_errors=dict(self.connect_errors),
            sent=sent,
            received=received,
        )


def _check_room(names: Mapping[str, object], what: str, name: str) -> None:
    if len(names) >= MAX_NAMES:
        raise ValueError(
            f"vu.{what}({name!r}): more than {MAX_NAMES} {what} names; name a {what} for what "
            "it measures, not per VU or per message (vu.id goes in the value, not the name)"
        )


def merge(parts: list[ScriptTotals]) -> ScriptTotals:
    """The totals of all workers: sums, and each trend's histograms added."""

    def added(name: str) -> dict[str, int]:
        out: Counter[str] = Counter()
        for part in parts:
            out.update(getattr(part, name))
        return dict(out)

    checks: dict[str, tuple[int, int]] = {}
    tracebacks: dict[str, str] = {}
    trends: dict[str, list[bytes]] = {}
    for part in parts:
        for name, (passes, fails) in part.checks.items():
            before = checks.get(name, (0, 0))
            checks[name] = (before[0] + passes, before[1] + fails)
        for key, text in part.tracebacks.items():
            tracebacks.setdefault(key, text)
        for name, blob in part.trends.items():
            trends.setdefault(name, []).append(blob)
    return ScriptTotals(
        iterations=sum(p.iterations for p in parts),
        failed=sum(p.failed for p in parts),
        interrupted=sum(p.interrupted for p in parts),
        dropped=sum(p.dropped for p in parts),
        vus_peak=sum(p.vus_peak for p in parts),
        errors=added("errors"),
        tracebacks=tracebacks,
        checks=checks,
        trends={name: merge_encoded(blobs).encode() for name, blobs in trends.items()},
        expects=added("expects"),
        connects=added("connects"),
        connect_errors=added("connect_errors"),
        sent=sum(p.sent for p in parts),
        received=sum(p.received for p in parts),
    )


def trend_row(hist: HdrHistogram) -> Section:
    """A trend's figures in µs: count, min, mean, percentiles, max."""
    count = hist.get_total_count()
    row: Section = {"count": count}
    if not count:
        empty = {"min": None, "mean": None, "max": None}
        return row | empty | {name: None for name, _ in TREND_PERCENTILES}
    row["min"] = hist.get_min_value()
    row["mean"] = round(hist.get_mean_value(), 1)
    for name, pct in TREND_PERCENTILES:
        row[name] = hist.get_value_at_percentile(pct)
    row["max"] = hist.get_max_value()
    return row


def section(totals: ScriptTotals, measured_s: float) -> Section:
    """The report's ``script`` section."""
    passes = sum(p for p, _ in totals.checks.values())
    fails = sum(f for _, f in totals.checks.values())
    trends = {name: trend_row(merge_encoded([b])) for name, b in sorted(totals.trends.items())}
    return {
        "vus_peak": totals.vus_peak,
        "iterations": {
            "completed": totals.iterations,
            "failed": totals.failed,
            "interrupted": totals.interrupted,
            "dropped": totals.dropped,
            "per_s": round(totals.iterations / measured_s, 2) if measured_s else None,
        },
        "errors": dict(sorted(totals.errors.items(), key=lambda kv: -kv[1])),
        "tracebacks": totals.tracebacks,
        "checks": {
            "passes": passes,
            "fails": fails,
            # None: no check ran, which proves nothing ('checks>99%' fails on it).
            "rate": round(passes / (passes + fails), 6) if passes + fails else None,
            "by_name": {
                name: {"passes": p, "fails": f} for name, (p, f) in sorted(totals.checks.items())
            },
        },
        "expects": {k: totals.expects.get(k, 0) for k in ("matched", "timed_out", "closed")},
        "trends_us": trends,
        "trend_histograms": {
            name: blob.decode("ascii") for name, blob in sorted(totals.trends.items())
        },
    }
