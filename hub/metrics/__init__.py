"""Prometheus metrics for one worker, fed from the plain counters of the hot path.

The node, the broker and the connection handler count with plain ints. prometheus-client is
never called per message or per delivery: in multiprocess mode every update writes to an
mmap'd file. Instead, ``WorkerMetrics.sync`` adds the counters' deltas to the Prometheus
counters about once a second, and again right before a scrape is answered. The two
histograms are observed per fan-out batch and per Redis round-trip sample (one per pipelined
write), which is cheap at that rate.

With several workers, the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of
its own before spawning them, so each worker writes its values to files there and any worker
can answer ``/metrics`` and ``/stats`` for all of them. A single worker without that
variable keeps its values in memory.

What Prometheus must not carry (channel names) and what it does not keep (the last minutes),
each worker keeps itself for ``/stats``: once a second it takes a ``Sample`` of its figures
into a bounded ring (``HISTORY_S`` of them), and the rate of each of its busiest channels
over that second. With several workers it writes both to its own small file in the same
directory (``hub-stats-<worker>.json``, replaced whole each second), and the worker that
answers ``/stats`` merges every live worker's file with its own figures: subscribers summed
per channel, the channel's rate the highest any worker saw (every worker subscribed to a
channel receives all of its messages), and the history summed second by second.

Every series carries a ``worker`` label (the worker's index, stable across restarts). No
label is ever a channel name.
"""

from __future__ import annotations

from hub.metrics.families import FANOUT_BUCKETS_S
from hub.metrics.figures import SYNC_INTERVAL_S, Figures, multiprocess_dir
from hub.metrics.history import HISTORY_S, Sample, merge_history
from hub.metrics.shared import STATS_CHANNELS
from hub.metrics.worker import WorkerMetrics

__all__ = [
    "FANOUT_BUCKETS_S",
    "HISTORY_S",
    "STATS_CHANNELS",
    "SYNC_INTERVAL_S",
    "Figures",
    "Sample",
    "WorkerMetrics",
    "merge_history",
    "multiprocess_dir",
]
