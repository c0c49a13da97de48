"""``--protocol hub.v1``: hub's own control protocol (docs/protocol.md). A socket joins with a
``subscribe`` request and is on its channel at the ack; it publishes with the binary frame
``CHANNEL\\n<bytes>`` (no base64 on the way in, no ack to wait for), and gets each message as
``{"type":"message","channel":C,"binary":"<base64>"}``."""

from __future__ import annotations

import base64
import binascii
import json
import re

from hub.bench.protocols.base import IGNORED, OP_TEXT, OTHER, Adapter, Framing, Out, Seen

__all__ = ["HubV1"]

# The first 40 base64 characters hold the 28-byte header (and 2 bytes more): only those are
# decoded, whatever the message size.
_BINARY = re.compile(rb'"binary"\s*:\s*"([A-Za-z0-9+/=]{1,40})')
_JOINED = Seen(joined=True)


class HubV1(Adapter):
    name = "hub.v1"
    subprotocol = "hub.v1"

    @property
    def joins_on_upgrade(self) -> bool:
        return False

    def waiting_for(self) -> str:
        return "the ack of the hub.v1 subscribe request"

    def hello(self, channel: str) -> tuple[Out, ...]:
        request = {"op": "subscribe", "channel": channel, "id": "bench"}
        return ((OP_TEXT, json.dumps(request, separators=(",", ":")).encode()),)

    def framing(self, channel: str) -> Framing:
        return Framing(prefix=channel.encode() + b"\n")

    def read(self, payload: bytes, channel: str) -> Seen:
        if payload.startswith(b'{"type":"message"'):
            match = _BINARY.search(payload)
            if match is not None:
                try:
                    return Seen(header=base64.b64decode(match[1] + b"=" * (-len(match[1]) % 4)))
                except (binascii.Error, ValueError):
                    return OTHER
            return OTHER
        try:
            frame = json.loads(payload)
        except ValueError:
            return OTHER
        if not isinstance(frame, dict):
            return OTHER
        kind = frame.get("type")
        if kind == "ack" and frame.get("op") == "subscribe":
            return _JOINED
        if kind == "error":
            return Seen(error=f"hub.v1 error {frame.get('code')}: {frame.get('message')}")
        if kind == "message":
            return OTHER  # a text or JSON message: not the bench's
        return IGNORED
