"""Redis Sentinel across hosts, on the shipped configuration (deploy/sentinel/): a primary,
2 replicas and 3 sentinels, each on a host of its own, two hubs on redis+sentinel://.

- The primary's host is cut off from everything (silently): the sentinels promote a replica,
  the hubs follow within 20 s, the cut-off primary refuses writes (NOREPLICAS) within its
  ``min-replicas-max-lag``, history channels have at most one gap each (a new epoch,
  announced), and what plain channels lose is counted and reported.
- The primary is cut off from its replicas only: it refuses the history script's writes, and
  the hub holds and resends them until the replicas are back: nothing lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import t, wait_until
from support.counting import count
from support.hosts import Lab
from support.lab_sentinel import LabSentinel, shipped_redis_args
from support.lab_traffic import (
    FROM_HUB1,
    FROM_HUB2,
    RATE,
    first_change,
    history_hubs,
    start_traffic,
    where,
)
from support.ops import readiness_log


def _max_lag_s() -> float:
    args = shipped_redis_args()
    assert args[args.index("--min-replicas-to-write") + 1] == "1"
    return float(args[args.index("--min-replicas-max-lag") + 1])


def _refuses_writes(sentinel: LabSentinel) -> bool:
    """A write on the primary, from its own host (which a partition does not cut off)."""
    host = sentinel.primary.host
    assert host is not None
    out = host.run("redis-cli", "-h", sentinel.primary.address, "SET", "lab:w", "1", check=False)
    return "NOREPLICAS" in out.stdout + out.stderr


@pytest.mark.long_fault
def test_the_primary_cut_off_from_everything_is_replaced_and_refuses_writes(
    lab: Lab, tmp_path: Path
) -> None:
    sentinel = LabSentinel(lab)
    hub1, hub2 = history_hubs(lab.add_hosts("hub1", "hub2"), sentinel.url, tmp_path)
    (clients,) = lab.add_hosts("clients")
    old = sentinel.primary
    total = 1000  # 25 s at 40/s per channel: the cut at 2 s, then 23 s for the failover
    stop = threading.Event()
    refused_at = promoted_at = None
    try:
        hub1.wait_ready(30)
        hub2.wait_ready(30)
        logs = {hub: readiness_log(hub, stop) for hub in (hub1, hub2)}
        runner, started_at = start_traffic(
            clients, {hub1: FROM_HUB1, hub2: FROM_HUB2}, [hub1, hub2], total=total
        )
        time.sleep(2)
        assert not _refuses_writes(sentinel)
        assert old.host is not None
        lab.isolate(old.host)
        cut_at = time.monotonic()
        deadline = cut_at + t(40)
        while (refused_at is None or promoted_at is None) and time.monotonic() < deadline:
            if refused_at is None and _refuses_writes(sentinel):
                refused_at = time.monotonic() - cut_at
            if promoted_at is None and sentinel.master_address() not in (None, old.address):
                promoted_at = time.monotonic() - cut_at
            time.sleep(0.2)
        readers = runner.result(t(120))
        # Back on the network, the old primary is made a replica of the new one.
        lab.heal()
        wait_until(
            lambda: old.client().execute_command("ROLE")[0] in (b"slave", "slave"),
            30,
            "the old primary to rejoin as a replica",
        )
    finally:
        stop.set()
        hub1.stop()
        hub2.stop()
        sentinel.close()

    followed: dict[str, float | None] = {}
    for hub, log in logs.items():
        down = first_change(log, cut_at, to=503)
        up = None if down is None else first_change(log, cut_at + down, to=200)
        followed[where(hub)] = None if down is None or up is None else down + up
    print(
        f"\nold primary refuses writes {refused_at}s after the cut (max-lag {_max_lag_s()}s); "
        f"a replica promoted after {promoted_at}s; the hubs ready again after {followed}s"
    )
    counts = {key: count(reader.numbers, range(total)) for key, reader in readers.items()}
    for (channel, host), result in sorted(counts.items()):
        print(f"{channel} read on {host}: {result}, gaps {readers[(channel, host)].gaps}")
    assert refused_at is not None and refused_at <= _max_lag_s() + 2.0, refused_at
    assert promoted_at is not None
    for host, seconds in followed.items():
        assert seconds is not None and seconds <= 20.0, (host, seconds)
    # Only what was in flight while the hubs had no master may be lost or come twice: once
    # both are back, every message arrives once (numbered at 40/s per channel).
    back_at = cut_at + max(s for s in followed.values() if s is not None)
    settled = int((back_at - started_at + 1.0) * RATE / 2)
    for (channel, host), result in counts.items():
        reader = readers[(channel, host)]
        assert len(reader.acks) == 1, (channel, host)
        assert all(n < settled for n in result.lost + result.duplicated), (channel, host, result)
        if channel.startswith("hist."):
            # At most one gap (the new epoch on the promoted replica), and nothing missing or
            # repeated that a gap did not announce.
            assert len(reader.gaps) <= 1 and not result.reordered, (channel, host, reader.gaps)
            assert reader.gaps or not (result.lost or result.duplicated), (channel, host)
    for hub in (hub1, hub2):
        assert "Traceback" not in hub.output()


def test_a_primary_cut_off_from_its_replicas_refuses_writes_and_the_hub_holds_them(
    lab: Lab, tmp_path: Path
) -> None:
    """The sentinels still see the primary, so nothing fails over; the history script's
    writes meet NOREPLICAS once the lag passes, and the hub holds and resends them (the
    plain PUBLISHes are not writes and go through). After the heal: 0 lost, 0 duplicated."""
    sentinel = LabSentinel(lab)
    hub1, hub2 = history_hubs(lab.add_hosts("hub1", "hub2"), sentinel.url, tmp_path)
    (clients,) = lab.add_hosts("clients")
    total = 800  # 20 s at 40/s; the cut from 2 s to 14 s
    refused_at = None
    try:
        hub1.wait_ready(30)
        hub2.wait_ready(30)
        runner, _ = start_traffic(clients, {hub1: FROM_HUB1}, [hub1, hub2], total=total)
        time.sleep(2)
        assert sentinel.primary.host is not None
        lab.partition(sentinel.primary.host, [r.host for r in sentinel.replicas])  # type: ignore[misc]
        cut_at = time.monotonic()
        while time.monotonic() < cut_at + 12:
            if refused_at is None and _refuses_writes(sentinel):
                refused_at = time.monotonic() - cut_at
            time.sleep(0.2)
        lab.heal()
        readers = runner.result(t(120))
        assert sentinel.master_address() == sentinel.primary.address, "no failover expected"
    finally:
        hub1.stop()
        hub2.stop()
        sentinel.close()
    print(f"\nthe primary refuses writes {refused_at}s after losing its replicas")
    for (channel, host), reader in sorted(readers.items()):
        result = count(reader.numbers, range(total))
        print(f"{channel} read on {host}: {result}, gaps {reader.gaps}")
        assert result.is_exact and not reader.gaps, (channel, host, result)
    assert refused_at is not None and refused_at <= _max_lag_s() + 2.0, refused_at
    assert "NOREPLICAS" in hub1.output(), "the hub never met a refused write"
    assert "Traceback" not in hub1.output()
