"""What hub.v1 answers, pure: acks, error frames, a subscribe's ``positions``, and the
frames the server sends unasked (``subscribed``, ``unsubscribed``). Requests are decoded in
``protocol.py``; every frame is described in ``docs/protocol.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from hub.core.protocol import RequestId
from hub.core.sequence import Position

__all__ = [
    "ack_frame",
    "error_frame",
    "positions_field",
    "subscribed_frame",
    "unsubscribed_frame",
]


def ack_frame(op: str, request_id: RequestId, **extra: object) -> str:
    """``{"type":"ack","op":..,"id":..}`` plus any extra fields."""
    return json.dumps({"type": "ack", "op": op, "id": request_id, **extra}, separators=(",", ":"))


def error_frame(code: str, message: str, request_id: RequestId = None, **extra: object) -> str:
    return json.dumps(
        {"type": "error", "id": request_id, "code": code, "message": message, **extra},
        separators=(",", ":"),
    )


def positions_field(
    positions: Mapping[str, tuple[Position, bool | None]],
) -> dict[str, dict[str, object]]:
    """A subscribe's ``positions``: each history channel's epoch and top offset at the join,
    and ``recovered`` where a position was asked for (``Joining.positions``)."""
    out: dict[str, dict[str, object]] = {}
    for channel, (position, recovered) in positions.items():
        entry: dict[str, object] = {"epoch": position.epoch, "offset": position.offset}
        if recovered is not None:
            entry["recovered"] = recovered
        out[channel] = entry
    return out


def subscribed_frame(
    channels: Sequence[str], positions: Mapping[str, tuple[Position, bool | None]]
) -> str:
    """The server subscribed the connection to ``channels`` (the server API's subscribe, a
    connect hook's channels): ``{"type":"subscribed","channels":[..],"server":true}``, with
    the history channels' ``positions`` as a subscribe ack has them. No ``id``: nobody asked.
    What follows it on those channels is delivered as usual."""
    body: dict[str, object] = {"type": "subscribed", "channels": list(channels), "server": True}
    if positions:
        body["positions"] = positions_field(positions)
    return json.dumps(body, separators=(",", ":"))


def unsubscribed_frame(channel: str) -> str:
    """The server unsubscribed the connection from ``channel`` (the server API's
    unsubscribe): ``{"type":"unsubscribed","channel":..,"server":true}``; nothing more of it
    follows, and a client does not subscribe to it again on its own."""
    return json.dumps(
        {"type": "unsubscribed", "channel": channel, "server": True}, separators=(",", ":")
    )
