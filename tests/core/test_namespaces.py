"""Per-channel options from [[namespaces]]: first match wins, else the defaults (pure)."""

from __future__ import annotations

import pytest

from hub.core import namespaces
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace

HISTORY = ChannelOptions(history_size=10, history_ttl_s=60.0)
PRESENCE = ChannelOptions(presence=True, join_leave=True)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        (ChannelOptions(history_size=-1), "history_size"),
        (ChannelOptions(history_size=5), "history_ttl_s"),
        (
            ChannelOptions(history_size=5, history_ttl_s=100.0, history_meta_ttl_s=50.0),
            "history_meta_ttl_s",
        ),
        (ChannelOptions(join_leave=True), "join_leave"),
    ],
)
def test_inconsistent_options_name_their_key(options: ChannelOptions, key: str) -> None:
    """problem() names the first inconsistent option."""
    problem = options.problem()
    assert problem is not None and problem[0] == key


def test_consistent_options_have_no_problem() -> None:
    """Defaults, history with a TTL, and presence with join/leave are all fine."""
    for options in (ChannelOptions(), HISTORY, PRESENCE):
        assert options.problem() is None
    assert HISTORY.has_history and not ChannelOptions().has_history


def test_first_matching_namespace_wins_and_others_take_the_default() -> None:
    """Globs match case-sensitively, in order; an unmatched channel gets the defaults."""
    default = ChannelOptions(history_size=1, history_ttl_s=1.0)
    rules = ChannelRules((Namespace("chat.*", HISTORY), Namespace("chat.lobby", PRESENCE)), default)
    assert rules.options_for("chat.lobby") is HISTORY
    assert rules.options_for("Chat.lobby") is default
    assert rules.options_for("news") is default


def test_any_presence_and_any_history_look_at_every_namespace() -> None:
    """A single namespace with presence (or history) turns the flag on for the rules."""
    plain = ChannelOptions()
    assert not ChannelRules((Namespace("x"),), plain).any_presence
    assert ChannelRules((Namespace("x", PRESENCE),), plain).any_presence
    assert ChannelRules((Namespace("x", HISTORY),), plain).any_history
    assert ChannelRules((), HISTORY).any_history and not ChannelRules((), plain).any_history


def test_the_memo_is_bounded_and_answers_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its size the memo starts over; every answer is still the matching namespace's."""
    monkeypatch.setattr(namespaces, "_MEMO_SIZE", 3)
    rules = ChannelRules((Namespace("h.*", HISTORY),), ChannelOptions())
    for i in range(10):
        assert rules.options_for(f"h.{i}") is HISTORY
        assert rules.options_for(f"o.{i}") == ChannelOptions()
        assert len(rules._memo) <= 3
