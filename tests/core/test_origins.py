"""Origins compare exactly, after RFC 6454's normalisation (pure)."""

from __future__ import annotations

import pytest

from hub.core.config import Settings
from hub.core.origins import normalize_origin


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        ("HTTPS://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", "null"),
        ("https://app.example.com/", None),
        ("https://app.example.com//", None),
        ("https://app.example.com/path", None),
        ("https://user@app.example.com", None),
        ("https://app.example.com?x=1", None),
        ("app.example.com", None),
        ("https://app.example.com:99999", None),
    ],
)
def test_normalize_origin(value: str, origin: str | None) -> None:
    """Scheme and host lowercased, default port dropped; a path, user or query: None."""
    assert normalize_origin(value) == origin


def test_allowed_origins_take_one_trailing_slash_and_nothing_else() -> None:
    """--allowed-origins values are normalized, one trailing slash dropped."""
    allowed = Settings(allowed_origins="https://App.example/, http://b.example:80").origins
    assert allowed == frozenset({"https://app.example", "http://b.example"})
    assert normalize_origin("https://app.example//") not in allowed
