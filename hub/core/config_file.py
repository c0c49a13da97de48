"""The TOML config file (``hub serve --config hub.toml``), read with tomllib and validated.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions, Namespace

if TYPE_CHECKING:
    from hub.core.config import Option

__all__ = ["NAMESPACE_KEYS", "read_config_file"]

NAMESPACE_KEYS: tuple[str, ...] = (
    "pattern",
    *(f.name for f in dataclasses.fields(ChannelOptions)),
)
_NAMESPACE_TYPES: dict[str, type] = {"pattern": str} | {
    f.name: {"int": int, "float": float, "bool": bool}[str(f.type)]
    for f in dataclasses.fields(ChannelOptions)
}


def read_config_file(
    path: str, options: Sequence[Option]
) -> tuple[dict[str, Any], tuple[Namespace, ...]]:
    """(setting name → value, namespaces) from the file at ``path``."""
    try:
        doc = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError("HUB_CONFIG", path, f"cannot read the config file: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("HUB_CONFIG", path, f"not valid TOML: {exc}") from None
    by_name = {o.name: o for o in options if o.name != "config"}
    values: dict[str, Any] = {}
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


def _typed(where: str, value: Any, expected: type, *, is_bytes: bool = False) -> Any:
    if is_bytes and isinstance(value, str):
        from hub.core.config import parse_bytes

        try:
            return parse_bytes(value)
        except ValueError:
            raise ConfigError(where, value, "expected a size such as 4MiB or 65536") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(where, value, f"expected {expected.__name__}")
    return value


def _namespaces(path: str, entries: Any) -> tuple[Namespace, ...]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: namespaces", entries, "use [[namespaces]] tables")
    out: list[Namespace] = []
    for index, entry in enumerate(entries):
        where = f"{path}: namespaces[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, entry, "each [[namespaces]] entry is a table")
        if "pattern" not in entry:
            raise ConfigError(where, entry, 'needs pattern = "glob", e.g. pattern = "chat.*"')
        fields: dict[str, Any] = {}
        for key, value in entry.items():
            expected = _NAMESPACE_TYPES.get(key)
            if expected is None:
                raise ConfigError(
                    f"{where}.{key}", value, f"unknown key; use one of {', '.join(NAMESPACE_KEYS)}"
                )
            fields[key] = _typed(f"{where}.{key}", value, expected)
        pattern = fields.pop("pattern")
        options = ChannelOptions(**fields)
        problem = options.problem()
        if problem is not None:
            key, value, reason = problem
            raise ConfigError(f"{where}.{key}", value, reason)
        out.append(Namespace(pattern, options))
    return tuple(out)
