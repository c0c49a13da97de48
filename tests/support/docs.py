"""The fenced code blocks of the README and docs/, each with where it is and its doc-test mark.

A block may be preceded (on the line just above its fence) by an HTML comment that tells
tests/e2e/test_docs_run.py how to run it; the reader of the rendered page never sees it:

- ``<!-- doc-test: expect TEXT -->``: run it, and pass once its output holds TEXT (a block
  that reads on forever is then stopped);
- ``<!-- doc-test: skip REASON -->``: do not run it, for the REASON given (which is required).

A block with no mark must run to its end, with exit status 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from support.waits import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"<!-- doc-test: (expect|skip) (.+?) -->\n\Z")


@dataclass(frozen=True)
class Block:
    where: str  # path:line of the fence
    language: str
    body: str
    mark: str = ""  # "expect" or "skip", or "" for a block that must run to its end
    argument: str = ""

    def __str__(self) -> str:  # the test id
        return self.where


def blocks(language: str) -> list[Block]:
    """Every block of ``language`` in the README and docs/, in reading order."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) != language:
                continue
            before = text[: match.start()]
            mark = MARK.search(before[before.rfind("\n", 0, len(before) - 1) + 1 :])
            out.append(
                Block(
                    where=f"{path.relative_to(ROOT)}:{before.count(chr(10)) + 1}",
                    language=language,
                    body=match.group(2),
                    mark=mark.group(1) if mark else "",
                    argument=mark.group(2) if mark else "",
                )
            )
    return out
