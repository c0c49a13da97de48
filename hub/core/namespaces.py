"""Per-channel options: which channels keep history and presence. Pure.

A ``[[namespaces]]`` entry of the config file gives a channel glob and the options of the
channels it matches; the first matching entry wins, and a channel that matches none takes the
global flags (``--history-size``, ``--presence``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

__all__ = ["ChannelOptions", "ChannelRules", "Namespace"]

#: Channels whose options are remembered; past it the memo starts over (names are unbounded).
_MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """What hub keeps for one channel."""

    #: Messages kept for recovery (0: no history).
    history_size: int = 0
    #: How long the history lives after the channel's last publish.
    history_ttl_s: float = 0.0
    #: How long the epoch and top offset outlive the last publish (longer than the history).
    history_meta_ttl_s: float = 30 * 24 * 3600.0
    #: Whether hub keeps who is subscribed, cluster-wide.
    presence: bool = False
    #: Whether subscribers that ask get join and leave events (needs presence).
    join_leave: bool = False
    #: Whether the backend's subscribe hook decides who may subscribe (--proxy-subscribe-url).
    proxy_subscribe: bool = False
    #: Whether each publish goes through the backend's publish hook (--proxy-publish-url).
    proxy_publish: bool = False

    @property
    def has_history(self) -> bool:
        return self.history_size > 0

    def problem(self) -> tuple[str, object, str] | None:
        """(key, value, reason) for the first inconsistent option, or None."""
        if self.history_size < 0:
            return ("history_size", self.history_size, "must not be negative")
        if self.history_size and self.history_ttl_s <= 0:
            return (
                "history_ttl_s",
                self.history_ttl_s,
                "history needs a TTL > 0 (how long it lives after the channel's last publish)",
            )
        if self.history_size and self.history_meta_ttl_s < self.history_ttl_s:
            return (
                "history_meta_ttl_s",
                self.history_meta_ttl_s,
                "must be at least history_ttl_s: the epoch must outlive the history",
            )
        if self.join_leave and not self.presence:
            return ("join_leave", True, "join and leave events need presence = true")
        return None


@dataclass(frozen=True, slots=True)
class Namespace:
    """Channels matching ``pattern`` (an fnmatch glob, case-sensitive) and their options."""

    pattern: str
    options: ChannelOptions = field(default_factory=ChannelOptions)


class ChannelRules:
    """Channel name → its options: the first matching namespace, else the defaults."""

    def __init__(self, namespaces: tuple[Namespace, ...], default: ChannelOptions) -> None:
        self.namespaces = namespaces
        self.default = default
        self._memo: dict[str, ChannelOptions] = {}

    @property
    def any_presence(self) -> bool:
        return self.default.presence or any(n.options.presence for n in self.namespaces)

    @property
    def any_history(self) -> bool:
        return self.default.has_history or any(n.options.has_history for n in self.namespaces)

    @property
    def any_proxy_subscribe(self) -> bool:
        return self.default.proxy_subscribe or any(
            n.options.proxy_subscribe for n in self.namespaces
        )

    @property
    def any_proxy_publish(self) -> bool:
        return self.default.proxy_publish or any(n.options.proxy_publish for n in self.namespaces)

    def options_for(self, channel: str) -> ChannelOptions:
        options = self._memo.get(channel)
        if options is None:
            options = next(
                (n.options for n in self.namespaces if fnmatchcase(channel, n.pattern)),
                self.default,
            )
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[channel] = options
        return options
