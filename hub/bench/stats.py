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
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

from hub.bench.hdr import mean_value, record_batch, value_at_percentile
from hub.bench.schema import Section

__all__ = [
    "HIGHEST_US",
    "PERCENTILES",
    "LatencyRecorder",
    "Ledger",
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
    """Delivery counts: one process's (``Ledger.tally``), or several added up."""

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


class Ledger:
    """The delivery state of one process: a tracker per receiver, and their totals.

    The totals are summed when asked for (a few times a second), not counted per message: an
    in-order message, nearly every one, only moves its stream's next sequence number. Only the
    rare cases (a gap, a late or a repeated message) count as they happen. So
    ``unique = sum of every stream's next_seq - the numbers still missing`` and
    ``received = unique + duplicates``: exact, whenever they are read.
    """

    __slots__ = ("duplicates", "missing", "reordered", "trackers")

    def __init__(self) -> None:
        self.trackers: dict[int, StreamTracker] = {}
        self.missing = 0  # numbers skipped and not (yet) arrived, over all streams
        self.duplicates = 0
        self.reordered = 0

    def tracker(self, key: int, num_publishers: int) -> StreamTracker:
        """The tracker of receiver ``key`` (its socket number): a socket opened again in its
        place (``conns --churn``) goes on with it."""
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = StreamTracker(num_publishers, self)
        return tracker

    def unique(self) -> int:
        return sum([sum(t.next_seq) for t in self.trackers.values()]) - self.missing

    def tally(self) -> Tally:
        unique = self.unique()
        return Tally(
            received=unique + self.duplicates,
            unique=unique,
            duplicates=self.duplicates,
            reordered=self.reordered,
        )


class StreamTracker:
    """The delivery state of one receiver: one stream per publisher."""

    __slots__ = ("ledger", "missing", "next_seq")

    def __init__(self, num_publishers: int, ledger: Ledger) -> None:
        self.next_seq = [0] * num_publishers
        # Allocated on the first gap only: most streams never have one.
        self.missing: dict[int, set[int]] | None = None
        self.ledger = ledger

    def record(self, pub_id: int, seq: int) -> None:
        """Count one received message from ``pub_id`` with sequence number ``seq``.
        (``sockets._Recording.on_message`` inlines the first test: keep them the same.)"""
        next_seq = self.next_seq
        if pub_id < len(next_seq) and next_seq[pub_id] == seq:
            next_seq[pub_id] = seq + 1
            return
        self.record_out_of_order(pub_id, seq)

    def record_out_of_order(self, pub_id: int, seq: int) -> None:
        """A message that is not its stream's next one: after a gap, late, or seen before."""
        next_seq = self.next_seq
        if pub_id >= len(next_seq):
            next_seq.extend([0] * (pub_id + 1 - len(next_seq)))
        expected = next_seq[pub_id]
        if seq == expected:
            next_seq[pub_id] = seq + 1
            return
        if self.missing is None:
            self.missing = {}
        missing = self.missing.setdefault(pub_id, set())
        ledger = self.ledger
        if seq > expected:
            missing.update(range(expected, seq))
            ledger.missing += seq - expected
            next_seq[pub_id] = seq + 1
        elif seq in missing:
            missing.discard(seq)
            ledger.missing -= 1
            ledger.reordered += 1
        else:
            ledger.duplicates += 1

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
        "mean": round(mean_value(hist), 1),
    }
    for name, pct in PERCENTILES:
        summary[name] = value_at_percentile(hist, pct)
    summary["max"] = hist.get_max_value()
    return summary


@dataclass
class LatencyRecorder:
    """Latencies in microseconds: appended cheaply on the hot path, histogrammed in batches.

    ``add`` is one C-level ``array.append``. ``flush`` (a few times a second) records the whole
    batch at once (``hdr.record_batch``: one numpy ``bincount``, no Python work per value) into
    the run's histogram and into a fresh one for the interval, which it returns.
    """

    total: HdrHistogram = field(default_factory=new_histogram)
    pending: array[int] = field(default_factory=lambda: array("q"))

    def add(self, latency_us: int) -> None:
        self.pending.append(latency_us)

    def flush(self) -> HdrHistogram:
        interval = new_histogram()
        if not self.pending:
            return interval
        values = np.frombuffer(self.pending, dtype=np.int64).copy()
        # Cleared in place (the view above is gone): the receive path holds ``pending.append``.
        del self.pending[:]
        record_batch([self.total, interval], values, LOWEST_US, HIGHEST_US)
        return interval
