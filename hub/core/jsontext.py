"""Strict JSON in and compact UTF-8 JSON out, the one way hub reads and writes JSON text."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson

__all__ = ["dump_json", "is_json_value", "parse_json"]


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity); raise ValueError on anything else."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dump_json(value: object) -> bytes:
    """Compact UTF-8 JSON; lone surrogates (legal in JSON text, not in UTF-8) are escaped."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def is_json_value(data: bytes) -> bool:
    """Whether ``data`` is exactly one JSON value in UTF-8.

    orjson checks the common case in a fraction of a microsecond; what it refuses gets a
    second look from ``parse_json``, which also takes the escaped lone surrogates that
    ``dump_json`` may write.
    """
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            parse_json(data)
        except (ValueError, UnicodeDecodeError):
            return False
    return True
