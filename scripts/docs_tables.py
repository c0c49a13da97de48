"""Write the generated tables into the docs: the README's `hub serve` options (from
hub/core/config.py) and docs/protocol.md's close codes (from hub/core/errors.py).

    python scripts/docs_tables.py          # rewrite them in place
    python scripts/docs_tables.py --check  # exit 1 if a doc is out of date

Each table sits between a `<!-- generated: NAME -->` line and the next blank line.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.core.docs import GENERATED, replace_generated  # noqa: E402


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
