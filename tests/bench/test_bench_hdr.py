"""hub/bench/hdr.py: bulk recording, percentiles and mean give exactly what hdrh's own
per-value code gives, over the whole range (exact values below 2,048 µs, coarser buckets above,
clamped ends)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hub.bench.hdr import mean_value, record_batch, value_at_percentile
from hub.bench.stats import HIGHEST_US, LOWEST_US, PERCENTILES, new_histogram


def _values(seed: int) -> list[int]:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(8.5, 1.5)) for _ in range(20_000)]
    # The edges: below the lowest value (clamped to it), the bucket boundaries, above the top.
    values += [0, 1, 2, 2047, 2048, 2049, 4095, 4096, 1 << 20, HIGHEST_US, HIGHEST_US + 5]
    return values


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_record_batch_equals_record_value(seed: int) -> None:
    values = _values(seed)
    one_by_one, interval = new_histogram(), new_histogram()
    for value in values:
        one_by_one.record_value(min(max(value, LOWEST_US), HIGHEST_US))
    batched = new_histogram()
    record_batch([batched, interval], np.array(values, dtype=np.int64), LOWEST_US, HIGHEST_US)
    for hist in (batched, interval):
        assert list(hist.counts) == list(one_by_one.counts)
        assert hist.get_total_count() == one_by_one.get_total_count() == len(values)
        assert hist.get_min_value() == one_by_one.get_min_value()
        assert hist.get_max_value() == one_by_one.get_max_value()
    for _, pct in (*PERCENTILES, ("p0", 0.0), ("p100", 100.0), ("p25", 25.0)):
        assert value_at_percentile(batched, pct) == one_by_one.get_value_at_percentile(pct)
    assert mean_value(batched) == pytest.approx(one_by_one.get_mean_value(), rel=1e-12)


def test_batches_add_up_and_merge() -> None:
    """Two batches into one histogram, encoded and decoded: the same as one batch."""
    values = np.array(_values(4), dtype=np.int64)
    two, one = new_histogram(), new_histogram()
    record_batch([two], values[:5000], LOWEST_US, HIGHEST_US)
    record_batch([two], values[5000:], LOWEST_US, HIGHEST_US)
    record_batch([one], values, LOWEST_US, HIGHEST_US)
    decoded = new_histogram()
    decoded.decode_and_add(two.encode())
    assert list(decoded.counts) == list(one.counts)
    assert value_at_percentile(decoded, 99.0) == one.get_value_at_percentile(99.0)


def test_empty() -> None:
    hist = new_histogram()
    record_batch([hist], np.array([], dtype=np.int64), LOWEST_US, HIGHEST_US)
    assert hist.get_total_count() == 0
    assert value_at_percentile(hist, 99.0) == hist.get_value_at_percentile(99.0) == 0
    assert mean_value(hist) == 0.0
