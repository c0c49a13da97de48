"""Redis Cluster support (``redis+cluster://``): the partition map for sharded pub/sub.

The broker itself (SSUBSCRIBE readers, MOVED/ASK handling) is not built yet; see
docs/deploy.md's Cluster section for the design and its status.
"""

from __future__ import annotations

from hub.brokers.cluster.partitions import PartitionMap, balanced_tags, parse_cluster_url

__all__ = ["PartitionMap", "balanced_tags", "parse_cluster_url"]
