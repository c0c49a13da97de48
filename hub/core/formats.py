"""Wire formats: which bytes a subscriber reads, and the one encoder of each.

The fan-out builds each format's bytes once per batch (``delivery.deliver``) and hands the same
bytes to every subscriber of that format. A subscriber whose bytes cannot be shared, because
permessage-deflate keeps a compression context per connection, says so with
``PER_CONNECTION`` and encodes for itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hub.core.envelope import Envelope
from hub.core.event_stream import sse_events
from hub.core.frames import raw_frames, v1_frames

__all__ = ["ENCODERS", "PER_CONNECTION", "RAW", "SSE", "V1", "Encoder"]

#: A channel's batch of messages → the frames that one subscriber's single write carries.
Encoder = Callable[[str, list[Envelope]], bytes]

#: Raw mode: each message as it came, one text or binary frame.
RAW: Final = 0
#: hub.v1: each message as a JSON delivery frame naming its channel.
V1: Final = 1
#: Server-Sent Events: each message as an event whose data is its hub.v1 delivery.
SSE: Final = 2
#: Not a shared format: the subscriber encodes each batch itself (compression).
PER_CONNECTION: Final = -1


def _raw(channel: str, messages: list[Envelope]) -> bytes:
    return raw_frames(messages)


#: Indexed by format.
ENCODERS: Final[tuple[Encoder, ...]] = (_raw, v1_frames, sse_events)
