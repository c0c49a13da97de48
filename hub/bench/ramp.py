"""Ramps, in phases. Connections: ``--ramp 0:1000/10s,1000:10000/30s`` opens sockets 0..999
evenly over the first 10 s, then sockets 1000..9999 over the next 30 s. Message rate:
``--rate-phases 100/10s,1000/30s`` publishes 100 messages/s (over all publishers) for 10 s,
then 1,000/s for 30 s. Pure."""

from __future__ import annotations

import re

__all__ = ["Phase", "RatePhase", "parse_ramp", "parse_rate_phases", "start_offset_s"]

Phase = tuple[int, int, float]  # (from socket count, to socket count, seconds)

RatePhase = tuple[float, float]  # (messages per second over all publishers, seconds)

_RATE_PHASE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*s?\s*$")
_PHASE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*/\s*(\d+(?:\.\d*)?)\s*s?\s*$")


def parse_ramp(text: str) -> tuple[Phase, ...]:
    """The phases of ``text``; ValueError says what is wrong. Each phase starts where the
    previous one ended, the first at 0, and grows."""
    phases: list[Phase] = []
    for part in text.split(","):
        match = _PHASE.match(part)
        if match is None:
            raise ValueError(f"--ramp phase {part!r}: expected FROM:TO/SECONDSs, e.g. 0:1000/10s")
        start, end, seconds = int(match[1]), int(match[2]), float(match[3])
        previous = phases[-1][1] if phases else 0
        if start != previous:
            raise ValueError(f"--ramp phase {part!r} starts at {start}, not at {previous}")
        if end <= start:
            raise ValueError(f"--ramp phase {part!r}: TO must be above FROM")
        phases.append((start, end, seconds))
    return tuple(phases)


def start_offset_s(phases: tuple[Phase, ...], index: int) -> float:
    """When socket ``index`` (from 0) connects, in seconds from the start of connecting."""
    elapsed = 0.0
    for start, end, seconds in phases:
        if index < end:
            return elapsed + seconds * (index - start) / (end - start)
        elapsed += seconds
    return elapsed


def parse_rate_phases(text: str) -> tuple[RatePhase, ...]:
    """The phases of ``text`` (``RATE/SECONDSs,...``); ValueError says what is wrong."""
    phases: list[RatePhase] = []
    for part in text.split(","):
        match = _RATE_PHASE.match(part)
        if match is None:
            raise ValueError(
                f"--rate-phases phase {part!r}: expected RATE/SECONDSs, e.g. 100/10s,1000/30s"
            )
        rate, seconds = float(match[1]), float(match[2])
        if rate <= 0 or seconds <= 0:
            raise ValueError(f"--rate-phases phase {part!r}: RATE and SECONDS must be above 0")
        phases.append((rate, seconds))
    return tuple(phases)
