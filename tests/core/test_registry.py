"""The local registry (pure)."""

from __future__ import annotations

from hub.core.registry import Registry


def test_add_reports_first_and_remove_reports_empty() -> None:
    """add says is_first only for a channel's first subscriber; remove says is_empty at the last."""
    r: Registry[str] = Registry()
    assert r.add("c", "a") is True
    assert r.add("c", "b") is False
    assert r.add("c", "b") is False  # idempotent
    assert len(r.subscribers("c") or ()) == 2 and r.num_subscriptions == 2
    assert r.remove("c", "a") is False
    assert r.remove("c", "a") is False  # not there: no-op
    assert r.remove("c", "b") is True
    assert "c" not in r and len(r) == 0 and r.num_subscriptions == 0
    assert r.remove("never", "x") is False


def test_channels_and_counts() -> None:
    """The registry counts each channel's subscribers, in order of joining."""
    r: Registry[int] = Registry()
    for i in range(3):
        r.add("x", i)
    r.add("y", 9)
    assert dict(r.items()) == {"x": 3, "y": 1}
    assert list(r.subscribers("x") or ()) == [0, 1, 2]
    assert r.subscribers("z") is None
