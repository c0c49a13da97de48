"""Write the generated tables into the docs: the README's `hub serve` options (from
hub/core/config.py) and docs/protocol.md's close codes (from hub/core/errors.py), so the docs
cannot drift from the one place each fact lives (tests/test_docs_snippets.py checks them).

    python scripts/docs_tables.py          # rewrite them in place
    python scripts/docs_tables.py --check  # exit 1 if a doc is out of date

Each table sits between a `<!-- generated: NAME -->` line and the next blank line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.core.config import OPTIONS, describe_default  # noqa: E402
from hub.core.errors import close_codes_table  # noqa: E402

__all__ = ["GENERATED", "flags_table", "main", "replace_generated"]


def flags_table() -> str:
    """The README's table of `hub serve` options, generated from OPTIONS."""
    rows = [
        "| flag | environment variable | TOML key (`--config`) | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        default = describe_default(o.default)
        shown = default if o.default is None or isinstance(o.default, bool) else f"`{default}`"
        key = "(none: a file names no other)" if o.name == "config" else f"`{o.name}`"
        rows.append(f"| `{o.flag}` | `{o.env}` | {key} | {shown} | {o.help} |")
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


def main(argv: list[str]) -> int:
    stale = []
    for doc, tables in GENERATED.items():
        path = ROOT / doc
        text = path.read_text()
        new = replace_generated(text, tables)
        if new != text:
            stale.append(doc)
            if "--check" not in argv:
                path.write_text(new)
    if stale and "--check" in argv:
        print(f"out of date: {', '.join(stale)}; run python scripts/docs_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
