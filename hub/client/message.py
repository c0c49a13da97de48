"""One delivery as the client hands it to the application, and the answers to its reads:
a page of history, and who is present."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from hub.core.jsontext import parse_json
from hub.core.sequence import Position

__all__ = [
    "Frame",
    "History",
    "Message",
    "Presence",
    "PresenceMember",
    "history_from_frame",
    "message_from_frame",
    "parse_frame",
    "presence_from_frame",
]

#: A hub.v1 frame, parsed: a JSON object.
Frame = dict[str, object]


@dataclass(frozen=True, slots=True)
class Message:
    """A message of ``channel``. Exactly one of its kinds is set: ``kind`` is ``"json"``
    (``data``, which may be any JSON value, ``None`` included), ``"text"`` (``text``) or
    ``"binary"`` (``binary``). On a history channel ``offset`` is its position (1, 2, 3 …
    in ``epoch``); elsewhere it is 0."""

    channel: str
    kind: str
    data: Any = None
    text: str | None = None
    binary: bytes | None = None
    offset: int = 0
    epoch: str = ""

    @property
    def value(self) -> Any:
        """The payload, whatever its kind."""
        return (
            self.data if self.kind == "json" else self.text if self.kind == "text" else self.binary
        )


def message_from_frame(frame: Frame, epoch: str) -> Message:
    """A ``{"type": "message", …}`` frame as a Message; raise ValueError when malformed."""
    channel = frame["channel"]
    offset = frame.get("offset", 0)
    if not isinstance(channel, str) or not isinstance(offset, int):
        raise ValueError(f"malformed delivery: {str(frame)[:200]}")
    if "data" in frame:
        return Message(channel, "json", data=frame["data"], offset=offset, epoch=epoch)
    if "text" in frame:
        return Message(channel, "text", text=str(frame["text"]), offset=offset, epoch=epoch)
    if "binary" in frame:
        encoded = frame["binary"]
        if not isinstance(encoded, str):
            raise ValueError(f"a binary delivery that is not base64 text: {str(frame)[:200]}")
        raw = base64.b64decode(encoded, validate=True)
        return Message(channel, "binary", binary=raw, offset=offset, epoch=epoch)
    raise ValueError(f"a delivery without data, text or binary: {str(frame)[:200]}")


def parse_frame(text: str | bytes) -> Frame:
    """One hub.v1 server frame; raise ValueError when it is not a JSON object."""
    frame = parse_json(text)
    if not isinstance(frame, dict):
        raise ValueError(f"a server frame that is not a JSON object: {str(text)[:200]!r}")
    return frame


@dataclass(frozen=True, slots=True)
class History:
    """The answer to ``Client.history``: ``messages`` oldest first, each with its offset and
    epoch; ``position`` is the channel's top (its epoch and last offset) when the hub read it."""

    channel: str
    position: Position
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class PresenceMember:
    """One connection subscribed to a presence channel: its ``client`` id (unique across
    the hubs), and its ``user`` (the token's ``sub``; None without one)."""

    client: str
    user: str | None


@dataclass(frozen=True, slots=True)
class Presence:
    """The answer to ``Client.presence``: every member on every hub, and the counts."""

    channel: str
    members: tuple[PresenceMember, ...]
    num_clients: int
    num_users: int


def history_from_frame(frame: Frame) -> History:
    """A ``{"type": "history", …}`` answer; ValueError or TypeError when malformed."""
    channel, epoch, top, messages = (
        frame["channel"],
        frame["epoch"],
        frame["offset"],
        frame["messages"],
    )
    if not isinstance(channel, str) or not isinstance(epoch, str) or not isinstance(top, int):
        raise ValueError(f"malformed history answer: {str(frame)[:200]}")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError(f"malformed history messages: {str(frame)[:200]}")
    return History(
        channel, Position(epoch, top), tuple(message_from_frame(m, epoch) for m in messages)
    )


def presence_from_frame(frame: Frame) -> Presence:
    """A ``{"type": "presence", …}`` answer; ValueError when malformed."""
    channel, clients = frame["channel"], frame["clients"]
    num_clients, num_users = frame["num_clients"], frame["num_users"]
    if not isinstance(channel, str) or not isinstance(clients, list):
        raise ValueError(f"malformed presence answer: {str(frame)[:200]}")
    if not isinstance(num_clients, int) or not isinstance(num_users, int):
        raise ValueError(f"malformed presence counts: {str(frame)[:200]}")
    members = []
    for entry in clients:
        client = entry.get("client") if isinstance(entry, dict) else None
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(client, str) or not (user is None or isinstance(user, str)):
            raise ValueError(f"malformed presence member: {str(entry)[:200]}")
        members.append(PresenceMember(client, user))
    return Presence(channel, tuple(members), num_clients, num_users)
