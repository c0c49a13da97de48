"""Server-Sent Events framing for ``GET /sse/<channel>``. Pure.

Each delivery is one event whose ``data`` is the hub.v1 delivery object (compact JSON, so
one line: JSON escapes every newline inside strings). On a history channel its ``id`` is
``<epoch>:<offset>``, which the browser's EventSource sends back as ``Last-Event-ID`` when
it reconnects; the hub then recovers from there, as a hub.v1 ``recover`` does.

A gap is an ``event: gap``; the first event of a stream is ``event: subscribed`` with the
position and, after a ``Last-Event-ID``, whether it was recovered. Comments (``: ...``)
are keepalives that no EventSource shows.
"""

from __future__ import annotations

from typing import Final

from hub.core.envelope import EVENT, GAP, Envelope
from hub.core.frames import v1_message
from hub.core.jsontext import dump_json
from hub.core.sequence import Position

__all__ = [
    "EXPIRED",
    "KEEPALIVE",
    "MAX_EVENT_ID_CHARS",
    "parse_event_id",
    "sse_events",
    "sse_preamble",
]

#: A comment line: it keeps proxies from cutting an idle stream and shows no event.
KEEPALIVE: Final = b": keepalive\n\n"

#: The last event of a stream whose token expired: the reader must come back with a fresh
#: token (EventSource cannot change its URL, so a new EventSource, with ``?last_event_id=``).
EXPIRED: Final = (
    b'event: expired\ndata: {"type":"expired","message":"the token has expired; '
    b'reconnect with a fresh one and ?last_event_id="}\n\n'
)

#: Longest Last-Event-ID accepted (an epoch of 64 characters, a colon, 20 digits).
MAX_EVENT_ID_CHARS: Final = 86

#: Offsets are 64-bit signed in Redis and in hub.v1 positions.
_MAX_OFFSET: Final = 2**63 - 1


def sse_events(channel: str, messages: list[Envelope]) -> bytes:
    """The events of one channel's batch, joined so that each reader gets one write.

    Join and leave events are left out: an SSE reader never asks for them.
    """
    channel_json = dump_json(channel)
    parts = []
    for m in messages:
        if m.kind == EVENT:
            continue
        data = v1_message(channel_json, m)
        if m.kind == GAP:
            parts.append(
                b"event: gap\nid: %b:%d\ndata: %b\n\n" % (m.epoch.encode(), m.offset, data)
            )
        elif m.offset:
            parts.append(b"id: %b:%d\ndata: %b\n\n" % (m.epoch.encode(), m.offset, data))
        else:
            parts.append(b"data: %b\n\n" % data)
    return b"".join(parts)


def sse_preamble(
    channel: str,
    position: Position | None,
    recovered: bool | None,
    retry_ms: int,
    *,
    resume_at: Position | None = None,
) -> bytes:
    """The stream's first bytes: the reconnect delay, then ``event: subscribed``.

    On a history channel the event carries the channel's position at the join (``epoch``,
    ``offset``), and an ``id`` where a reader cut off right after this event must resume:
    ``resume_at`` when a replay follows (the recovered position: the replay's events carry
    their own ids), else the position. An id never runs ahead of what the reader received.
    """
    body: dict[str, object] = {"type": "subscribed", "channel": channel}
    head = b"retry: %d\nevent: subscribed\n" % retry_ms
    if position is not None:
        body["epoch"] = position.epoch
        body["offset"] = position.offset
        at = resume_at or position
        head += b"id: %b:%d\n" % (at.epoch.encode(), at.offset)
    if recovered is not None:
        body["recovered"] = recovered
    return head + b"data: " + dump_json(body) + b"\n\n"


def parse_event_id(value: str) -> Position | None:
    """A ``Last-Event-ID`` of ``<epoch>:<offset>`` as a Position; None for anything else
    (an empty id, or one the hub did not write: the reader then joins at the top).
    Raise ValueError for an offset no position can have (2**63 or more)."""
    if not value or len(value) > MAX_EVENT_ID_CHARS:
        return None
    epoch, _, offset = value.rpartition(":")
    if not epoch or not offset.isdigit() or not offset.isascii():
        return None
    if int(offset) > _MAX_OFFSET:
        raise ValueError(f"the offset {offset} is past any position (at most 2**63 - 1)")
    return Position(epoch, int(offset))
