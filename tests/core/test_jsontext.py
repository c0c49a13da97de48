"""Strict JSON in, compact UTF-8 JSON out (pure)."""

from __future__ import annotations

import pytest

from hub.core.jsontext import JSONNumber, NonFiniteNumber, dump_json, is_json_value, parse_json


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


@pytest.mark.parametrize(
    "text", ["1e999", "-1e400", '{"a": [1, 123e4567]}', "1" + "0" * 400 + ".5"]
)
def test_numbers_beyond_a_double_are_refused(text: str) -> None:
    """A number that a float would hold as Infinity raises NonFiniteNumber, exact or not."""
    for exact in (False, True):
        with pytest.raises(NonFiniteNumber, match="JSON has no Infinity or NaN"):
            parse_json(text, exact=exact)


@pytest.mark.parametrize(
    "text",
    ["1E2", "-0", "1.50", "0.1000000000000000055511151231257827", "1e-7", "2.0E+3", "-0e0"],
)
def test_exact_parsing_keeps_each_number_as_written(text: str) -> None:
    """Numbers that a float writes back otherwise are kept as their text, in any nesting."""
    framed = f'{{"a": [{text}, 1, 2.5, "x-0"], "b": {text}}}'
    assert (
        dump_json(parse_json(framed, exact=True))
        == f'{{"a":[{text},1,2.5,"x-0"],"b":{text}}}'.encode()
    )
    assert dump_json(parse_json(text, exact=True)) == text.encode()
    assert dump_json(parse_json(text)) != text.encode()  # without exact: a float's text


def test_plain_numbers_stay_python_numbers() -> None:
    """Canonical numbers are ints and floats, exact or not; big integers are exact."""
    value = parse_json("[42, 0.5, -0.0, 12345678901234567890123]", exact=True)
    assert value == [42, 0.5, -0.0, 12345678901234567890123]
    assert all(type(v) in (int, float) for v in value)
    assert parse_json("1E2") == 100.0 and parse_json("1E2", exact=True) == JSONNumber("1E2")


def test_dump_json_refuses_non_finite_floats() -> None:
    """Infinity and NaN are not JSON: dump_json raises rather than writing them."""
    for value in (float("inf"), [float("nan")]):
        with pytest.raises(ValueError):
            dump_json(value)
