"""ClusterTopology on a real Redis Cluster: a partition that lost its node gets a map that
no longer names it, even when another partition read a newer map before the change."""

from __future__ import annotations

from support.cluster import RedisCluster

from hub.brokers.cluster import ClusterTarget, PartitionMap
from hub.brokers.cluster.topology import ClusterTopology
from hub.brokers.resp import Endpoint


async def test_a_map_that_still_names_the_lost_node_is_read_again() -> None:
    """Partition A reads the map (version 1), partition B reads it again (version 2), then
    the master fails over. A, whose connection to the old master dropped, asks with
    ``seen=1``: version 2 is newer, but it was read before the failover and names the old
    master, where a connect would find a silent host on a real network. Passing the lost
    node makes the topology read the map once more, and A gets the promoted replica."""
    pm = PartitionMap(num_partitions=32)
    slot = pm.slot(0)
    with RedisCluster(3, replicas=1) as cluster:
        topology = ClusterTopology(ClusterTarget.from_url(cluster.url))
        try:
            master = cluster.owner(slot)
            old, seen = await topology.owner(slot, -1)
            assert (old.port, seen) == (master, 1)
            assert (await topology.owner(slot, seen))[1] == 2  # B's read: a newer map
            replica = cluster.replica_of(master)
            cluster.failover(replica)
            stale, _ = await topology.owner(slot, seen)  # without lost: the newer, stale map
            assert stale.port == master
            now, version = await topology.owner(slot, seen, lost=old)
            assert now.port == replica and version == 3
            # A map read by this very call is trusted: no second read.
            fresh, version = await topology.owner(slot, version, lost=Endpoint(port=replica))
            assert (fresh.port, version) == (replica, 4)
        finally:
            await topology.close()
