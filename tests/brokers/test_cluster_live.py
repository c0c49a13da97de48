"""The partition map on a real 3-master Redis Cluster started from redis-server."""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator

import hiredis
import pytest
from redis.cluster import RedisCluster as ClusterClient
from support.cluster import RedisCluster
from support.waits import wait_until

from hub.brokers.cluster import PartitionMap
from hub.brokers.resp import encode_command

# The history publish in one step: offset and SPUBLISH must share a slot, or Redis refuses.
SCRIPT = (
    "local o = redis.call('hincrby', KEYS[2], 's', 1) redis.call('spublish', ARGV[1], o) return o"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster(3) as c:
        yield c


def test_partitions_spread_over_all_masters(cluster: RedisCluster) -> None:
    """Each of the 3 masters owns 10 or 11 of the 32 partitions."""
    pm = PartitionMap(num_partitions=32)
    owners = collections.Counter(cluster.owner(pm.slot(i)) for i in range(32))
    assert set(owners) == set(cluster.masters())
    assert max(owners.values()) - min(owners.values()) <= 1, owners


def test_batched_ssubscribe_within_a_partition(cluster: RedisCluster) -> None:
    """One SSUBSCRIBE of many channels of one partition succeeds on its owner; mixing two
    partitions is refused with CROSSSLOT, which is why batches stay within one."""
    pm = PartitionMap(num_partitions=32)
    by_partition: dict[int, list[str]] = collections.defaultdict(list)
    for i in range(400):
        by_partition[pm.partition(f"c{i}")].append(f"c{i}")
    p0, p1 = sorted(by_partition)[:2]
    names = [pm.pubsub(c) for c in by_partition[p0]]
    assert len(names) > 1
    with socket.create_connection(("127.0.0.1", cluster.owner(pm.slot(p0))), timeout=5) as sock:
        replies = roundtrip(sock, encode_command(b"SSUBSCRIBE", *names), len(names))
        assert [r[0] for r in replies] == [b"ssubscribe"] * len(names)
        mixed = [pm.pubsub(by_partition[p0][0]), pm.pubsub(by_partition[p1][0])]
        (error,) = roundtrip(sock, encode_command(b"SSUBSCRIBE", *mixed), 1)
        assert isinstance(error, hiredis.ReplyError) and "CROSSSLOT" in str(error)


def roundtrip(sock: socket.socket, command: bytes, num_replies: int) -> list[object]:
    """Send one command on a blocking socket and read ``num_replies`` RESP replies."""
    sock.sendall(command)
    reader = hiredis.Reader()
    replies: list[object] = []
    while len(replies) < num_replies:
        reader.feed(sock.recv(65536))
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies


def test_history_keys_and_sharded_channel_run_in_one_script(cluster: RedisCluster) -> None:
    """A script over a channel's meta key may SPUBLISH its sharded channel: one slot, one
    atomic step, and the subscriber on the owning master gets each offset in order."""
    pm = PartitionMap(num_partitions=32)
    client = ClusterClient(host="127.0.0.1", port=cluster.ports[0], socket_timeout=5)
    channel = "orders"
    sub = cluster.client(cluster.owner(pm.slot(pm.partition(channel)))).pubsub()
    try:
        sub.ssubscribe(pm.pubsub(channel))
        assert sub.get_message(timeout=5)["type"] == "ssubscribe"
        stream, meta = pm.history_keys(channel)
        offsets = [client.eval(SCRIPT, 2, stream, meta, pm.pubsub(channel)) for _ in range(5)]
        got = []
        for _ in range(5):
            msg = sub.get_message(timeout=5)
            assert msg is not None and msg["type"] == "smessage"
            got.append(int(msg["data"]))
        assert got == offsets == [1, 2, 3, 4, 5]
    finally:
        sub.close()
        client.close()


def ssubscribed(cluster: RedisCluster, pm: PartitionMap, channel: str) -> socket.socket:
    """A raw connection SSUBSCRIBEd to the channel's sharded channel on its owner."""
    sock = socket.create_connection(("127.0.0.1", cluster.owner(pm.slot(pm.partition(channel)))))
    sock.settimeout(10)
    (reply,) = roundtrip(sock, encode_command(b"SSUBSCRIBE", pm.pubsub(channel)), 1)
    assert isinstance(reply, list) and reply[0] == b"ssubscribe"
    return sock


def test_slot_migration_sends_sunsubscribe() -> None:
    """A reshard that moves a partition's slot ends its subscription with a server-sent
    ``sunsubscribe``: the signal the broker resubscribes the partition on."""
    pm = PartitionMap(num_partitions=32)
    channel = next(f"m{i}" for i in range(1000) if pm.partition(f"m{i}") == 0)
    with RedisCluster(3) as cluster:
        source = cluster.owner(pm.slot(0))
        target = next(p for p in cluster.masters() if p != source)
        with ssubscribed(cluster, pm, channel) as sock:
            cluster.reshard(source, target, 512)  # the source's lowest slots: partition 0's range
            assert cluster.owner(pm.slot(0)) == target
            reader = hiredis.Reader()
            reader.feed(sock.recv(65536))
            assert reader.gets() == [b"sunsubscribe", pm.pubsub(channel), 0]


def test_failover_sends_sunsubscribe() -> None:
    """``CLUSTER FAILOVER`` on a replica ends the old master's sharded subscriptions the same
    way, and the promoted replica serves the partition."""
    pm = PartitionMap(num_partitions=32)
    channel = "f"
    with RedisCluster(3, replicas=1) as cluster:
        master = cluster.owner(pm.slot(pm.partition(channel)))
        replica = cluster.replica_of(master)
        with ssubscribed(cluster, pm, channel) as sock:
            cluster.failover(replica)
            assert cluster.owner(pm.slot(pm.partition(channel))) == replica
            reader = hiredis.Reader()
            reader.feed(sock.recv(65536))
            assert reader.gets() == [b"sunsubscribe", pm.pubsub(channel), 0]


def test_killed_master_is_replaced_by_its_replica() -> None:
    """A SIGKILLed master's replica takes its slots within seconds (short node timeout), and a
    script and SPUBLISH on the partition work again there."""
    pm = PartitionMap(num_partitions=32)
    channel = "k"
    with RedisCluster(3, replicas=1) as cluster:
        master = cluster.owner(pm.slot(pm.partition(channel)))
        replica = cluster.replica_of(master)
        cluster.kill(master)
        wait_until(lambda: replica in cluster.masters(), 30, f"{replica} promoted")
        wait_until(cluster.is_ok, 30, "cluster_state:ok after the failover")
        stream, meta = pm.history_keys(channel)
        script = encode_command(b"EVAL", SCRIPT.encode(), b"2", stream, meta, pm.pubsub(channel))
        with (
            ssubscribed(cluster, pm, channel) as sock,
            socket.create_connection(("127.0.0.1", replica), timeout=10) as writer,
        ):
            assert roundtrip(writer, script, 1) == [1]
            reader = hiredis.Reader()
            reader.feed(sock.recv(65536))
            assert reader.gets() == [b"smessage", pm.pubsub(channel), b"1"]
