"""The control channel: a command to every instance of the hub, and each one's reply, over the
broker's own publish and subscribe; and the list of live instances, in the presence store.

Every process subscribes to ``$control`` (commands) and to ``$reply:<its name>`` (the replies
to its own commands). '$' is not a channel character, so no client can subscribe to or
publish on either; the broker names them like any channel (``<prefix>$control``; on Redis
Cluster, a sharded channel of one partition), so this works on every engine: memory, Redis,
Sentinel and Cluster.

A command is one JSON object: ``{"op": .., "id": <request id>, "reply": <sender's name>,
...}``. Each instance carries it out (``handler``, the node's ``Users``) and publishes
``{"id": .., "instance": <its name>, ...}`` on the sender's reply channel. The sender waits
for the reply of every live instance, or ``timeout_s`` (1 s), whichever comes first, and
names those that did not answer.

The live instances are a presence list of their own (``$instances``): each process adds
itself with its version and start time, again every ``HEARTBEAT_S``, and removes itself on
close; a crashed process drops out after ``ttl_s`` (the presence store's expiry). None
of this is on the fan-out path: the node hands it the messages of its two channels only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from hub.brokers.base import PresenceManager
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.jsontext import dump_json, parse_json
from hub.core.protocol import UNAVAILABLE

__all__ = [
    "COMMANDS_CHANNEL",
    "INSTANCES_CHANNEL",
    "Command",
    "Control",
    "Replies",
]

logger = logging.getLogger(__name__)

#: Where commands go; every process subscribes to it.
COMMANDS_CHANNEL = "$control"
#: A process's replies channel is this and its name.
REPLY_PREFIX = "$reply:"
#: The presence list of live instances.
INSTANCES_CHANNEL = "$instances"
#: How long a command waits for the replies of every live instance.
TIMEOUT_S = 1.0
#: A crashed instance leaves the list this long after its last heartbeat.
INSTANCE_TTL_S = 15.0
#: How often an instance writes itself into the list: often, since a write made before the
#: broker is connected is lost (4 commands a second per instance; nothing per connection).
HEARTBEAT_S = 1.0

Command = dict[str, object]
#: Carries out a command on this process; returns the reply's fields.
Handler = Callable[[Command], Awaitable[Command]]


@dataclass
class Replies:
    """What the instances answered to one command."""

    #: Each reply, with its ``instance``.
    replies: list[Command] = field(default_factory=list)
    #: The live instances that did not answer within the timeout.
    missing: list[str] = field(default_factory=list)

    def count(self) -> int:
        """The sum of the replies' ``count``: the connections the command reached."""
        total = 0
        for reply in self.replies:
            value = reply.get("count")
            if isinstance(value, int):
                total += value
        return total


