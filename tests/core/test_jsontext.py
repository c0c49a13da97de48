"""Strict JSON in, compact UTF-8 JSON out (pure)."""

from __future__ import annotations

import pytest

from hub.core.jsontext import dump_json, is_json_value, parse_json


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "{", "", "[" * 100_000])
def test_parse_json_refuses_what_strict_json_does_not_allow(text: str) -> None:
    """NaN, Infinity, broken and too deeply nested text all raise ValueError."""
    with pytest.raises(ValueError):
        parse_json(text)


def test_parse_json_reads_text_and_bytes() -> None:
    """Both str and UTF-8 bytes parse to the same value."""
    assert parse_json('{"a": [1, 2.5, null]}') == parse_json(b'{"a":[1,2.5,null]}')
    assert parse_json('"\\u00e9"') == "é"


def test_dump_json_is_compact_utf8_and_escapes_lone_surrogates() -> None:
    """No spaces, non-ASCII as UTF-8 bytes; a lone surrogate falls back to an escape."""
    assert dump_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert dump_json("\ud800") == b'"\\ud800"'
    assert parse_json(dump_json("\ud800")) == "\ud800"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}', True),
        (b" 42 ", True),
        (b'"\\ud800"', True),  # an escaped lone surrogate: valid JSON, orjson refuses it
        (b"1 2", False),
        (b'{"a":1},{"b":2}', False),
        (b"NaN", False),
        (b'"\xc3\x28"', False),  # not UTF-8
        (b"", False),
    ],
)
def test_is_json_value_means_exactly_one_value(data: bytes, expected: bool) -> None:
    """One JSON value in UTF-8 and nothing more, whichever parser decides."""
    assert is_json_value(data) is expected
