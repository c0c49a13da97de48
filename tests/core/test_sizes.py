"""Byte sizes as settings write them (pure)."""

from __future__ import annotations

import pytest

from hub.core.sizes import MiB, parse_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("1024b", 1024),
        ("2k", 2048),
        ("2KiB", 2048),
        ("4MiB", 4 * MiB),
        ("4m", 4 * MiB),
        ("1.5m", 3 * MiB // 2),
        ("1g", 1024 * MiB),
        (" 1_000_000 ", 1_000_000),
    ],
)
def test_sizes_with_and_without_units(text: str, size: int) -> None:
    """k/KiB, m/MiB and g/GiB are powers of 1024, case-insensitive; a bare number is bytes."""
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "four", "4 parsecs"])
def test_a_size_that_is_not_one_raises_value_error(text: str) -> None:
    """Anything else is a ValueError, which the callers turn into a ConfigError."""
    with pytest.raises(ValueError):
        parse_bytes(text)
