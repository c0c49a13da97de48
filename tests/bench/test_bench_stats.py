"""Tests of hub.bench.stats: delivery accounting and latency histograms."""

from __future__ import annotations

from hub.bench.stats import (
    LatencyRecorder,
    Ledger,
    StreamTracker,
    Tally,
    merge_encoded,
    summarize,
)


def feed(seqs: list[int], pub_id: int = 0, num_pubs: int = 1) -> tuple[StreamTracker, Ledger]:
    ledger = Ledger()
    tracker = ledger.tracker(0, num_pubs)
    for seq in seqs:
        tracker.record(pub_id, seq)
    return tracker, ledger


def test_in_order() -> None:
    """An in-order stream counts every message as unique, none reordered or duplicated."""
    tracker, ledger = feed(list(range(100)))
    assert ledger.tally().as_dict() == {
        "received": 100,
        "unique": 100,
        "duplicates": 0,
        "reordered": 0,
    }
    assert tracker.unique_from(0) == 100


def test_gap_is_loss_until_filled() -> None:
    """A skipped sequence number is missing; arriving later, it counts as reordered."""
    tracker, ledger = feed([0, 1, 3, 4])
    assert tracker.unique_from(0) == 4
    assert ledger.tally().reordered == 0
    assert 5 - ledger.unique() == 1  # seq 2 lost so far
    tracker.record(0, 2)
    assert ledger.tally().reordered == 1
    assert ledger.unique() == 5
    assert tracker.unique_from(0) == 5


def test_duplicates() -> None:
    """A sequence number seen before is a duplicate, in order or late."""
    _, ledger = feed([0, 1, 1, 2, 0, 5, 5, 3, 3])
    tally = ledger.tally()
    assert tally.received == 9
    assert tally.duplicates == 4
    assert tally.reordered == 1  # 3 after 5
    assert tally.unique == 5  # 0, 1, 2, 5, 3


def test_streams_are_per_publisher() -> None:
    """Each publisher has its own sequence; interleaving publishers is not reordering."""
    ledger = Ledger()
    tracker = ledger.tracker(0, 2)
    for seq in range(10):
        tracker.record(1, seq)
        tracker.record(0, seq)
    assert ledger.tally().as_dict() == {
        "received": 20,
        "unique": 20,
        "duplicates": 0,
        "reordered": 0,
    }


def test_unknown_publisher_grows_the_tracker() -> None:
    """A publisher id past the expected count is tracked, not dropped."""
    tracker, ledger = feed([0, 1], pub_id=4, num_pubs=1)
    assert tracker.unique_from(4) == 2
    assert tracker.unique_from(9) == 0
    assert ledger.unique() == 2


def test_ledger_sums_every_receiver() -> None:
    """The totals are over every receiver's streams; a receiver opened again in its place
    (same key) goes on with its tracker instead of starting a second one."""
    ledger = Ledger()
    first, second = ledger.tracker(0, 2), ledger.tracker(1, 2)
    assert ledger.tracker(0, 2) is first
    for seq in range(5):
        first.record(0, seq)
        second.record(1, seq)
    second.record(1, 9)  # 5..8 missing
    second.record(1, 6)  # one of them, late
    second.record(1, 6)  # and again
    assert ledger.tally().as_dict() == {
        "received": 13,
        "unique": 12,
        "duplicates": 1,
        "reordered": 1,
    }
    assert ledger.missing == 3


def test_tally_add() -> None:
    """Tallies from several processes add up field by field."""
    one = Tally(received=3, unique=2, duplicates=1, reordered=0)
    one.add(Tally(received=5, unique=5, duplicates=0, reordered=2))
    assert one.as_dict() == {"received": 8, "unique": 7, "duplicates": 1, "reordered": 2}


def test_recorder_flush_and_summary() -> None:
    """Flushed latencies land in both the run's and the interval's histogram."""
    recorder = LatencyRecorder()
    append = recorder.pending.append
    for value in range(1, 1001):
        append(value)
    interval = recorder.flush()
    assert interval.get_total_count() == 1000
    assert recorder.flush().get_total_count() == 0
    append(0)  # below the lowest trackable value: clamped, not lost
    recorder.flush()
    summary = summarize(recorder.total)
    assert summary["count"] == 1001
    assert summary["min"] == 1
    assert 495 <= summary["p50"] <= 505
    assert 985 <= summary["p99"] <= 995
    assert 999 <= summary["max"] <= 1001


def test_merge_encoded() -> None:
    """Histograms encoded in other processes merge into one with all the counts."""
    encoded = []
    for base in (100, 10_000):
        recorder = LatencyRecorder()
        for value in range(base, base + 100):
            recorder.add(value)
        recorder.flush()
        encoded.append(recorder.total.encode())
    merged = merge_encoded([*encoded, b""])
    assert merged.get_total_count() == 200
    assert merged.get_min_value() == 100
    assert 10_090 <= merged.get_max_value() <= 10_110


def test_summarize_empty() -> None:
    """An empty histogram summarizes to a zero count and no percentiles."""
    summary = summarize(merge_encoded([]))
    assert summary["count"] == 0
    assert summary["p99"] is None
