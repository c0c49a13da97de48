"""One delivery as the client hands it to the application."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from hub.core.jsontext import parse_json

__all__ = ["Frame", "Message", "message_from_frame", "parse_frame"]

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
