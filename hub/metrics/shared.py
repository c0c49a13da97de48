"""What each worker shares with the others for /stats: its busiest channels and its history,
in its own small file in the multiprocess directory, replaced whole each second; and the
merge of the channels of every live worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from hub.metrics.figures import SYNC_INTERVAL_S

__all__ = [
    "SHARED_CHANNELS",
    "STALE_S",
    "STATS_CHANNELS",
    "STATS_FILE",
    "merge_channels",
    "read_shared",
    "write_shared",
]

#: The busiest channels /stats lists, over every worker.
STATS_CHANNELS = 50
#: The busiest channels each worker shares with the others (a few times what is listed, so
#: that a channel's subscribers are summed over every worker that has it).
SHARED_CHANNELS = 4 * STATS_CHANNELS
#: A worker's own stats file in the multiprocess directory.
STATS_FILE = "hub-stats-{worker}.json"
#: A stats file not rewritten for this long is a dead worker's: its channels are left out.
STALE_S = 3 * SYNC_INTERVAL_S


def write_shared(directory: str, worker: int, doc: dict[str, Any]) -> None:
    """Replace ``worker``'s file in ``directory`` with ``doc``, whole, for a reader in
    another worker."""
    path = Path(directory) / STATS_FILE.format(worker=worker)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(orjson.dumps(doc))
    os.replace(partial, path)  # whole, for a reader in another worker


def read_shared(directory: str, worker: int) -> list[dict[str, Any]]:
    """The other workers' files in ``directory`` (without their samples decoded)."""
    own = STATS_FILE.format(worker=worker)
    docs = []
    for path in Path(directory).glob(STATS_FILE.format(worker="*")):
        if path.name == own:
            continue
        try:
            docs.append(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue  # gone meanwhile: a worker that stopped
    return docs


def merge_channels(
    docs: list[dict[str, Any]], processes: Mapping[str, int]
) -> tuple[list[dict[str, Any]], int, bool]:
    """The busiest channels over the workers' ``docs``: subscribers summed, the rate the
    highest any worker saw; how many distinct channels; and whether that is exact (no worker
    had more channels than it shares, so none was left out)."""
    merged: dict[str, list[float]] = {}
    for doc in docs:
        for channel, n, rate in doc["channels"]:
            row = merged.get(channel)
            if row is None:
                merged[channel] = [n, rate, 1]
            else:
                row[0] += n
                row[1] = max(row[1], rate)
                row[2] += 1
    complete = all(d["num_channels"] <= len(d["channels"]) for d in docs)
    distinct = len(merged) if complete else max([len(merged)] + [d["num_channels"] for d in docs])
    busiest = sorted(merged.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    rows = [
        {
            "channel": channel,
            "subscribers": int(n),
            "messages_per_s": round(rate, 1),
            "workers": int(workers),
            "processes": processes.get(channel),
        }
        for channel, (n, rate, workers) in busiest[:STATS_CHANNELS]
    ]
    return rows, distinct, complete
