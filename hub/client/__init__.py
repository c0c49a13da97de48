"""hub's Python client (docs/client.md).

- :class:`Client`: a hub.v1 WebSocket client that fails over between URLs, reconnects with
  full-jitter backoff, and resumes every subscription from its last position;
- :class:`Publisher`: publishes from backend code straight into Redis, sync or async, through
  the history script on history channels.
"""

from __future__ import annotations

from hub.client.client import Client
from hub.client.connection import TokenSource
from hub.client.errors import (
    ClientClosed,
    ClientError,
    Discontinuity,
    Gap,
    NotConnected,
    NotRecovered,
    PublishFailed,
    RequestRefused,
)
from hub.client.message import History, Message, Presence, PresenceMember
from hub.client.publisher import Published, Publisher
from hub.client.requests import SessionInfo
from hub.client.subscription import Subscription
from hub.core.sequence import Position

__all__ = [
    "Client",
    "ClientClosed",
    "ClientError",
    "Discontinuity",
    "Gap",
    "History",
    "Message",
    "NotConnected",
    "NotRecovered",
    "Position",
    "Presence",
    "PresenceMember",
    "PublishFailed",
    "Published",
    "Publisher",
    "RequestRefused",
    "SessionInfo",
    "Subscription",
    "TokenSource",
]
