"""/stats' history: one worker's samples, a second apart, and their merge over every worker."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.metrics.families import FANOUT_BUCKETS_S
from hub.metrics.figures import SYNC_INTERVAL_S

__all__ = ["HISTORY_S", "Sample", "merge_history"]

#: How far back /stats' history reaches, in seconds (one sample per SYNC_INTERVAL_S).
HISTORY_S = 300


@dataclass(frozen=True, slots=True)
class Sample:
    """One worker's figures at one moment, for /stats' history: levels, and totals since the
    worker started (rates are the differences of two samples)."""

    t: float
    connections: int
    received: int
    delivered: int
    slow_consumer_disconnects: int
    #: Fan-out batches so far, per bucket of FANOUT_BUCKETS_S (and one over the last).
    fanout: tuple[int, ...]

    def to_json(self) -> list[Any]:
        return [
            round(self.t, 3),
            self.connections,
            self.received,
            self.delivered,
            self.slow_consumer_disconnects,
            list(self.fanout),
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Sample:
        t, connections, received, delivered, slow, fanout = row
        return cls(t, connections, received, delivered, slow, tuple(fanout))


def _upper_quantile(counts: list[int], q: float) -> float | None:
    """The upper bound of the fan-out bucket holding quantile ``q`` of ``counts`` (per
    bucket); the last finite bound for the overflow bucket; None for no batches."""
    total = sum(counts)
    if total <= 0:
        return None
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= q * total:
            return FANOUT_BUCKETS_S[min(i, len(FANOUT_BUCKETS_S) - 1)]
    return FANOUT_BUCKETS_S[-1]


def merge_history(
    rings: Iterable[Iterable[Sample]], *, since: float, until: float
) -> dict[str, Any]:
    """The hub's last minutes, second by second, from each worker's ring of samples.

    Each pair of consecutive samples of one worker gives its rates over that interval; they
    count for every whole second the interval ends or spans (a worker that sampled late,
    or skipped a second, still counts in each), and the worker's level (connections) at the
    interval's end likewise. Counts (slow-consumer closes, fan-out batches) count once, in
    the second the interval ends. The workers' figures are summed per second; the fan-out
    p99 comes from the summed buckets. Seconds after ``until`` (the newest second every
    live worker has sampled) are left out, so the last point never lacks a worker.
    """
    first, last = math.floor(since) + 1, math.floor(until)
    levels: dict[int, list[float]] = {}
    fanout: dict[int, list[int]] = {}
    for ring in rings:
        previous: Sample | None = None
        for sample in ring:
            if previous is not None:
                begin, end = math.floor(previous.t) + 1, math.floor(sample.t)
                dt = sample.t - previous.t
                if end < begin or dt < SYNC_INTERVAL_S / 2:
                    continue  # samples too close for a rate: the next one covers both
                received = max(0, sample.received - previous.received) / dt
                delivered = max(0, sample.delivered - previous.delivered) / dt
                for key in range(max(begin, first), min(end, last) + 1):
                    point = levels.setdefault(key, [0.0, 0.0, 0.0, 0.0])
                    point[0] += sample.connections
                    point[1] += received
                    point[2] += delivered
                if first <= end <= last:
                    point = levels.setdefault(end, [0.0, 0.0, 0.0, 0.0])
                    point[3] += max(
                        0, sample.slow_consumer_disconnects - previous.slow_consumer_disconnects
                    )
                    buckets = fanout.setdefault(end, [0] * len(sample.fanout))
                    for i, (n, m) in enumerate(zip(sample.fanout, previous.fanout, strict=True)):
                        buckets[i] += max(0, n - m)
            previous = sample
    keys = sorted(levels)
    return {
        "interval_s": SYNC_INTERVAL_S,
        "t": keys,
        "connections": [int(levels[k][0]) for k in keys],
        "received_per_s": [round(levels[k][1], 2) for k in keys],
        "delivered_per_s": [round(levels[k][2], 2) for k in keys],
        "slow_consumer_closes": [int(levels[k][3]) for k in keys],
        "fanout_p99_s": [_upper_quantile(fanout.get(k, []), 0.99) for k in keys],
    }
