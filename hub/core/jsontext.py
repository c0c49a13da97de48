"""Strict JSON in and compact UTF-8 JSON out, the one way hub reads and writes JSON text.

Numbers: JSON has no Infinity or NaN, so a number beyond a 64-bit float (``1e999``) is
refused (``NonFiniteNumber``). A message's JSON (``parse_json(..., exact=True)``) keeps
each number as written: where Python's float would write it back otherwise (``1E2`` as
``100.0``, ``1.50``, ``-0``, digits past a double's), the number is kept as its text, a
``JSONNumber``, which ``dump_json`` writes back unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

import orjson

__all__ = ["JSONNumber", "NonFiniteNumber", "dump_json", "is_json_value", "parse_json"]


class NonFiniteNumber(ValueError):
    """A JSON number too large for a 64-bit float, which would become Infinity."""

    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        super().__init__(
            f"the number {shown} is beyond a 64-bit float; JSON has no Infinity or NaN"
        )


class JSONNumber:
    """A JSON number kept as its text, because a Python float would change it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JSONNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan
        raise NonFiniteNumber(text)
    return value


def _exact_float(text: str) -> float | JSONNumber:
    value = float(text)
    if repr(value) == text:
        return value
    if value - value != 0.0:
        raise NonFiniteNumber(text)
    return JSONNumber(text)


def _exact_int(text: str) -> int | JSONNumber:
    return JSONNumber(text) if text == "-0" else int(text)


#: A fraction or an exponent: only such a number can be beyond a double, or be written back
#: otherwise by a float (besides ``-0``). Text without any, the usual message, is parsed at
#: the C decoder's speed; a match in a string costs only the checked parse.
_MAY_BE_A_FLOAT: Final = re.compile(r"[0-9][.eE]")

_PLAIN = json.JSONDecoder(parse_constant=_reject_constant)
_CHECKED = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
_EXACT_FLOATS = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_exact_float)
_EXACT = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_exact_float, parse_int=_exact_int
)


def parse_json(text: str | bytes, *, exact: bool = False) -> Any:
    """Parse strict JSON: no NaN or Infinity, no number beyond a double (NonFiniteNumber);
    raise ValueError on anything else. With ``exact``, numbers that a float would change
    come back as ``JSONNumber`` (see the module's docstring)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    if text.startswith("\ufeff"):
        raise ValueError("a JSON text does not start with a byte order mark")
    if exact:
        decoder = _EXACT if "-0" in text else _EXACT_FLOATS
    else:
        decoder = _CHECKED if _MAY_BE_A_FLOAT.search(text) is not None else _PLAIN
    try:
        return decoder.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class _HasJSONNumber(Exception):
    pass


def _no_default(value: object) -> NoReturn:
    if isinstance(value, JSONNumber):
        raise _HasJSONNumber
    raise TypeError(f"{type(value).__name__} is not JSON")


def dump_json(value: object) -> bytes:
    """Compact UTF-8 JSON; lone surrogates (legal in JSON text, not in UTF-8) are escaped.
    Infinity and NaN raise ValueError; a ``JSONNumber`` is written as its text."""
    try:
        try:
            text = json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                default=_no_default,
            )  # fmt: skip
        except _HasJSONNumber:
            text = "".join(_dump_exact(value))
        return text.encode()
    except UnicodeEncodeError:
        return "".join(_dump_exact(value, ensure_ascii=True)).encode()


def _dump_exact(value: object, *, ensure_ascii: bool = False) -> list[str]:
    """What ``json.dumps`` writes, in pieces, with each JSONNumber as its text."""
    parts: list[str] = []

    def scalar(item: object) -> str:
        return json.dumps(item, ensure_ascii=ensure_ascii, allow_nan=False)

    def walk(item: object) -> None:
        if isinstance(item, JSONNumber):
            parts.append(item.text)
        elif isinstance(item, dict):
            parts.append("{")
            for n, (key, member) in enumerate(item.items()):
                parts.append(("," if n else "") + scalar(str(key)) + ":")
                walk(member)
            parts.append("}")
        elif isinstance(item, list | tuple):
            parts.append("[")
            for n, member in enumerate(item):
                if n:
                    parts.append(",")
                walk(member)
            parts.append("]")
        else:
            parts.append(scalar(item))

    try:
        walk(value)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return parts


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
