"""Channel-name rules (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.channels import DEFAULT_CHANNEL, channel_from_path, channel_user, validate
from hub.core.errors import InvalidChannel

VALID_CHARS = "ABCXYZabcxyz0189_-.:/"


@pytest.mark.parametrize("name", ["a", "chat.room-1", "a/b:c_d", "x" * 200, "A-Z_09.:/"])
def test_valid_names_pass(name: str) -> None:
    """Names of 1-200 allowed characters not starting with '/' are valid."""
    assert validate(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 201, "201 characters"),
        ("/x", "starts with '/'"),
        ("a b", "' '"),
        ("caf\u00e9", "'\u00e9'"),
        ("a?b", "'?'"),
    ],
)
def test_invalid_names_say_why_and_what_is_valid(name: str, reason: str) -> None:
    """An invalid name raises InvalidChannel naming the problem and the rule."""
    with pytest.raises(InvalidChannel) as info:
        validate(name)
    assert reason in str(info.value)
    assert "1 to 200 characters" in str(info.value)


def test_paths_map_to_channels() -> None:
    """The path without its slash is the channel; '/' is 'default'; the query is ignored."""
    assert channel_from_path("/") == DEFAULT_CHANNEL == "default"
    assert channel_from_path("/news") == "news"
    assert channel_from_path("/a/b?token=x") == "a/b"
    with pytest.raises(InvalidChannel):
        channel_from_path("//double")


@given(st.text(max_size=250))
def test_validate_never_raises_anything_else(name: str) -> None:
    """Any text is either valid or an InvalidChannel, and the verdict matches the rule."""
    ok = 1 <= len(name) <= 200 and all(
        c in VALID_CHARS or (c.isascii() and c.isalnum()) for c in name
    )
    ok = ok and not name.startswith("/")
    try:
        validate(name)
    except InvalidChannel:
        assert not ok
    else:
        assert ok


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("notifications#alice", "alice"),
        ("inbox#alice@example.com", "alice@example.com"),
        ("n#auth0|5f1e", "auth0|5f1e"),
        ("a/b:c#7d0c6f6e-8a3b-4c2d-9e1f-0a1b2c3d4e5f", "7d0c6f6e-8a3b-4c2d-9e1f-0a1b2c3d4e5f"),
        ("plain.channel", None),
    ],
)
def test_a_personal_channel_names_its_user(name: str, user: str | None) -> None:
    assert validate(name) == name
    assert channel_user(name) == user


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("#alice", "nothing before its '#'"),
        ("news#", "no user after its '#'"),
        ("a#b#c", "more than one '#'"),
        ("a#b c", "contains ' '"),
        ("a@b#c", "contains '@'"),
        ("a#{tag}", "contains '{}'"),
        ("a#b*", "contains '*'"),
    ],
)
def test_bad_personal_channels_say_why(name: str, reason: str) -> None:
    with pytest.raises(InvalidChannel, match=re.escape(reason)):
        validate(name)


def test_a_raw_path_is_percent_decoded() -> None:
    """A browser strips '#' from a URL (a fragment), so a raw client writes %23."""
    assert channel_from_path("/notifications%23alice?token=x") == "notifications#alice"
    assert channel_from_path("/inbox%23alice%40example.com") == "inbox#alice@example.com"
    with pytest.raises(InvalidChannel, match="contains '%'"):
        channel_from_path("/a%zz")  # not an escape: refused as written
    with pytest.raises(InvalidChannel, match="contains '%'"):
        channel_from_path("/a%ff")  # not UTF-8
