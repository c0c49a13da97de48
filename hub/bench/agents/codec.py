"""The agents' value codec: the coordinator's messages (``messages.py``), the run's
:class:`~hub.bench.config.RunConfig` and whatever else a worker is started with, as JSON.

Nothing here is pickle: a peer can only make values of the kinds below, and dataclasses of
``hub.bench`` modules, field by field. That keeps the agent generic (a new message kind, or a
script's settings in the config, travels with no code here) without letting the peer name
any other class. JSON objects are reserved for the tags:

- ``{"$dc": "hub.bench.messages:Start", "f": {...}}``: a dataclass, by module and name;
- ``{"$b": "base64"}``: bytes (the encoded HdrHistograms, payloads);
- ``{"$t": [...]}``: a tuple; ``{"$d": [[key, value], ...]}``: a dict, any key type.

Pure: it imports modules of ``hub.bench`` only, by name, when it decodes a dataclass.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
from typing import Any

__all__ = ["CodecError", "decode", "dumps", "encode", "loads"]

#: The only package whose dataclasses a peer may name.
PACKAGE = "hub.bench."


class CodecError(ValueError):
    """A value this codec does not make or take; the message says which."""


def encode(value: Any) -> Any:
    """``value`` as JSON-able data, tagged where JSON alone would lose its type."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$t": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"$d": [[encode(k), encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith(PACKAGE):
            raise CodecError(f"{cls.__module__}.{cls.__qualname__} is not a hub.bench dataclass")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$dc": f"{cls.__module__}:{cls.__qualname__}", "f": fields}
    raise CodecError(f"cannot encode a {type(value).__name__}")


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` of."""
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise CodecError(f"not a tagged value: {str(data)[:80]}")
    if "$b" in data:
        return base64.b64decode(data["$b"], validate=True)
    if "$t" in data:
        return tuple(decode(v) for v in data["$t"])
    if "$d" in data:
        return {decode(k): decode(v) for k, v in data["$d"]}
    if "$dc" in data:
        cls = dataclass_named(data["$dc"])
        fields = data.get("f")
        if not isinstance(fields, dict):
            raise CodecError(f"{data['$dc']}: no fields")
        try:
            return cls(**{name: decode(v) for name, v in fields.items()})
        except TypeError as exc:  # a field this side does not have: another version
            raise CodecError(f"{data['$dc']}: {exc}") from None
    raise CodecError(f"unknown tag in {str(data)[:80]}")


def dataclass_named(name: Any) -> type:
    """The dataclass ``module:Name`` of a ``hub.bench`` module; anything else is refused."""
    if not isinstance(name, str) or ":" not in name or not name.startswith(PACKAGE):
        raise CodecError(f"{name!r} is not a hub.bench dataclass")
    module_name, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise CodecError(f"{name}: {exc}") from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise CodecError(f"{name} is not a dataclass")
    return cls


def dumps(frame: dict[str, Any]) -> bytes:
    """One frame (a JSON object of encoded values) as bytes."""
    return json.dumps(frame, separators=(",", ":")).encode()


def loads(raw: bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise CodecError("a frame is a JSON object with a 'type'")
    return frame
