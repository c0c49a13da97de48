"""Redis Cluster (``redis+cluster://``): the partition map for sharded pub/sub, the slot
topology, and the broker (``broker.py``, imported lazily by ``hub.brokers.create_engines``)."""

from __future__ import annotations

from hub.brokers.cluster.partitions import (
    ClusterTarget,
    PartitionMap,
    balanced_tags,
    is_cluster_url,
    parse_cluster_url,
)

__all__ = ["ClusterTarget", "PartitionMap", "balanced_tags", "is_cluster_url", "parse_cluster_url"]
