"""A hub.v1 connection's requests: JSON control frames in, acks and errors out.

Deliveries do not pass through here: the fan-out writes them straight to the transport
(``hub.ws.subscribers.V1Client``). ``serve`` runs once per inbound client frame, in order
(``hub.ws.inbox``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hub.core.auth import Authenticator, AuthError, Grant, may_subscribe
from hub.core.envelope import TEXT
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.frames import history_frame
from hub.core.hooks import ConnectResult, HookRefused, HookUnavailable, message_body
from hub.core.jsontext import dump_json
from hub.core.policy import PublishPolicy
from hub.core.protocol import (
    BAD_TOKEN,
    FORBIDDEN,
    REFUSED,
    RPC_OFF,
    SUBSCRIBE_RATE_LIMITED,
    TOO_LARGE,
    TOO_MANY_SUBSCRIPTIONS,
    UNAVAILABLE,
    Request,
    decode_binary_publish,
    decode_request,
)
from hub.core.ratelimit import TokenBucket
from hub.core.replies import ack_frame, error_frame, positions_field, subscribed_frame
from hub.hooks.proxy import HookProxy
from hub.node import Node
from hub.ws.connection import HubConnection
from hub.ws.inbox import Inbox
from hub.ws.subscribers import V1Client

__all__ = ["V1Session"]

logger = logging.getLogger(__name__)


class V1Session:
    """Serves one hub.v1 connection's requests until it closes."""

    __slots__ = (
        "_inbox",
        "authenticator",
        "client",
        "grant",
        "hooks",
        "make_policy",
        "max_subscriptions",
        "node",
        "on_grant",
        "policy",
        "subscribe_bucket",
        "ws",
    )

    def __init__(
        self,
        *,
        ws: HubConnection,
        client: V1Client,
        node: Node,
        grant: Grant | None,
        policy: PublishPolicy,
        max_subscriptions: int,
        subscribe_bucket: TokenBucket | None = None,
        hooks: HookProxy | None = None,
        authenticator: Authenticator | None = None,
        make_policy: Callable[[Grant | None], PublishPolicy] | None = None,
        on_grant: Callable[[Grant], None] | None = None,
    ) -> None:
        self.ws = ws
        self.client = client
        self.node = node
        self.grant = grant
        self.policy = policy
        self.max_subscriptions = max_subscriptions
        # Each channel subscribed costs presence writes, join/leave events and a history
        # read: a connection that churns is slowed here, with an answer, never silently.
        self.subscribe_bucket = subscribe_bucket
        #: The backend's hooks; None when none is configured (no check costs anything then).
        self.hooks = hooks
        self.authenticator = authenticator
        self.make_policy = make_policy
        self.on_grant = on_grant
        self._inbox = Inbox(ws, self)

    def start(self, hooked: ConnectResult | None = None) -> None:
        """Serve requests from now until the connection ends; an ordinary end (a reset, the
        client's close, the token's expiry) is no error and logs no traceback. A connection
        let in by the connect hook gets its ``connected`` frame and its server-side channels
        first. Nothing runs while the connection is idle (``hub.ws.inbox``)."""
        self._inbox.start(None if hooked is None else self._connected(hooked))

    async def finish(self) -> None:
        """Wait for the request in progress, if any (the connection has ended)."""
        await self._inbox.finish()

    async def serve(self, payload: bytes, kind: int) -> None:
        """Answer one inbound frame: a text frame is a request, a binary one a publish."""
        reply: str | None = None
        try:
            if kind == TEXT:
                reply = await self.handle(decode_request(payload))
            else:
                # Binary frames are fire-and-forget: no ack, but errors are answered.
                request = decode_binary_publish(payload)
                if self.hooks is None:
                    self.publish(request)
                else:
                    await self.publish_hooked(request)
        except ProtocolError as exc:
            reply = error_frame(exc.code, exc.message, exc.request_id, **exc.extra)  # type: ignore[arg-type]
        if reply is not None:
            await self.ws.send(reply)

    async def handle(self, request: Request) -> str | None:
        """Carry out one request; return its ack, or raise ProtocolError."""
        op = request.op
        if op == "publish":
            if self.hooks is None:
                self.publish(request)
            else:
                await self.publish_hooked(request)
            return ack_frame(op, request.id)
        if op == "subscribe":
            await self.subscribe(request)
            return None  # subscribe writes its ack itself, before any replay
        if op == "history":
            return await self.history(request)
        if op == "presence":
            return await self.presence(request)
        if op == "unsubscribe":
            for channel in request.channels:
                self.node.leave(channel, self.client)
            return ack_frame(op, request.id, channels=list(request.channels))
        if op == "rpc":
            return await self.rpc(request)
        if op == "refresh":
            return await self.refresh(request)
        return ack_frame(op, request.id)

    # Backend hooks

    @property
    def user(self) -> str | None:
        return self.grant.sub if self.grant is not None else None

    async def _connected(self, hooked: ConnectResult) -> None:
        """The first frames of a hook-connected connection: who it is (and the backend's
        data), then its server-side subscriptions."""
        first: dict[str, object] = {"type": "connected", "user": hooked.user}
        if hooked.expire_at is not None:
            first["expire_at"] = hooked.expire_at
        if hooked.has_data:
            first["data"] = hooked.data
        await self.ws.send(dump_json(first).decode())
        if hooked.channels:
            await self.server_subscribe(list(hooked.channels))

    async def server_subscribe(self, channels: list[str]) -> None:
        """Subscribe the connection to ``channels`` on the server's initiative: one
        ``{"type":"subscribed","channels":[...],"server":true,"positions"?}`` frame, then
        any replays, as a client's subscribe acks them."""
        new = [c for c in channels if c not in self.client.channels]
        try:
            joining = await self.node.prepare_join(self.client, new)
        except BrokerUnavailable as exc:
            await self.ws.send(
                error_frame(UNAVAILABLE, f"{exc}; the server-side subscriptions failed")
            )
            return
        joining.commit(subscribed_frame(channels, joining.positions).encode())

    async def _allow_subscribe(self, request: Request) -> list[str]:
        """The channels the grant does not cover and that need no hook (to be refused); the
        subscribe hook decides, for each channel whose namespace asks, before anything."""
        grant = self.grant
        hooks = self.hooks
        denied: list[str] = []
        for channel in request.channels:
            if not may_subscribe(None, self.client.user, channel):
                denied.append(channel)  # a personal channel: its user's alone
            elif hooks is not None and self.node.options_for(channel).proxy_subscribe:
                if channel in self.client.channels:
                    continue
                try:
                    await hooks.subscribe({"user": self.user, "channel": channel})
                except HookRefused as exc:
                    raise _refused(exc, request) from None
                except HookUnavailable as exc:
                    raise _unavailable(exc, request) from None
            elif not may_subscribe(grant, self.client.user, channel):
                denied.append(channel)
        return denied

    async def publish_hooked(self, request: Request) -> None:
        """A publish, through the publish hook when its channel's namespace asks: the hook
        may refuse it or replace its message; the rate limit applies either way."""
        channel = request.channel
        hooks = self.hooks
        if hooks is None or not self.node.options_for(channel).proxy_publish:
            self.publish(request)
            return
        body: dict[str, object] = {"user": self.user, "channel": channel}
        body.update(message_body(request.payload, request.kind))
        try:
            replaced = await hooks.publish(body)
        except HookRefused as exc:
            raise _refused(exc, request) from None
        except HookUnavailable as exc:
            raise _unavailable(exc, request) from None
        payload, kind = request.payload, request.kind
        if replaced is not None:
            payload, kind = replaced.payload, replaced.kind
        # The hook, not the grant, decides here: only the rate limit is left to check.
        refusal = self.node.publish_from(
            PublishPolicy(None, self.policy.bucket), channel, payload, kind
        )
        if refusal is not None:
            raise ProtocolError(refusal.code, refusal.message, request.id)

    async def rpc(self, request: Request) -> str:
        hooks = self.hooks
        if hooks is None or not hooks.has("rpc"):
            raise ProtocolError(RPC_OFF, "this hub forwards no rpc (--proxy-rpc-url)", request.id)
        try:
            result = await hooks.rpc(
                {"user": self.user, "method": request.method, "params": request.params}
            )
        except HookRefused as exc:
            raise _refused(exc, request) from None
        except HookUnavailable as exc:
            raise _unavailable(exc, request) from None
        return dump_json({"type": "rpc", "id": request.id, "result": result}).decode()

    async def refresh(self, request: Request) -> str:
        """Swap the connection's JWT in place: its grant and its expiry, same user."""
        authenticator = self.authenticator
        if authenticator is None:
            raise ProtocolError(BAD_TOKEN, "this hub verifies no JWTs", request.id)
        token = request.method
        try:
            await authenticator.prepare(token)
            grant = authenticator.verify(token)
        except AuthError as exc:
            raise ProtocolError(BAD_TOKEN, str(exc), request.id) from None
        if self.grant is not None and grant.sub != self.grant.sub:
            raise ProtocolError(
                BAD_TOKEN, "the new token names another user (sub); reconnect instead", request.id
            )
        self.grant = grant
        if self.make_policy is not None:
            self.policy = self.make_policy(grant)
        if self.on_grant is not None:
            self.on_grant(grant)
        return ack_frame("refresh", request.id, expire_at=grant.exp)

    async def subscribe(self, request: Request) -> None:
        """Join each channel, then write the ack and, on history channels, the replays."""
        client = self.client
        grant = self.grant
        if self.hooks is not None:
            denied = await self._allow_subscribe(request)
        else:
            denied = [c for c in request.channels if not may_subscribe(grant, client.user, c)]
        if denied:
            raise ProtocolError(
                FORBIDDEN,
                f"this connection may not subscribe to {', '.join(denied[:5])} (its token's "
                "grants; a personal channel name#user is its user's only)",
                request.id,
            )
        new = [c for c in request.channels if c not in client.channels]
        if len(client.channels) + len(new) > self.max_subscriptions:
            raise ProtocolError(
                TOO_MANY_SUBSCRIPTIONS,
                f"this connection has {len(client.channels)} subscriptions and asked for "
                f"{len(new)} more; the limit is {self.max_subscriptions} (--max-subscriptions): "
                "unsubscribe from some first",
                request.id,
            )
        bucket = self.subscribe_bucket
        if new and bucket is not None and not bucket.allow(time.monotonic(), len(new)):
            raise ProtocolError(
                SUBSCRIBE_RATE_LIMITED,
                f"subscribe rate limit exceeded ({bucket.rate:g} channels/s, burst "
                f"{bucket.burst:g}; --subscribe-rate): nothing was subscribed; wait "
                f"{max(0.01, bucket.wait_s(len(new))):.2f}s, then subscribe again",
                request.id,
            )
        node = self.node
        try:
            joining = await node.prepare_join(client, new, recover=request.recover)
        except BrokerUnavailable as exc:
            raise ProtocolError(
                UNAVAILABLE, f"{exc}; nothing was subscribed: retry later", request.id
            ) from None
        extra: dict[str, object] = {"channels": list(request.channels)}
        positions = positions_field(joining.positions)
        if positions:
            extra["positions"] = positions
        # The ack, then the replays: written by the commit, before any live message.
        joining.commit(ack_frame("subscribe", request.id, **extra).encode())
        if request.join_leave:
            for channel in request.channels:
                node.presence.listen(channel, client)

    def _may_read(self, channel: str) -> bool:
        """History and presence: what the grant may subscribe to, or is subscribed to (a
        server-side or hook-allowed subscription)."""
        return (
            may_subscribe(self.grant, self.client.user, channel) or channel in self.client.channels
        )

    async def presence(self, request: Request) -> str:
        channel = request.channel
        if not self._may_read(channel):
            raise ProtocolError(
                FORBIDDEN, f"the token may not see who is subscribed to {channel}", request.id
            )
        try:
            answer = await self.node.presence.read(channel)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, request.id) from None
        return dump_json({"type": "presence", "id": request.id, **answer}).decode()

    async def history(self, request: Request) -> str:
        channel = request.channel
        if not self._may_read(channel):
            raise ProtocolError(
                FORBIDDEN, f"the token may not read the history of {channel}", request.id
            )
        try:
            page = await self.node.history.read(channel, request.since, request.limit)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, request.id) from None
        answer = history_frame(dump_json(request.id), channel, page)
        if len(answer) > self.node.max_buffered_bytes:
            # Every byte queued for a client counts toward its bound, answers included.
            raise ProtocolError(
                TOO_LARGE,
                f"the answer would be {len(answer)} bytes, more than this connection may have "
                f"queued ({self.node.max_buffered_bytes}, --max-buffered-bytes): ask for fewer "
                "messages with 'limit'",
                request.id,
            )
        return answer.decode()

    def publish(self, request: Request) -> None:
        refusal = self.node.publish_from(
            self.policy, request.channel, request.payload, request.kind
        )
        if refusal is not None:
            raise ProtocolError(refusal.code, refusal.message, request.id)


def _refused(exc: HookRefused, request: Request) -> ProtocolError:
    return ProtocolError(REFUSED, exc.message, request.id, app_code=exc.code)


def _unavailable(exc: HookUnavailable, request: Request) -> ProtocolError:
    return ProtocolError(
        UNAVAILABLE, f"the backend is unavailable ({exc.cause}); retry later", request.id
    )
