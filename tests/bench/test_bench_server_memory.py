"""Tests of hub.bench.server_memory: the server's RSS read from Prometheus text."""

from __future__ import annotations

from hub.bench.server_memory import parse_resident_memory


def test_parse_resident_memory() -> None:
    """All process_resident_memory_bytes samples are summed; other metrics are ignored."""
    text = (
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        'process_resident_memory_bytes{pid="1"} 1.5e+06\n'
        'process_resident_memory_bytes{pid="2"} 500000.0\n'
        "process_resident_memory_bytes_total 99\n"
        "process_virtual_memory_bytes 1e9\n"
    )
    assert parse_resident_memory(text) == 2_000_000
    assert parse_resident_memory("process_resident_memory_bytes 42\n") == 42
    assert parse_resident_memory("up 1\n") is None
