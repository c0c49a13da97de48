"""/stats' figures over every worker, from the metric families that every worker writes:
per worker, in total, and the histograms' cumulative buckets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.metrics.families import COUNTERS, GAUGES

__all__ = ["by_worker"]

#: Histograms whose buckets /stats carries, by the name /stats gives them.
_STATS_HISTOGRAMS = {
    "hub_fanout_duration_seconds": "fanout_s",
    "hub_broker_roundtrip_seconds": "redis_roundtrip_s",
    "hub_probe_latency_seconds": "probe_latency_s",
}
# Sample name → /stats key, for the per-worker figures.
_STATS_KEYS: dict[str, str] = {
    **{name: key for key, (name, _) in GAUGES.items()},
    **{name + "_total": key for key, (name, _) in COUNTERS.items()},
    "hub_messages_dropped_total": "dropped",
}


def by_worker(
    families: Iterable[Any],
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[list[float]]]]:
    """Each worker's figures (``alive`` when its gauges are live), their totals, and the
    histograms' cumulative bucket counts over every worker, [upper bound, count] ascending."""
    workers: dict[str, dict[str, float]] = {}
    buckets: dict[str, dict[float, float]] = {name: {} for name in _STATS_HISTOGRAMS.values()}
    for family in families:
        for sample in family.samples:
            histogram = _STATS_HISTOGRAMS.get(sample.name.removesuffix("_bucket"))
            if histogram is not None and sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                cumulative = buckets[histogram]
                cumulative[le] = cumulative.get(le, 0.0) + sample.value
                continue
            key = _STATS_KEYS.get(sample.name)
            worker = sample.labels.get("worker")
            if key is None or worker is None:
                continue
            figures = workers.setdefault(worker, {})
            figures[key] = figures.get(key, 0.0) + sample.value
    per_worker = []
    for worker in sorted(workers, key=lambda w: int(w) if w.isdigit() else -1):
        figures = workers[worker]
        row: dict[str, Any] = {"worker": worker}
        row.update({k: int(figures.get(k, 0)) for k in _STATS_KEYS.values()})
        # A worker with no live gauges is dead (or restarting): its totals still count.
        row["alive"] = "broker_ready" in figures
        row["broker_ready"] = figures.get("broker_ready", 0.0) > 0
        per_worker.append(row)
    totals: dict[str, Any] = {
        k: sum(row[k] for row in per_worker) for k in _STATS_KEYS.values() if k != "broker_ready"
    }
    totals["workers"] = sum(1 for row in per_worker if row["alive"])
    totals["workers_ready"] = sum(1 for row in per_worker if row["broker_ready"])
    histograms = {
        name: [[le, cumulative[le]] for le in sorted(cumulative)]
        for name, cumulative in buckets.items()
    }
    return per_worker, totals, histograms
