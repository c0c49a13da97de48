"""Byte sizes as settings write them: ``"4MiB"``, ``"512k"``, ``"1048576"``. Pure."""

from __future__ import annotations

from typing import Final

__all__ = ["MiB", "parse_bytes"]

MiB: Final = 1024 * 1024
_UNITS = {"k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": 1024 * MiB, "gib": 1024 * MiB}


def parse_bytes(text: str) -> int:
    """``"4MiB"``, ``"512k"`` or ``"1048576"`` as a number of bytes; ValueError otherwise."""
    t = text.strip().lower().replace("_", "")
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * _UNITS[unit])
    return int(t.removesuffix("b"))
