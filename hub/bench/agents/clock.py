"""One clock for the run: the times in the messages, moved between an agent's monotonic clock
and the controller's.

Every ``*_ns`` field of a message is a time on the monotonic clock of the process that made it
(``Start.t0_ns``, ``Snapshot.t_ns``, ``RoundDone.first_send_ns``, ...); 0 means none. An agent
adds its measured offset to those of each command before its workers see it, so ``Start``'s
deadline is the same instant on every agent, and takes it off those of each event, so the
controller reads them on its own clock. The offset is measured at the handshake to half a
round trip (``handshake.py``). A message's own latency is not touched: it is timed where it is
received, against the sending worker's stamp, which is right only when sender and receiver
share a clock (one machine, or network namespaces of one; docs/bench.md, "Agents").
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["shift"]

T = TypeVar("T")


def shift(value: T, offset_ns: int) -> T:
    """``value`` with ``offset_ns`` added to every nonzero ``*_ns`` field, nested dataclasses
    included (a frozen message is rebuilt, never changed)."""
    if not offset_ns or not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(value):
        current = getattr(value, field.name)
        if field.name.endswith("_ns") and isinstance(current, int) and current:
            changes[field.name] = current + offset_ns
        elif dataclasses.is_dataclass(current) and not isinstance(current, type):
            moved = shift(current, offset_ns)
            if moved is not current:
                changes[field.name] = moved
    return dataclasses.replace(value, **changes) if changes else value
