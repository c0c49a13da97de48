"""A hub host cut off from Redis, both ways, for 10 s, while traffic flows through two hubs.

The partition is silent (iptables DROP: no FIN, no RST), as on a real network. What must hold:
the hub's clients stay connected; its /readyz turns 503 within the probe timeout; what its
clients publish meanwhile is held and published after the heal (0 lost); what it missed on
history channels is repaired (0 lost, 0 duplicated); and nothing written into the dead
connections comes back twice when the kernel could retransmit it after the heal, because the
hub abandons them with an RST (hub/brokers/liveness.py). Every message is numbered and counted
per subscriber, on the partitioned hub and on the other one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from support import RedisServer, t
from support.counting import Counts, count
from support.hosts import Lab
from support.lab_traffic import FROM_HUB1, FROM_HUB2, first_change, history_hubs, start_traffic
from support.ops import readiness_log

from hub.brokers.liveness import CONNECT_TIMEOUT_S
from hub.brokers.resp import Endpoint, open_connection

#: Per channel, at 40/s: 24 s, the partition from 2 s to 12 s. Publishing goes on 12 s past
#: the heal, so that what a graceful close would have left in the kernel (retransmitted
#: with backoff: 14.6 s after the first loss) arrives while it is counted.
TOTAL = 960
PARTITION_AT_S, PARTITION_S = 2.0, 10.0
PROBE_TIMEOUT_S = 3.0  # the hub's default --probe-timeout-s (1 s interval)


def _lingering(ss_output: str, redis_address: str) -> list[str]:
    """The hub host's sockets to Redis in a closing state (FIN sent, data held): what a
    graceful close leaves, to be retransmitted after the heal."""
    closing = ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK")
    return [
        line
        for line in ss_output.splitlines()
        if f"{redis_address}:6379" in line and line.split()[0] in closing
    ]


def test_a_hub_cut_off_from_redis_holds_repairs_and_duplicates_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    redis_host, hub1_host, hub2_host, clients = lab.add_hosts("redis", "hub1", "hub2", "clients")
    redis = RedisServer(host=redis_host)
    redis.start()
    hub1, hub2 = history_hubs([hub1_host, hub2_host], redis.url, tmp_path)
    stop = threading.Event()
    try:
        hub1.wait_ready()
        hub2.wait_ready()
        log = readiness_log(hub1, stop)
        runner, _ = start_traffic(
            clients, {hub1: FROM_HUB1, hub2: FROM_HUB2}, [hub1, hub2], total=TOTAL
        )
        time.sleep(PARTITION_AT_S)
        lab.partition(hub1_host, redis_host, "both")
        cut_at = time.monotonic()
        time.sleep(PARTITION_S / 2)
        # Found dead and abandoned with an RST: no socket to Redis lingers with data in it.
        lingering = _lingering(hub1_host.run("ss", "-tan").stdout, redis_host.address)
        time.sleep(PARTITION_S / 2)
        lab.heal()
        healed_at = time.monotonic()
        readers = runner.result(t(120))
        time.sleep(0.5)
    finally:
        stop.set()
        hub1.stop()
        hub2.stop()
        redis.close()

    to_503 = first_change(log, cut_at)
    to_200 = first_change(log, healed_at)
    counts: dict[tuple[str, str], Counts] = {
        key: count(reader.numbers, range(TOTAL)) for key, reader in readers.items()
    }
    print(f"\n/readyz 503 after {to_503}s of partition; 200 again {to_200}s after the heal")
    for (channel, where), result in sorted(counts.items()):
        gaps = len(readers[(channel, where)].gaps)
        print(f"{channel} read on {where}: {result}, gaps {gaps}, sessions 1")
    # The probe goes round every second: deaf after the timeout, seen at the next round.
    assert to_503 is not None and to_503 <= PROBE_TIMEOUT_S + 1.0 + 1.0, to_503
    # Reconnects have a deadline, so the hub is back soon after the heal (connect timeout,
    # one backoff step, the resubscribe and the instance list), not a SYN timeout later.
    assert to_200 is not None and to_200 <= CONNECT_TIMEOUT_S + 2.0 + 3.0, to_200
    for (channel, where), reader in readers.items():
        # Every subscriber stayed on its one connection (attempts=1) and got the last message.
        assert len(reader.acks) == 1, (channel, where, reader.acks)
        result = counts[(channel, where)]
        if channel == "plain.b" and where == "hub1":
            continue  # published on Redis while hub1 could not hear it: reported above
        assert result.is_exact, (channel, where, result)
        assert not reader.gaps, (channel, where, reader.gaps)
    # What hub1 could not hear on a plain channel is lost there, and only there.
    assert counts[("plain.b", "hub1")].lost and not counts[("plain.b", "hub1")].duplicated
    assert not lingering, f"sockets to Redis left closing, not reset: {lingering}"
    for hub in (hub1, hub2):
        assert "Traceback" not in hub.output()


def test_a_connect_to_a_silent_redis_times_out(lab: Lab) -> None:
    """A SYN dropped by a partition is a TimeoutError after CONNECT_TIMEOUT_S, not the
    kernel's two minutes of SYN retransmits: the broker's backoff keeps trying."""
    redis_host, hub_host = lab.add_hosts("redis", "hub")
    redis = RedisServer(host=redis_host)
    redis.start()
    try:
        lab.partition(hub_host, redis_host, "both")

        async def attempt() -> float:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await open_connection(Endpoint.from_url(redis.url), lambda _: None, name="t")
            return time.monotonic() - started

        took = hub_host.thread(lambda: asyncio.run(attempt())).result(t(20))
        assert CONNECT_TIMEOUT_S - 0.1 <= took <= CONNECT_TIMEOUT_S + 1.0, took
        lab.heal()

        async def connects() -> bool:
            conn = await open_connection(Endpoint.from_url(redis.url), lambda _: None, name="t")
            conn.close()
            return True

        assert hub_host.thread(lambda: asyncio.run(connects())).result(t(20))
    finally:
        redis.close()
