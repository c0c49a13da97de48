"""HDR histograms recorded and read in bulk, with numpy, off the bench's receive path.

Why: ``hdrh``'s ``record_value``, ``get_value_at_percentile`` and ``get_mean_value`` are Python
code per value or per bucket. At 50k latencies per worker per second, recording them one call
per distinct value kept a worker's event loop busy for tens of milliseconds at every progress
interval, and every frame that arrived meanwhile was timestamped that much late: the bench
measured its own stall as the server's tail. Here a whole batch is one ``bincount`` added to the
histogram's counts in place, and a percentile is one ``cumsum``; the results are exactly
``hdrh``'s (``tests/bench/test_bench_hdr.py`` checks them against it).

The histograms stay ``hdrh.HdrHistogram`` objects: they are encoded, sent and merged as before.
This module reads the layout fields that ``hdrh`` 0.10 keeps on them (``counts``,
``sub_bucket_half_count_magnitude``, ``unit_magnitude``, ...), which the pin in pyproject.toml
holds still.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["counts_of", "mean_value", "record_batch", "value_at_percentile"]

Int64Array = np.ndarray[tuple[int], np.dtype[np.int64]]


def counts_of(hist: HdrHistogram) -> Int64Array:
    """The histogram's counts as a numpy view: writing to it writes to the histogram."""
    view: Int64Array = np.ctypeslib.as_array(hist.counts).view(np.int64)
    return view


def _indices(hist: HdrHistogram, values: Int64Array) -> Int64Array:
    """The counts index of each value, as ``HdrHistogram._counts_index_for`` computes it."""
    half_mag = hist.sub_bucket_half_count_magnitude
    unit_mag = hist.unit_magnitude
    # The bit length of (value | sub_bucket_mask), exact through float64's 53-bit mantissa.
    _, bit_length = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))
    bucket = bit_length.astype(np.int64) - unit_mag - (half_mag + 1)
    sub_bucket = values >> (bucket + unit_mag)
    out: Int64Array = ((bucket + 1) << half_mag) + sub_bucket - hist.sub_bucket_half_count
    return out


def bincount(hist: HdrHistogram, values: Int64Array) -> Int64Array:
    """The counts that ``values`` (each within the histogram's range) add, per index."""
    counts: Int64Array = np.bincount(_indices(hist, values), minlength=hist.counts_len)
    return counts


def record_batch(hists: list[HdrHistogram], values: Int64Array, lowest: int, highest: int) -> None:
    """Record every value of ``values`` (clamped to [lowest, highest]) into each of ``hists``,
    which share one layout: what ``record_value`` per value would give."""
    if not len(values):
        return
    clamped = np.clip(values, lowest, highest)
    added = bincount(hists[0], clamped)
    low, high = int(clamped.min()), int(clamped.max())
    for hist in hists:
        counts_of(hist)[:] += added
        hist.total_count += len(clamped)
        hist.min_value = min(hist.min_value, low)
        hist.max_value = max(hist.max_value, high)


def value_at_percentile(hist: HdrHistogram, percentile: float) -> int:
    """``hist.get_value_at_percentile(percentile)``, from one cumulative sum."""
    if not hist.total_count:
        return 0
    target = hist.get_target_count_at_percentile(percentile)
    cumulative = np.cumsum(counts_of(hist))
    index = int(np.searchsorted(cumulative, target, side="left"))
    if index >= hist.counts_len:
        return 0
    value: int = hist.get_value_from_index(index)
    if percentile:
        return int(hist.get_highest_equivalent_value(value))
    return int(hist.get_lowest_equivalent_value(value))


@cache
def _medians(counts_len: int, half_mag: int, unit_mag: int) -> np.ndarray:
    """Each index's median equivalent value (``_hdr_median_equiv_value``), as float64."""
    index = np.arange(counts_len, dtype=np.int64)
    half_count = 1 << half_mag
    bucket = (index >> half_mag) - 1
    sub_bucket = (index & (half_count - 1)) + half_count
    first = bucket < 0
    sub_bucket[first] -= half_count
    bucket[first] = 0
    lowest = sub_bucket << (bucket + unit_mag)
    return (lowest + ((1 << (bucket + unit_mag)) >> 1)).astype(np.float64)


def mean_value(hist: HdrHistogram) -> float:
    """``hist.get_mean_value()``: the count-weighted mean of each bucket's median value."""
    if not hist.total_count:
        return 0.0
    medians = _medians(hist.counts_len, hist.sub_bucket_half_count_magnitude, hist.unit_magnitude)
    return float(np.dot(counts_of(hist).astype(np.float64), medians) / hist.total_count)