class Control:
    """One process's end of the control channel."""

    def __init__(
        self,
        *,
        name: str,
        publish: Callable[[str, bytes], bool],
        subscribe: Callable[[str], Awaitable[None]],
        store: PresenceManager | None,
        meta: Command,
        is_ready: Callable[[], bool] = lambda: True,
        timeout_s: float = TIMEOUT_S,
        ttl_s: float = INSTANCE_TTL_S,
    ) -> None:
        self.name = name
        self._publish = publish
        self._subscribe = subscribe
        self._store = store
        self._meta = dump_json(meta).decode()
        self._is_ready = is_ready
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.reply_channel = REPLY_PREFIX + name
        #: The channels whose messages the node hands to ``on_messages``.
        self.channels = frozenset({COMMANDS_CHANNEL, self.reply_channel})
        #: Set by the node: what carries out a command here.
        self.handler: Handler | None = None
        self._waiting: dict[str, tuple[dict[str, Command], asyncio.Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        #: This instance was read back from the list once: the others' commands expect its
        #: reply from then on (the node is not ready before).
        self.is_listed = store is None

    async def start(self) -> None:
        for channel in sorted(self.channels):
            await self._subscribe(channel)
        if self._store is not None:
            self._heartbeat = asyncio.create_task(self._run_heartbeat(self._store))

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for task in self._tasks:
            task.cancel()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.remove(INSTANCES_CHANNEL, self.name)

    async def _run_heartbeat(self, store: PresenceManager) -> None:
        while True:
            if not self._is_ready():
                await asyncio.sleep(0.05)  # a write before the broker is up would be lost
                continue
            try:
                store.add(INSTANCES_CHANNEL, self.name, self._meta, self.ttl_s)
                if not self.is_listed:
                    listed = await store.read(INSTANCES_CHANNEL)
                    self.is_listed = any(name == self.name for name, _ in listed)
            except BrokerUnavailable as exc:
                logger.debug("the instance list cannot be read yet: %s", exc)
            except Exception:
                logger.exception("the instance heartbeat failed; it runs again")
            # Until it is read back, a few times a second.
            await asyncio.sleep(min(HEARTBEAT_S, self.ttl_s / 3) if self.is_listed else 0.05)

    async def instances(self) -> list[tuple[str, Command]]:
        """(name, metadata) of every live instance, this one included; BrokerUnavailable."""
        found: dict[str, Command] = {}
        if self._store is not None:
            for name, meta in await self._store.read(INSTANCES_CHANNEL):
                found[name] = _parse(meta.encode()) if meta else {}
        found.setdefault(self.name, _parse(self._meta.encode()))
        return sorted(found.items())

    async def request(self, command: Command) -> Replies:
        """Send ``command`` to every instance and gather their replies: all of the live
        instances', or what came within ``timeout_s``. ProtocolError ``unavailable`` when the
        broker can take or tell nothing now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout(self.timeout_s):
                expected = {name for name, _ in await self.instances()}
        except (BrokerUnavailable, TimeoutError) as exc:
            raise ProtocolError(
                UNAVAILABLE, f"the list of instances cannot be read now ({exc}); retry later"
            ) from None
        request_id = secrets.token_hex(8)
        replies: dict[str, Command] = {}
        arrived = asyncio.Event()
        self._waiting[request_id] = (replies, arrived)
        try:
            body = {**command, "id": request_id, "reply": self.name}
            if not self._publish(COMMANDS_CHANNEL, dump_json(body)):
                raise ProtocolError(
                    UNAVAILABLE, "the broker's buffer is full (Redis unreachable); retry later"
                )
            while not expected <= replies.keys():
                left = deadline - loop.time()
                if left <= 0:
                    break
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), left)
        finally:
            del self._waiting[request_id]
        return Replies(
            [replies[name] for name in sorted(replies)], sorted(expected - replies.keys())
        )

    def on_messages(self, channel: str, payloads: Sequence[bytes]) -> None:
        """A batch of the control channels' messages (from the node's ``on_messages``)."""
        for payload in payloads:
            message = _parse(payload)
            if not message:
                logger.warning("ignored a control message that is not a JSON object")
                continue
            if channel == COMMANDS_CHANNEL:
                task = asyncio.create_task(self._serve(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                continue
            waiting = self._waiting.get(str(message.get("id")))
            instance = message.get("instance")
            if waiting is not None and isinstance(instance, str):
                replies, arrived = waiting
                replies[instance] = message
                arrived.set()

    async def _serve(self, command: Command) -> None:
        sender, request_id = command.get("reply"), command.get("id")
        if self.handler is None or not isinstance(sender, str):
            return
        started = time.monotonic()
        try:
            reply = await self.handler(command)
        except Exception:
            logger.exception("the control command %r failed here", command.get("op"))
            reply = {"error": "failed"}
        body = {**reply, "id": request_id, "instance": self.name}
        self._publish(REPLY_PREFIX + sender, dump_json(body))
        logger.debug("control %r served in %.3fs", command.get("op"), time.monotonic() - started)


def _parse(payload: bytes) -> Command:
    try:
        value = parse_json(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
