"""The JSON report's shape: its schema name, and the types the code reads it as.

The report is the bench's public output (docs/bench.md documents each field), so it stays plain
JSON-shaped dicts; what the processes say to each other is typed apart, in ``messages.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA", "Report", "Section"]

SCHEMA = "hub-bench/1"

#: The whole JSON report.
Report = dict[str, Any]
#: One part of it (``connections``, ``messages``, one of ``rounds``...).
Section = dict[str, Any]
