"""Presence, for the node: who is subscribed to a channel, cluster-wide, and the join and
leave events of channels that want them.

Each process writes its own members of a presence channel to the presence store when they join
and removes them when they leave. Its heartbeat refreshes one entry per channel (the process's
expiry), never one per member, so a channel of 100,000 members costs the same to keep alive
as a channel of one. A crashed process's members are dropped by the next read after its
expiry.

``Presence`` owns the listeners of join/leave events, the heartbeat and the numbering of
members; it is handed the store (``PresenceManager``) and the registry to read who is local.
The store publishes the join and leave events itself, beside its writes: they never take
from the publish path's budget, and a join and leave that meet unwritten cancel out there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Collection
from typing import TypedDict

from hub.brokers.base import PresenceManager
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.namespaces import ChannelRules
from hub.core.protocol import PRESENCE_OFF, UNAVAILABLE
from hub.core.registry import Registry
from hub.node.state import Member

__all__ = ["Presence", "PresenceAnswer"]

logger = logging.getLogger(__name__)


class PresenceAnswer(TypedDict):
    """A presence read: the members of a channel, cluster-wide."""

    channel: str
    clients: list[dict[str, str | None]]
    num_clients: int
    num_users: int


class Presence:
    """A process's presence writes, its heartbeat, and who listens to join/leave events."""

    def __init__(
        self,
        store: PresenceManager | None,
        rules: ChannelRules,
        *,
        registry: Registry[Member],
        ttl_s: float,
    ) -> None:
        self._store = store
        self._rules = rules
        self._registry = registry
        self.ttl_s = ttl_s
        #: This process's name in presence lists: client ids are ``<name>.<number>``.
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._num_members = 0
        self._listeners: dict[str, dict[Member, None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._store is not None and self._rules.any_presence:
            self._heartbeat = asyncio.create_task(self._run_heartbeat(self._store))

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    def client_id(self, member: Member) -> str:
        """A member's id, unique across the cluster: this process's name and a number, given
        when first asked for (most members never need one)."""
        if not member.number:
            self._num_members += 1
            member.number = self._num_members
        return f"{self.name}.{member.number}"

    def joined(self, channel: str, member: Member) -> None:
        options = self._rules.options_for(channel)
        if options.presence and self._store is not None:
            self._store.add(
                channel,
                self.client_id(member),
                member.user,
                self.ttl_s,
                announce=options.join_leave,
            )

    def left(self, channel: str, member: Member) -> None:
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.pop(member, None)
            if not listeners:
                del self._listeners[channel]
        options = self._rules.options_for(channel)
        if options.presence and self._store is not None:
            self._store.remove(
                channel, self.client_id(member), member.user, announce=options.join_leave
            )

    def listen(self, channel: str, member: Member) -> bool:
        """Send ``member`` the join and leave events of ``channel``; False if it has none."""
        if not self._rules.options_for(channel).join_leave:
            return False
        self._listeners.setdefault(channel, {})[member] = None
        return True

    def listeners(self, channel: str) -> dict[Member, None] | None:
        """The members that asked for ``channel``'s join and leave events."""
        return self._listeners.get(channel)

    async def read(self, channel: str) -> PresenceAnswer:
        """The presence answer's fields; ProtocolError when the channel keeps no presence
        or the store is unreachable."""
        if not self._rules.options_for(channel).presence or self._store is None:
            raise ProtocolError(
                PRESENCE_OFF,
                f"the channel {channel} keeps no presence (see presence in the config file's "
                "[[namespaces]], or --presence)",
            )
        try:
            members = await self._store.read(channel)
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        members.sort()
        return {
            "channel": channel,
            "clients": [{"client": c, "user": u} for c, u in members],
            "num_clients": len(members),
            "num_users": len({u for _, u in members if u is not None}),
        }

    def rewrite(self, channels: Collection[str]) -> None:
        """After the broker was away from ``channels``: write their local members again
        (the store may have lost them), so that presence is whole once the heartbeat resumes."""
        if self._store is None:
            return
        for channel in channels:
            if not self._rules.options_for(channel).presence:
                continue
            for member in self._registry.subscribers(channel) or ():
                self._store.add(channel, self.client_id(member), member.user, self.ttl_s)

    async def _run_heartbeat(self, store: PresenceManager) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                channels = [
                    c for c, _ in self._registry.items() if self._rules.options_for(c).presence
                ]
                if channels:
                    store.heartbeat(channels, self.ttl_s)
                # A storm filled the store's queue: what it dropped is written again.
                self.rewrite(store.take_dropped())
            except Exception:
                logger.exception("the presence heartbeat failed; it runs again")
