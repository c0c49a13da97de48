"""The node's presence side: who is subscribed to a channel, cluster-wide, and the join and
leave events of channels that want them.

Each process writes its own clients of a presence channel to Redis when they join and
removes them when they leave. Its heartbeat refreshes one entry per channel (the process's
expiry), never one per member, so a channel of 100,000 members costs the same to keep alive
as a channel of one. A crashed process's clients are dropped by the next read after its
expiry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from hub.brokers.base import Broker, PresenceManager
from hub.core.envelope import Message, encode_event
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.frames import v1_message
from hub.core.jsontext import dump_json
from hub.core.namespaces import ChannelRules
from hub.core.protocol import PRESENCE_OFF, UNAVAILABLE
from hub.core.registry import Registry
from hub.node.state import Client

__all__ = ["NodePresence"]

logger = logging.getLogger(__name__)


class NodePresence:
    """Mixed into Node: presence lists and join/leave events."""

    broker: Broker
    presence: PresenceManager | None
    rules: ChannelRules
    name: str
    presence_ttl_s: float
    _registry: Registry[Client]
    _listeners: dict[str, dict[Client, None]]

    if TYPE_CHECKING:

        def publish(self, channel: str, payload: bytes, kind: int = 0) -> bool: ...
        def next_client_number(self) -> int: ...

    @property
    def _presence(self) -> PresenceManager:
        """The presence manager (Node refuses channel rules with presence without one)."""
        assert self.presence is not None
        return self.presence

    def client_id(self, client: Client) -> str:
        """A client's id, unique across the cluster: this process's name and a number, given
        when first asked for (most clients never need one)."""
        if not client.number:
            client.number = self.next_client_number()
        return f"{self.name}.{client.number}"

    def _presence_joined(self, channel: str, client: Client) -> None:
        options = self.rules.options_for(channel)
        if options.presence:
            self._presence.add(channel, self.client_id(client), client.user, self.presence_ttl_s)
            if options.join_leave:
                self._announce(channel, client, is_join=True)

    def _presence_left(self, channel: str, client: Client) -> None:
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.pop(client, None)
            if not listeners:
                del self._listeners[channel]
        options = self.rules.options_for(channel)
        if options.presence:
            self._presence.remove(channel, self.client_id(client))
            if options.join_leave:
                self._announce(channel, client, is_join=False)

    def _announce(self, channel: str, client: Client, *, is_join: bool) -> None:
        body = dump_json({"client": self.client_id(client), "user": client.user})
        self.broker.publish(channel, encode_event(is_join, body))

    def listen(self, channel: str, client: Client) -> bool:
        """Send ``client`` the join and leave events of ``channel``; False if it has none."""
        if not self.rules.options_for(channel).join_leave:
            return False
        self._listeners.setdefault(channel, {})[client] = None
        return True

    def _deliver_events(self, channel: str, events: list[Message]) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        channel_json = dump_json(channel)
        payloads = [v1_message(channel_json, e) for e in events]
        for client in list(listeners):
            try:
                client.send_texts(payloads)
            except Exception:
                logger.exception("sending presence events on %s failed", channel)

    async def read_presence(self, channel: str) -> dict[str, Any]:
        """The presence answer's fields; ProtocolError when the channel keeps no presence
        or the broker is unreachable."""
        if not self.rules.options_for(channel).presence:
            raise ProtocolError(
                PRESENCE_OFF,
                f"the channel {channel} keeps no presence (see presence in the config file's "
                "[[namespaces]], or --presence)",
            )
        try:
            members = await self._presence.read(channel)
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        members.sort()
        return {
            "channel": channel,
            "clients": [{"client": c, "user": u} for c, u in members],
            "num_clients": len(members),
            "num_users": len({u for _, u in members if u is not None}),
        }

    def _presence_channels(self) -> list[str]:
        return [c for c, _ in self._registry.items() if self.rules.options_for(c).presence]

    def _presence_rewrite(self, channels: Collection[str]) -> None:
        """After the broker was away from ``channels``: write their local members again
        (Redis may have lost them), so that presence is whole once the heartbeat resumes."""
        for channel in channels:
            if not self.rules.options_for(channel).presence:
                continue
            for client in self._registry.subscribers(channel) or ():
                self._presence.add(
                    channel, self.client_id(client), client.user, self.presence_ttl_s
                )

    async def _run_presence_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.presence_ttl_s / 3)
            try:
                channels = self._presence_channels()
                if channels:
                    self._presence.heartbeat(channels, self.presence_ttl_s)
            except Exception:
                logger.exception("the presence heartbeat failed; it runs again")
