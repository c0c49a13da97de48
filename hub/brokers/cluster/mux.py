"""One connection per node and role, shared by the partitions that node serves.

Each partition of the cluster broker runs the standalone broker's loops (publisher,
subscriber, reader), each on a :class:`Share`: the partition's part of one connection to the
node that owns its slot. What the shares of one turn of the event loop write leaves in one
write, and replies go back to the share that asked (pipelined replies in order, pub/sub
pushes by the hash tag of their channel, pongs in order). So a process holds 3 connections
per master (4 with presence writes) whatever the number of partitions, and a busy loop
turn costs one write per node, not one per partition: with a connection per partition, a
load spread over 200 channels ran at half the round trips per second of one Redis, its hub
CPU per round trip doubled by the writes alone (docs/benchmarks.md, Redis Cluster).

A partition whose slot moves closes its share and opens one on the new owner; the node's
connection stays up for the others. A lost or deaf connection ends every share on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import hiredis

from hub.brokers.liveness import REPLY_TIMEOUT_S
from hub.brokers.resp import Endpoint, Reply, RespConnection, encode_command, open_connection

__all__ = ["NodePool", "Share"]

logger = logging.getLogger(__name__)

OnReplies = Callable[[list[Reply]], None]
_PONG = [b"pong", b""]


class Share:
    """One partition's part of a node connection (a ``hub.brokers.resp.Connection``)."""

    def __init__(self, node: NodeConnection, on_replies: OnReplies, tag: bytes, slot: int) -> None:
        self.node = node
        self.on_replies = on_replies
        self.tag = tag
        self.slot = slot
        self.attached = True
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    @property
    def is_open(self) -> bool:
        return self.attached and self.node.is_open

    def send(self, data: bytes, replies: int = 0) -> None:
        if self.attached:
            self.node.send(self, data, replies)

    async def command(self, *args: bytes, timeout_s: float = REPLY_TIMEOUT_S) -> Reply:
        if not self.is_open:
            raise ConnectionError("connection to Redis lost")
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.node.send(self, encode_command(*args), 1, waiter)
        try:
            reply = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            self.abort()  # the reply deadline: the node's connection is silent (liveness.py)
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        self.detach(None)

    def abort(self) -> None:
        self.node.abort()

    def detach(self, exc: Exception | None) -> None:
        if self.attached:
            self.attached = False
            self.node.forget(self)
            if not self.lost.done():
                self.lost.set_result(exc)


