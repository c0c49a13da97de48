"""Pure accounting: delivery (loss, duplicates, reordering) and latency histograms.

Nothing here does I/O or knows about sockets, so all of it is unit-tested directly.

Delivery is counted exactly, per publisher per receiver. Sequence numbers start at 0 and go up by
one per publisher. For each (receiver, publisher) stream, a tracker keeps the next sequence number
it expects and the set of numbers it skipped:

- ``seq == next``: in order (the fast path: one list lookup and one store).
- ``seq > next``: the numbers in between are missing, for now.
- ``seq < next`` and missing: it arrived late, after a higher one: **reordered**.
- ``seq < next`` and not missing: seen before: **duplicate**.

``unique`` counts distinct messages received, so ``lost = expected - unique`` once sending is over,
where ``expected`` is what each publisher sent times the receivers that should have had it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from hub.bench.schema import Section

__all__ = [
    "HIGHEST_US",
    "PERCENTILES",
    "LatencyRecorder",
    "StreamTracker",
    "Tally",
    "merge_encoded",
    "new_histogram",
    "summarize",
]

# Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


@dataclass
class Tally:
    """Delivery counts, shared by all the trackers of one process."""

    received: int = 0
    unique: int = 0
    duplicates: int = 0
    reordered: int = 0

    def add(self, other: Tally) -> None:
        self.received += other.received
        self.unique += other.unique
        self.duplicates += other.duplicates
        self.reordered += other.reordered

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
        }


class StreamTracker:
    """The delivery state of one receiver: one stream per publisher."""

    __slots__ = ("missing", "next_seq", "tally")

    def __init__(self, num_publishers: int, tally: Tally) -> None:
        self.next_seq = [0] * num_publishers
        # Allocated on the first gap only: most streams never have one.
        self.missing: dict[int, set[int]] | None = None
        self.tally = tally

    def record(self, pub_id: int, seq: int) -> None:
        """Count one received message from ``pub_id`` with sequence number ``seq``."""
        tally = self.tally
        tally.received += 1
        next_seq = self.next_seq
        if pub_id >= len(next_seq):
            next_seq.extend([0] * (pub_id + 1 - len(next_seq)))
        expected = next_seq[pub_id]
        if seq == expected:
            next_seq[pub_id] = seq + 1
            tally.unique += 1
            return
        if self.missing is None:
            self.missing = {}
        missing = self.missing.setdefault(pub_id, set())
        if seq > expected:
            missing.update(range(expected, seq))
            next_seq[pub_id] = seq + 1
            tally.unique += 1
        elif seq in missing:
            missing.discard(seq)
            tally.unique += 1
            tally.reordered += 1
        else:
            tally.duplicates += 1

    def unique_from(self, pub_id: int) -> int:
        """How many distinct messages from ``pub_id`` this receiver has."""
        if pub_id >= len(self.next_seq):
            return 0
        num_missing = len(self.missing.get(pub_id, ())) if self.missing else 0
        return self.next_seq[pub_id] - num_missing


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def merge_encoded(encoded: list[bytes]) -> HdrHistogram:
    """Merge histograms that other processes sent as ``HdrHistogram.encode()`` output."""
    merged = new_histogram()
    for blob in encoded:
        if blob:
            merged.decode_and_add(blob)
    return merged


def summarize(hist: HdrHistogram) -> Section:
    """Count, min, mean, percentiles and max of a histogram, in microseconds."""
    count = hist.get_total_count()
    if count == 0:
        return {"count": 0, "min": None, "mean": None, "max": None} | {
            name: None for name, _ in PERCENTILES
        }
    summary: Section = {
        "count": count,
        "min": hist.get_min_value(),
        "mean": round(hist.get_mean_value(), 1),
    }
    for name, pct in PERCENTILES:
        summary[name] = hist.get_value_at_percentile(pct)
    summary["max"] = hist.get_max_value()
    return summary


@dataclass
class LatencyRecorder:
    """Latencies in microseconds: appended cheaply on the hot path, histogrammed in batches.

    ``add`` is one C-level ``array.append``. ``flush`` (a few times a second) counts equal values
    with ``Counter`` (C code too) and records each distinct value once, with its count, into the
    run's histogram and into a fresh one for the interval, which it returns.
    """

    total: HdrHistogram = field(default_factory=new_histogram)
    pending: array[int] = field(default_factory=lambda: array("q"))

    def add(self, latency_us: int) -> None:
        self.pending.append(latency_us)

    def flush(self) -> HdrHistogram:
        interval = new_histogram()
        if not self.pending:
            return interval
        counts = Counter(self.pending)
        # Cleared in place: the receive path holds a bound ``pending.append``.
        del self.pending[:]
        total = self.total
        for value, count in counts.items():
            clamped = min(max(value, LOWEST_US), HIGHEST_US)
            total.record_value(clamped, count)
            interval.record_value(clamped, count)
        return interval
