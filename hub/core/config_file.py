"""The TOML config file (``hub serve --config hub.toml``), parsed with tomllib and validated.
Pure: ``Settings.from_env`` reads the file's bytes and hands them over.

Every flag can be set at the top level under its setting name (``history_size = 100``, the
flag's name with ``_`` for ``-``); ``[[namespaces]]`` entries give per-channel options. A bad
key or value raises ConfigError naming the file, the key and the value.

    port = 8765
    history_size = 100
    history_ttl_s = 300

    [[namespaces]]
    pattern = "chat.*"
    history_size = 1000
    history_ttl_s = 3600
    presence = true
    join_leave = true

    [[namespaces]]
    pattern = "ticker.*"        # no history, no presence
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from typing import Any, Protocol

from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions, Namespace
from hub.core.sizes import parse_bytes

__all__ = ["NAMESPACE_KEYS", "Setting", "parse_config"]

NAMESPACE_KEYS: tuple[str, ...] = (
    "pattern",
    *(f.name for f in dataclasses.fields(ChannelOptions)),
)
_NAMESPACE_TYPES: dict[str, type] = {"pattern": str} | {
    f.name: {"int": int, "float": float, "bool": bool}[str(f.type)]
    for f in dataclasses.fields(ChannelOptions)
}


class Setting(Protocol):
    """What the file needs to know of a setting (``hub.core.config.Option`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> type: ...


def parse_config(
    data: bytes, path: str, settings: Sequence[Setting]
) -> tuple[dict[str, object], tuple[Namespace, ...]]:
    """(setting name → value, namespaces) from the bytes of the file at ``path``."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("HUB_CONFIG", path, f"not valid TOML: {exc}") from None
    by_name = {o.name: o for o in settings if o.name != "config"}
    values: dict[str, object] = {}
    namespaces: tuple[Namespace, ...] = ()
    for key, value in doc.items():
        if key == "namespaces":
            namespaces = _namespaces(path, value)
            continue
        opt = by_name.get(key)
        if opt is None:
            raise ConfigError(
                f"{path}: {key}",
                value,
                f"unknown setting; use one of {', '.join(sorted(by_name))} or [[namespaces]]",
            )
        values[key] = _typed(f"{path}: {key}", value, opt.type, is_bytes=key.endswith("_bytes"))
    return values, namespaces


def _typed(where: str, value: object, expected: type, *, is_bytes: bool = False) -> object:
    if is_bytes and isinstance(value, str):
        try:
            return parse_bytes(value)
        except ValueError:
            raise ConfigError(where, value, "expected a size such as 4MiB or 65536") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(where, value, f"expected {expected.__name__}")
    return value


def _namespaces(path: str, entries: object) -> tuple[Namespace, ...]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: namespaces", entries, "use [[namespaces]] tables")
    return tuple(_namespace(f"{path}: namespaces[{i}]", e) for i, e in enumerate(entries))


def _namespace(where: str, entry: object) -> Namespace:
    if not isinstance(entry, dict):
        raise ConfigError(where, entry, "each [[namespaces]] entry is a table")
    if "pattern" not in entry:
        raise ConfigError(where, entry, 'needs pattern = "glob", e.g. pattern = "chat.*"')
    fields: dict[str, Any] = {}  # ChannelOptions's fields, each checked by _typed
    for key, value in entry.items():
        expected = _NAMESPACE_TYPES.get(key)
        if expected is None:
            raise ConfigError(
                f"{where}.{key}", value, f"unknown key; use one of {', '.join(NAMESPACE_KEYS)}"
            )
        fields[key] = _typed(f"{where}.{key}", value, expected)
    pattern: str = fields.pop("pattern")
    options = ChannelOptions(**fields)
    problem = options.problem()
    if problem is not None:
        key, value, reason = problem
        raise ConfigError(f"{where}.{key}", value, reason)
    return Namespace(pattern, options)
