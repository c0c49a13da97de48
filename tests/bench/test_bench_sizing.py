"""Tests of hub.bench.sizing: processes, file descriptors and source addresses."""

from __future__ import annotations

import pathlib

import pytest

from hub.bench.sizing import (
    FD_MARGIN,
    SizingError,
    check_fd_limit,
    default_procs,
    local_port_range,
    pick_source_addrs,
    place,
    source_port,
    worker_indices,
)


def test_fd_limit_fits() -> None:
    """Sockets per process plus the margin within the limit pass."""
    check_fd_limit(19_900, 1, 20_000)
    check_fd_limit(100_000, 6, 20_000)


def test_fd_limit_too_few_procs() -> None:
    """Too many sockets per process fail, naming the --procs needed."""
    with pytest.raises(SizingError, match="--procs 6"):
        check_fd_limit(100_000, 5, 20_000)
    with pytest.raises(SizingError):
        check_fd_limit(20_000 - FD_MARGIN + 1, 1, 20_000)


def test_default_procs() -> None:
    """By default one process per CPU, no more than sockets, more when fds need it."""
    assert default_procs(10, 2, 20_000) == 2
    assert default_procs(1, 8, 20_000) == 1
    assert default_procs(100_000, 2, 20_000) == 6


def test_source_addrs() -> None:
    """Loopback targets get extra 127.0.0.x sources past 25k sockets per address pair."""
    assert pick_source_addrs(1000, ["ws://127.0.0.1:1"], None) == []
    assert pick_source_addrs(60_000, ["ws://127.0.0.1:1"], None) == [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
    ]
    # Two targets halve the sockets per pair.
    assert pick_source_addrs(50_000, ["ws://127.0.0.1:1", "ws://127.0.0.1:2"], None) == []
    with pytest.raises(SizingError):
        pick_source_addrs(60_000, ["ws://10.0.0.1:1"], None)
    with pytest.raises(SizingError):
        pick_source_addrs(60_000, ["ws://127.0.0.1:1"], ["127.0.0.5"])


def test_placement_spreads_evenly() -> None:
    """Sockets spread evenly over targets, sources and processes."""
    urls = ["ws://a", "ws://b"]
    addrs = ["127.0.0.2", "127.0.0.3"]
    places = [place(i, urls, addrs) for i in range(8)]
    assert [p.url for p in places].count("ws://a") == 4
    assert {(p.url, p.source_addr) for p in places} == {(u, a) for u in urls for a in addrs}
    owned = [list(worker_indices(10, w, 3)) for w in range(3)]
    assert sorted(i for part in owned for i in part) == list(range(10))
    assert place(0, urls, []).source_addr is None


def test_source_ports_unique_per_address_pair() -> None:
    """Each socket of a (target, source address) pair gets its own port, counted up from the
    bottom of the range; none past the range, and none without source addresses."""
    urls = ["ws://a", "ws://b"]
    addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    n = 6 * 1000
    tuples = set()
    for i in range(n):
        spot = place(i, urls, addrs)
        tuples.add((spot.url, spot.source_addr, source_port(i, urls, addrs, (40000, 60000))))
    assert len(tuples) == n
    ports = {t[2] for t in tuples}
    assert min(ports) == 40000 and max(ports) == 40000 + 999  # type: ignore[operator]
    assert source_port(6 * 5, urls, addrs, (40000, 40004)) is None  # the 6th of its pair
    assert source_port(6 * 4, urls, addrs, (40000, 40004)) == 40004
    assert source_port(0, urls, [], (40000, 60000)) is None


def test_local_port_range(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "range"
    path.write_text("1024\t2047\n")
    assert local_port_range(str(path)) == (1024, 2047)
    assert local_port_range(str(tmp_path / "absent")) == (32768, 60999)
