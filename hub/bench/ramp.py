"""Connection ramps: ``--ramp 0:1000/10s,1000:10000/30s`` opens sockets 0..999 evenly over the
first 10 s, then sockets 1000..9999 over the next 30 s. Pure."""

from __future__ import annotations

import re

__all__ = ["Phase", "parse_ramp", "start_offset_s"]

Phase = tuple[int, int, float]  # (from socket count, to socket count, seconds)

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
