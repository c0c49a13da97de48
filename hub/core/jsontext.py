"""Strict JSON in and compact UTF-8 JSON out, the one way hub reads and writes JSON text."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dump_json", "parse_json"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity); raise ValueError on anything else."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; lone surrogates (legal in JSON text, not in UTF-8) are escaped."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()
