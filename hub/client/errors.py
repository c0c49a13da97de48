"""What hub.client raises.

Hierarchy::

    HubError
    └── ClientError
        ├── Discontinuity        messages of a channel are missing; resync it (not fatal)
        │   ├── NotRecovered     the hub could not replay from the position (recovered: false)
        │   └── Gap              the hub lost a range of a history channel (a gap frame)
        ├── RequestRefused       the hub answered a request with an error frame (code, message)
        ├── PublishFailed        a publish's fate is unknown or it was refused by a close code
        ├── NotConnected         a publish found no connection in time (or its waiting room full)
        └── ClientClosed         the client stopped for good (close(), a close code whose rule
                                 says stop, or a handshake the hub refuses)
"""

from __future__ import annotations

from hub.core.errors import HubError

__all__ = [
    "ClientClosed",
    "ClientError",
    "Discontinuity",
    "Gap",
    "NotConnected",
    "NotRecovered",
    "PublishFailed",
    "RequestRefused",
]


class ClientError(HubError):
    """Base class of every error hub.client raises."""


class Discontinuity(ClientError):
    """Messages of ``channel`` up to ``epoch:offset`` may be missing from what the subscription
    delivered. The subscription goes on after it: catch it, resync the channel from your own
    source, and keep iterating."""

    def __init__(self, channel: str, epoch: str, offset: int) -> None:
        super().__init__(channel, epoch, offset)
        self.channel = channel
        self.epoch = epoch
        self.offset = offset


class NotRecovered(Discontinuity):
    """A (re)subscribe asked to recover from a position that the history no longer holds
    (another epoch, trimmed, expired, or too far back): nothing was replayed. Delivery goes on
    from ``epoch:offset``, the channel's top when the client joined."""

    def __str__(self) -> str:
        return (
            f"{self.channel}: could not recover the missed messages; resync, delivery goes on "
            f"after {self.epoch}:{self.offset}"
        )


class Gap(Discontinuity):
    """The hub lost the messages of ``channel`` up to ``epoch:offset`` (a ``gap`` frame)."""

    def __str__(self) -> str:
        return f"{self.channel}: messages up to {self.epoch}:{self.offset} were lost; resync"


class RequestRefused(ClientError):
    """The hub answered a request with an error frame; ``code`` is stable (docs/protocol.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class PublishFailed(ClientError):
    """A publish was sent but not acknowledged: the connection dropped first (it may or may
    not have been published), or the hub closed it for this frame (1009: too big, 1008)."""


class NotConnected(ClientError):
    """A publish waited ``publish_timeout_s`` for a connection, or too many were waiting."""


class ClientClosed(ClientError):
    """The client has stopped and will not reconnect; ``code`` is the close code or HTTP
    status that stopped it (None after ``close()``)."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason, code)
        self.reason = reason
        self.code = code

    def __str__(self) -> str:
        return self.reason if self.code is None else f"{self.reason} (code {self.code})"
