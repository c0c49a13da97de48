"""The TOML config file (``hub serve --config hub.toml``), parsed with tomllib and validated.
Pure: ``Settings.from_env`` reads the file's bytes and hands them over.

Every flag can be set at the top level under its setting name (``history_size = 100``,
``redis_url = "redis://…"``) or its flag's name (``redis = …``, ``history-size = 100``: dashes
or underscores); ``hub serve --print-config`` prints them all. ``[[namespaces]]`` entries give
per-channel options. A bad key or value raises ConfigError naming the file, the key and the
value, and an unknown key the setting it most likely means.

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
import difflib
import math
import tomllib
from collections.abc import Sequence
from typing import Any, Protocol

from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions, Namespace
from hub.core.sizes import parse_bytes

__all__ = [
    "NAMESPACE_KEYS",
    "Setting",
    "namespaces_toml",
    "parse_config",
    "setting_keys",
    "toml_value",
]

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

    @property
    def flag(self) -> str: ...


def parse_config(
    data: bytes,
    path: str,
    settings: Sequence[Setting],
    *,
    written: dict[str, str] | None = None,
) -> tuple[dict[str, object], tuple[Namespace, ...]]:
    """(setting name → value, namespaces) from the bytes of the file at ``path``.

    A setting's key is its name or its flag's (``redis`` for ``redis_url``), with dashes or
    underscores; ``written``, when given, receives each setting's key as the file spells it.
    """
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("HUB_CONFIG", path, f"not valid TOML: {exc}") from None
    by_key = setting_keys(settings)
    spelled: dict[str, str] = {}
    values: dict[str, object] = {}
    namespaces: tuple[Namespace, ...] = ()
    for key, value in doc.items():
        if key == "namespaces":
            namespaces = _namespaces(path, value)
            continue
        opt = by_key.get(key.replace("-", "_"))
        if opt is None:
            raise ConfigError(f"{path}: {key}", value, _unknown(key, by_key))
        if opt.name in spelled:
            raise ConfigError(
                f"{path}: {key}", value, f"{spelled[opt.name]} sets the same setting already"
            )
        spelled[opt.name] = key
        values[opt.name] = _typed(
            f"{path}: {key}", value, opt.type, is_bytes=opt.name.endswith("_bytes")
        )
    if written is not None:
        written.update(spelled)
    return values, namespaces


def setting_keys(settings: Sequence[Setting]) -> dict[str, Setting]:
    """Every key the file takes for a setting (its name, and its flag's name with ``_``),
    ``config`` aside: a file does not name another."""
    keys: dict[str, Setting] = {}
    for opt in settings:
        if opt.name != "config":
            keys[opt.flag.removeprefix("--").replace("-", "_")] = opt
            keys[opt.name] = opt
    return keys


def _unknown(key: str, by_key: dict[str, Setting]) -> str:
    names = sorted({o.name for o in by_key.values()})
    close = difflib.get_close_matches(key.replace("-", "_"), list(by_key), n=1)
    hint = f"did you mean {by_key[close[0]].name}? " if close else ""
    return (
        f"unknown setting; {hint}the keys are the settings' names (hub serve --print-config "
        f"prints them all): {', '.join(names)}, and [[namespaces]]"
    )


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
        name = key.replace("-", "_")
        expected = _NAMESPACE_TYPES.get(name)
        if expected is None:
            raise ConfigError(
                f"{where}.{key}", value, f"unknown key; use one of {', '.join(NAMESPACE_KEYS)}"
            )
        if name in fields:
            raise ConfigError(f"{where}.{key}", value, "this entry sets it twice")
        fields[name] = _typed(f"{where}.{key}", value, expected)
    pattern: str = fields.pop("pattern")
    options = ChannelOptions(**fields)
    problem = options.problem()
    if problem is not None:
        key, value, reason = problem
        raise ConfigError(f"{where}.{key}", value, reason)
    return Namespace(pattern, options)


def toml_value(value: object) -> str:
    """``value`` (a str, int, float or bool) as a TOML literal that ``tomllib`` reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if value != value else "inf")
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch < " " or ch == "\x7f" or 0xD800 <= ord(ch) <= 0xDFFF:
                out.append(f"\\u{ord(ch) if ord(ch) < 0xD800 else 0xFFFD:04X}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    raise TypeError(f"no TOML literal for {type(value).__name__}")


def namespaces_toml(namespaces: Sequence[Namespace]) -> str:
    """The ``[[namespaces]]`` tables of ``namespaces``, every option written out."""
    tables = []
    for ns in namespaces:
        lines = ["[[namespaces]]", f"pattern = {toml_value(ns.pattern)}"]
        for f in dataclasses.fields(ns.options):
            lines.append(f"{f.name} = {toml_value(getattr(ns.options, f.name))}")
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)