class NodeConnection:
    """One connection to a node for one role; ``pubsub`` routes pushes by hash tag."""

    def __init__(self, endpoint: Endpoint, *, pubsub: bool) -> None:
        self.endpoint = endpoint
        self.pubsub = pubsub
        self.conn: RespConnection | None = None
        self._shares: set[Share] = set()
        self._by_tag: dict[bytes, Share] = {}
        # In the order of their replies: [share, replies still to come, waiter or None].
        self._awaiting: deque[list[object]] = deque()
        self._pending: list[bytes] = []
        self._flush_scheduled = False

    @property
    def is_open(self) -> bool:
        return self.conn is not None and self.conn.is_open

    async def open(self, name: str) -> None:
        self.conn = await open_connection(self.endpoint, self._dispatch, name=name)
        self.conn.lost.add_done_callback(self._on_lost)

    def share(self, on_replies: OnReplies, tag: bytes, slot: int) -> Share:
        share = Share(self, on_replies, tag, slot)
        self._shares.add(share)
        self._by_tag[tag] = share
        return share

    def forget(self, share: Share) -> None:
        self._shares.discard(share)
        if self._by_tag.get(share.tag) is share:
            del self._by_tag[share.tag]

    def send(
        self,
        share: Share,
        data: bytes,
        replies: int,
        waiter: asyncio.Future[Reply] | None = None,
    ) -> None:
        if replies:
            self._awaiting.append([share, replies, waiter])
        self._pending.append(data)
        if not self._flush_scheduled:
            # The shares' writes of this loop turn leave together.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if self.conn is not None and self.conn.is_open and pending:
            self.conn.send(b"".join(pending))

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _on_lost(self, lost: asyncio.Future[Exception | None]) -> None:
        exc = lost.result()
        for entry in self._awaiting:
            waiter = entry[2]
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(ConnectionError("connection to Redis lost"))
        self._awaiting.clear()
        for share in list(self._shares):
            share.detach(exc)

    # Replies

    def _dispatch(self, replies: list[Reply]) -> None:
        batches: dict[Share, list[Reply]] = {}
        if self.pubsub:
            self._route_pushes(replies, batches)
        else:
            self._route_in_order(replies, batches)
        for share, batch in batches.items():
            if share.attached:
                share.on_replies(batch)

    def _next(self) -> tuple[Share | None, asyncio.Future[Reply] | None]:
        """The share (and waiter) the next in-order reply belongs to."""
        if not self._awaiting:
            return None, None
        entry = self._awaiting[0]
        share, count, waiter = entry
        assert isinstance(share, Share) and isinstance(count, int)
        if count <= 1:
            self._awaiting.popleft()
        else:
            entry[1] = count - 1
        return share, waiter if isinstance(waiter, asyncio.Future) else None

    def _route_in_order(self, replies: list[Reply], batches: dict[Share, list[Reply]]) -> None:
        for reply in replies:
            share, waiter = self._next()
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(reply)
            elif share is None:
                logger.error("redis %s: a reply that nothing awaited", self.endpoint.describe())
            elif share.attached:
                batches.setdefault(share, []).append(reply)

    def _route_pushes(self, replies: list[Reply], batches: dict[Share, list[Reply]]) -> None:
        by_tag = self._by_tag
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                for erred in self._error_owners(str(reply)):
                    batches.setdefault(erred, []).append(reply)
                continue
            if reply == b"PONG" or (isinstance(reply, list) and reply[0] == b"pong"):
                share, waiter = self._next()
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)
                elif share is not None and share.attached:
                    batches.setdefault(share, []).append(_PONG)
                continue
            key = reply[1]
            start = key.find(b"{")
            owner = by_tag.get(key[start + 1 : key.find(b"}", start)])
            if owner is not None:
                batches.setdefault(owner, []).append(reply)

    def _error_owners(self, text: str) -> list[Share]:
        """An error to a subscription: MOVED names its slot; any other goes to every share."""
        if text.startswith("MOVED "):
            slot = text.split()[1]
            owners = [s for s in self._shares if str(s.slot) == slot]
            if owners:
                return owners
        return list(self._shares)


class NodePool:
    """The node connections of one process, opened on demand, by node and role."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: dict[tuple[str, Endpoint], NodeConnection] = {}
        self._opening: dict[tuple[str, Endpoint], asyncio.Task[NodeConnection]] = {}

    async def attach(
        self, role: str, endpoint: Endpoint, on_replies: OnReplies, *, tag: bytes, slot: int
    ) -> Share:
        node = self._nodes.get((role, endpoint))
        if node is None or not node.is_open:
            node = await self._open(role, endpoint)
        return node.share(on_replies, tag, slot)

    async def _open(self, role: str, endpoint: Endpoint) -> NodeConnection:
        key = (role, endpoint)
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(self._connect(role, endpoint))
            self._opening[key] = task
            task.add_done_callback(lambda _: self._opening.pop(key, None))
        return await asyncio.shield(task)

    async def _connect(self, role: str, endpoint: Endpoint) -> NodeConnection:
        node = NodeConnection(endpoint, pubsub=role == "subscriber")
        await node.open(f"{self.name}-{role}")
        self._nodes[(role, endpoint)] = node
        return node

    def close(self) -> None:
        for node in self._nodes.values():
            node.abort()
        self._nodes.clear()
