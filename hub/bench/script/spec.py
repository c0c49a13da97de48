"""What a ``hub bench script`` run is, as every worker gets it: the script's text (never a
path, so that a worker on another host can run it), its per-VU data rows, and the executor
that says how many VUs run when. Pure and picklable; parsing ``--stages`` is here too."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CONSTANT", "EXECUTORS", "RAMPING", "RATE", "Executor", "ScriptSpec", "parse_stages"]

CONSTANT = "constant-vus"
RAMPING = "ramping-vus"
RATE = "constant-arrival-rate"
EXECUTORS = (CONSTANT, RAMPING, RATE)

_STAGE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*:\s*([0-9]+)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Executor:
    """The k6 executors: ``constant-vus`` (``vus`` VUs for ``duration_s``), ``ramping-vus``
    (the VU count goes linearly from each stage's start to its target), and
    ``constant-arrival-rate`` (``rate`` iterations per second started for ``duration_s``,
    each by a free VU of at most ``vus``; one with no VU free is dropped and counted)."""

    kind: str = CONSTANT
    vus: int = 1  # constant: the VUs; ramping: the highest stage target; rate: --max-vus
    duration_s: float = 10.0
    stages: tuple[tuple[float, int], ...] = ()  # ramping: (seconds, target VUs)
    rate: float = 0.0  # arrival rate: iterations started per second over all workers
    graceful_stop_s: float = 5.0  # how long iterations still running at the end may finish

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "max_vus": self.vus}
        if self.kind == RAMPING:
            out["stages"] = [{"seconds": s, "target": t} for s, t in self.stages]
        else:
            out["duration_s"] = self.duration_s
        if self.kind == RATE:
            out["rate_per_s"] = self.rate
        out["graceful_stop_s"] = self.graceful_stop_s
        return out


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """The script, as text, with the name its tracebacks show, and the run's data rows
    (``--data FILE.csv``: VU ``id`` gets row ``id % len(rows)``)."""

    text: str
    filename: str
    executor: Executor
    data: tuple[dict[str, str], ...] = ()
    protocol: str = "raw"  # what vu.connect speaks unless told (--protocol)


def parse_stages(text: str) -> tuple[tuple[float, int], ...]:
    """``10s:100,30s:1000,10s:0`` → ((10.0, 100), (30.0, 1000), (10.0, 0)); a bare number is
    seconds, and ms, s, m, h are allowed. ValueError says what to write."""
    stages = []
    for part in text.split(","):
        match = _STAGE.match(part)
        if match is None:
            raise ValueError(
                f"--stages {text!r}: each stage is DURATION:TARGET, e.g. "
                "10s:100,30s:1000,10s:0 (ramp to 100 VUs over 10 s, to 1,000 over 30 s, down "
                "to 0 over 10 s)"
            )
        number, unit, target = match.groups()
        seconds = float(number) * _SECONDS[unit]
        if seconds <= 0:
            raise ValueError(f"--stages {text!r}: a stage lasts more than 0 s")
        stages.append((seconds, int(target)))
    if not any(target for _, target in stages):
        raise ValueError(f"--stages {text!r}: no stage has a VU")
    return tuple(stages)
