"""The docs' generated tables agree with the code they come from."""

from __future__ import annotations

import pytest
from support import ROOT

from hub.core.docs import GENERATED, replace_generated
from hub.core.errors import CLOSE_CODES


@pytest.mark.parametrize("doc", sorted(GENERATED))
def test_generated_tables_are_current(doc: str) -> None:
    """Each generated table in the docs is exactly what the code generates now: after a
    change, run python scripts/docs_tables.py."""
    text = (ROOT / doc).read_text()
    assert replace_generated(text, GENERATED[doc]) == text, f"{doc} is out of date"


def test_every_close_code_is_in_the_protocol_reference() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    for code, rule in CLOSE_CODES.items():
        assert f"| {int(code)} | {rule.when} |" in text


def test_a_stale_table_is_replaced_and_a_missing_marker_is_an_error() -> None:
    doc = "intro\n\n<!-- generated: t -->\n| old |\n\nafter\n"
    assert replace_generated(doc, {"t": lambda: "| new |\n"}) == (
        "intro\n\n<!-- generated: t -->\n| new |\n\nafter\n"
    )
    with pytest.raises(ValueError, match="marker"):
        replace_generated("no marker here", {"t": lambda: "x"})
