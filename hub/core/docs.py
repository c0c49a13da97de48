"""The tables that the docs carry, generated from the one place each fact lives, so the docs
cannot drift from the code (``scripts/docs_tables.py`` writes them; a test checks them)."""

from __future__ import annotations

import re
from collections.abc import Callable

from hub.core.config import OPTIONS
from hub.core.errors import close_codes_table

__all__ = ["GENERATED", "describe_default", "flags_table", "replace_generated"]


def describe_default(value: object) -> str:
    """A setting's default as `hub serve --help` and the README show it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def flags_table() -> str:
    rows = ["| flag | environment variable | default | what it does |", "|---|---|---|---|"]
    for o in OPTIONS:
        default = describe_default(o.default)
        shown = default if o.default is None or isinstance(o.default, bool) else f"`{default}`"
        rows.append(f"| `{o.flag}` | `{o.env}` | {shown} | {o.help} |")
    return "\n".join(rows) + "\n"


#: doc path → table name → its generator.
GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"flags": flags_table},
    "docs/protocol.md": {"close-codes": close_codes_table},
}


def replace_generated(text: str, tables: dict[str, Callable[[], str]]) -> str:
    """``text`` with each ``<!-- generated: NAME -->`` block replaced by its table."""
    for name, make in tables.items():
        pattern = re.compile(rf"(<!-- generated: {re.escape(name)}[^\n]*-->\n)(.*?)(\n\n|\Z)", re.S)
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"no '<!-- generated: {name} -->' marker")
        start, end = match.span(2)
        text = text[:start] + make().rstrip("\n") + text[end:]
    return text
