"""Redis Cluster: hubs on ``redis+cluster://`` deliver across instances on sharded pub/sub,
and follow their slots through a resharding, a ``CLUSTER FAILOVER`` and a master SIGKILL,
mid-stream, every message counted per channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import HubProcess, free_port, t
from support.cluster import MultiReader, RedisCluster, exact, in_partitions, stream_through
from support.counting import publish_round_robin, stream_through_a_kill

from hub.brokers.cluster import PartitionMap

HISTORY = ("--history-size", "5000", "--history-ttl-s", "300")


def hub_args(cluster: RedisCluster, *extra: str) -> tuple[str, ...]:
    return (
        "--redis",
        cluster.url,
        "--workers",
        "1",
        "--channel-prefix",
        f"c{free_port()}:",
        *extra,
    )


@pytest.fixture
def cluster3() -> Iterator[RedisCluster]:
    with RedisCluster(3) as cluster:
        yield cluster


@pytest.fixture
def cluster3x2() -> Iterator[RedisCluster]:
    with RedisCluster(3, replicas=1) as cluster:
        yield cluster


async def test_cross_instance_delivery_on_100_channels_over_every_master(
    cluster3: RedisCluster, start_hub: Callable[..., HubProcess]
) -> None:
    """100 channels spread over all 3 masters, 20 numbered messages each, published through
    hub A and read through hub B: every channel gets all 20, once, in order."""
    args = hub_args(cluster3)
    a, b = start_hub(*args), start_hub(*args)
    pm = PartitionMap(prefix=args[5])
    channels = [f"room{i}" for i in range(100)]
    owners = {cluster3.owner(pm.slot(pm.partition(c))) for c in channels}
    assert owners == set(cluster3.masters()), "the channels do not cover every master"
    reader = MultiReader(channels)
    reading = asyncio.create_task(reader.run(b.url(), lambda r: r.total() >= 2000))
    await asyncio.wait_for(reader.subscribed.wait(), t(10))
    await publish_round_robin(a.url(), channels, range(20), rate=1000)
    await asyncio.wait_for(reading, t(20))
    assert exact(reader.counts(20)) == {}
    # Sharded: each master carries its own channels (PUBSUB SHARDCHANNELS), none all of them.
    per_master = {
        port: len(cluster3.client(port).execute_command("PUBSUB", "SHARDCHANNELS", args[5] + "*"))
        for port in cluster3.masters()
    }
    assert all(0 < n < 100 + 32 for n in per_master.values()), per_master
    # Bounded: each hub process holds one publish, one pub/sub and one read connection per
    # master, shared by the partitions that master serves (mux.py), not one set per partition.
    named = {
        port: sorted(
            c["name"].rsplit("-", 1)[1]
            for c in cluster3.client(port).client_list()
            if c["name"].startswith("hub-")
        )
        for port in cluster3.masters()
    }
    # Presence opens its own connection, once per hub, to the master of the partitions it
    # writes: here only the instance list's (node/control.py), so one master has two more.
    base = ["publisher"] * 2 + ["reader"] * 2 + ["subscriber"] * 2
    with_presence = sorted([*base, "presence", "presence"])
    assert all(roles in (base, with_presence) for roles in named.values()), named
    assert sum(roles == with_presence for roles in named.values()) <= 1, named
    for hub in (a, b):
        assert "Traceback" not in hub.output()


def history_config(tmp_path: Path) -> tuple[str, str]:
    """--config of a namespace ``h*`` with history; every other channel has none."""
    config = tmp_path / "hub.toml"
    config.write_text('[[namespaces]]\npattern = "h*"\nhistory_size = 5000\nhistory_ttl_s = 300\n')
    return "--config", str(config)


async def test_a_resharding_mid_stream_loses_nothing(
    cluster3: RedisCluster, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """``redis-cli --cluster reshard`` moves partition 0's slot (and 511 others, with the
    history keys in them) to another master while 16 channels stream: 4 history and 4 plain
    channels in partition 0, as many in partitions that stay. Every channel, history or not,
    gets every message once, in order, with no gap: publishes that meet MOVED or ASK are
    held and sent again to the new owner once the subscribers have moved there."""
    args = hub_args(cluster3, *history_config(tmp_path))
    a, b = start_hub(*args), start_hub(*args)
    pm = PartitionMap(prefix=args[5])
    channels = [
        *in_partitions(pm, {0}, 4, "hmoving"),
        *in_partitions(pm, {0}, 4, "pmoving"),
        *in_partitions(pm, {5, 20}, 4, "hstill"),
        *in_partitions(pm, {5, 20}, 4, "pstill"),
    ]
    source = cluster3.owner(pm.slot(0))
    target = next(p for p in cluster3.masters() if p != source)

    def reshard() -> None:
        cluster3.reshard(source, target, 512)
        assert cluster3.owner(pm.slot(0)) == target

    reader = await stream_through(a, b, channels, 120, rate=300, fault=reshard)
    counts = reader.counts(120)
    print({c: str(k) for c, k in counts.items() if c.startswith("p")})
    assert exact(counts) == {}
    assert reader.gaps == []
    assert "a slot moved" in b.output(), "the partition never moved during the stream"
    for hub in (a, b):
        assert hub.is_ready()
        assert "Traceback" not in hub.output()


async def test_a_cluster_failover_mid_stream_loses_nothing(
    cluster3x2: RedisCluster, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """``CLUSTER FAILOVER`` on the replica of a master, mid-stream, with 4 history and 4
    plain channels on that master and as many on others: every channel gets every message
    once, in order. The promoted replica starts a new epoch on the history channels it now
    writes (scripts.py): at most one gap each, at offset 0, and nothing skipped as seen."""
    args = hub_args(cluster3x2, *history_config(tmp_path))
    a, b = start_hub(*args), start_hub(*args)
    pm = PartitionMap(prefix=args[5])
    master = cluster3x2.owner(pm.slot(0))
    on_master = {i for i in range(32) if cluster3x2.owner(pm.slot(i)) == master}
    others = set(range(32)) - on_master
    channels = [
        *in_partitions(pm, on_master, 4, "hfo"),
        *in_partitions(pm, on_master, 4, "pfo"),
        *in_partitions(pm, others, 4, "hother"),
        *in_partitions(pm, others, 4, "pother"),
    ]
    replica = cluster3x2.replica_of(master)
    reader = await stream_through(
        a, b, channels, 120, rate=300, fault=lambda: cluster3x2.failover(replica)
    )
    counts = reader.counts(120)
    print({c: str(k) for c, k in counts.items() if c.startswith("p")})
    assert exact(counts) == {}
    assert all(g["offset"] == 0 and g["channel"].startswith("hfo") for g in reader.gaps), (
        reader.gaps
    )
    assert len(reader.gaps) <= 4, reader.gaps
    for hub in (a, b):
        hub.wait_ready(10)
        assert "Traceback" not in hub.output()
    assert "a slot moved" in b.output(), "the partitions never moved during the stream"


async def test_a_killed_master_is_replaced_and_every_later_message_arrives(
    cluster3x2: RedisCluster, start_hub: Callable[..., HubProcess]
) -> None:
    """A master is SIGKILLed while raw messages stream on a channel it serves: /readyz turns
    503 while its slots have no master and 200 once the replica took over, and every
    message sent after that reaches a raw subscriber of the other hub, once, in order."""
    args = hub_args(cluster3x2)
    a, b = start_hub(*args), start_hub(*args)
    pm = PartitionMap(prefix=args[5])
    channel = "killed"
    master = cluster3x2.owner(pm.slot(pm.partition(channel)))
    replica = cluster3x2.replica_of(master)
    run = await stream_through_a_kill(
        a,
        b,
        channel,
        kill=lambda: cluster3x2.kill(master),
        is_up=lambda: replica in cluster3x2.masters(),
    )
    assert 503 in run.statuses, "/readyz never turned 503 while a partition had no master"
    assert run.statuses[-1] == 200
    assert run.after_up().is_exact, run.after_up()
    print(f"sent before the replica was promoted: {run.up_at}; of those: {run.before_up()}")
    for hub in (a, b):
        assert "Traceback" not in hub.output()


async def test_publisher_history_and_api_channels_on_a_cluster(
    cluster3: RedisCluster, start_hub: Callable[..., HubProcess]
) -> None:
    """hub.client.Publisher on the cluster URL reaches a hub's subscriber (sharded, through
    redis-py's cluster client), history publishes get offsets a recovering client reads back
    through the hub, and GET /api/channels lists the sharded channels of every node."""
    import urllib.request

    from support.counting import history_publisher

    from hub.client import Client, Publisher

    args = hub_args(cluster3, *HISTORY)
    prefix = args[5]
    hub = start_hub(*args, "--api-key", "k", api=True)
    async with Client(hub.url()) as client:
        plain = await client.subscribe("plainroom")
        with Publisher(cluster3.url, channel_prefix=prefix) as publisher:
            assert publisher.publish("plainroom", text="hello").receivers == 1
        assert (await asyncio.wait_for(anext(plain), t(5))).text == "hello"
        logged = await client.subscribe("log")
        with history_publisher(cluster3.url, prefix) as publisher:
            offsets = [publisher.publish("log", data={"n": n}).offset for n in range(5)]
        assert offsets == [1, 2, 3, 4, 5]
        got = [(await asyncio.wait_for(anext(logged), t(5))) for _ in range(5)]
        assert [(m.offset, m.data["n"]) for m in got] == list(zip(offsets, range(5), strict=True))
    request = urllib.request.Request(
        hub.api_url + "/api/channels", headers={"Authorization": "Bearer k"}
    )
    async with Client(hub.url()) as client:
        await client.subscribe("listed")
        body = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(request).read()))
    assert body["scope"] == "cluster"
    assert {"channel": "listed", "processes": 1} in [
        {k: row[k] for k in ("channel", "processes")} for row in body["channels"]
    ]
    assert "Traceback" not in hub.output()
