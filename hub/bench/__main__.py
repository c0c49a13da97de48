"""``python -m hub.bench``: the same as ``hub bench``."""

from __future__ import annotations

import sys

from hub.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
