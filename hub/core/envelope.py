"""The message, and the envelope hub writes into Redis. Pure.

What the hub PUBLISHes to ``<prefix><channel>`` is, by the kind of message:

* text (a raw text frame): the UTF-8 bytes as they are, so that ``redis-cli SUBSCRIBE``
  shows them and any program can publish text with a plain ``PUBLISH``;
* binary (a raw binary frame): ``ENVELOPE_MAGIC + b"b" + payload``;
* JSON (a ``hub.v1`` publish of a JSON value): ``ENVELOPE_MAGIC + b"j" + json_text``;
* a presence event: ``ENVELOPE_MAGIC + b"p"``, then ``j`` (join) or ``l`` (leave), then
  ``{"client":…,"user":…}``;
* a message of a history channel: ``ENVELOPE_MAGIC + b"o" + b"<offset>:<epoch>\\n"`` followed
  by one of the three above. The history script (``hub/brokers/scripts.py``) writes it, so
  the offset and epoch are those Redis assigned.

``ENVELOPE_MAGIC`` starts with the byte 0xFF, which never occurs in valid UTF-8, so no text
payload can be mistaken for an envelope. A payload without the magic is text when it is valid
UTF-8 and binary otherwise. A JSON envelope that does not hold exactly one JSON value (a bug
in some other writer) is delivered as binary, whole: no client's frames break, nobody is
disconnected.
"""

from __future__ import annotations

from typing import Final

from hub.core.jsontext import is_json_value

__all__ = [
    "BINARY",
    "ENVELOPE_MAGIC",
    "EVENT",
    "GAP",
    "JSON",
    "POSITION_PREFIX",
    "TEXT",
    "Envelope",
    "decode_envelope",
    "encode_envelope",
    "encode_event",
    "encode_positioned",
    "gap",
]

TEXT: Final = 0
BINARY: Final = 1
JSON: Final = 2
#: Not a message: a marker, in a channel's stream of messages, that some were lost there.
GAP: Final = 3
#: Not a message: a presence event (join or leave); its payload is the event as JSON.
EVENT: Final = 4

ENVELOPE_MAGIC: Final = b"\xffhb"
_KIND_BYTE = {BINARY: b"b", JSON: b"j"}
_MAGIC_LEN = len(ENVELOPE_MAGIC)
_BINARY_PREFIX = ENVELOPE_MAGIC + b"b"
_JSON_PREFIX = ENVELOPE_MAGIC + b"j"
POSITION_PREFIX: Final = ENVELOPE_MAGIC + b"o"
_EVENT_PREFIX = ENVELOPE_MAGIC + b"p"
_POSITION_LEN = len(POSITION_PREFIX)
#: Longest "<offset>:<epoch>" head accepted (an offset fits in 20 digits, an epoch in 64).
_MAX_POSITION_LEN = 96


class Envelope:
    """One message on a channel: its payload bytes and its kind (TEXT, BINARY or JSON).

    On a history channel it also has its ``offset`` (1, 2, 3 … per channel) and the
    ``epoch`` of the history it belongs to; elsewhere the offset is 0 and the epoch empty.
    """

    __slots__ = ("epoch", "kind", "offset", "payload")

    def __init__(self, payload: bytes, kind: int = TEXT, offset: int = 0, epoch: str = "") -> None:
        self.payload = payload
        self.kind = kind
        self.offset = offset
        self.epoch = epoch

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Envelope)
            and self.payload == other.payload
            and self.kind == other.kind
            and self.offset == other.offset
            and self.epoch == other.epoch
        )

    def __hash__(self) -> int:
        return hash((self.payload, self.kind, self.offset))

    def __repr__(self) -> str:
        where = f", offset={self.offset}, epoch={self.epoch!r}" if self.offset else ""
        return f"Envelope({self.payload[:40]!r}, kind={self.kind}{where})"


def gap(epoch: str, offset: int) -> Envelope:
    """The marker that messages were lost on a channel; delivery continues after
    ``epoch:offset``."""
    return Envelope(b"", GAP, offset, epoch)


def encode_envelope(payload: bytes, kind: int = TEXT) -> bytes:
    """The bytes that the hub PUBLISHes for a message of this kind."""
    if kind == TEXT:
        return payload
    return ENVELOPE_MAGIC + _KIND_BYTE[kind] + payload


def encode_event(is_join: bool, body: bytes) -> bytes:
    """A presence event as published: ``j`` (join) or ``l`` (leave), then a JSON object
    with the client and the user."""
    return _EVENT_PREFIX + (b"j" if is_join else b"l") + body


def _is_event(payload: bytes) -> bool:
    return payload[:2] in (b"j{", b"l{") and payload.endswith(b"}") and len(payload) > 4


def encode_positioned(envelope: bytes, offset: int, epoch: str) -> bytes:
    """A history channel's envelope: what the history script publishes (for tests and the
    memory broker, which build it in Python)."""
    return b"%b%d:%b\n%b" % (POSITION_PREFIX, offset, epoch.encode(), envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Read a PUBLISHed payload, whether the hub or any other program wrote it."""
    if data[:1] == b"\xff":
        if data.startswith(_BINARY_PREFIX):
            return Envelope(data[_MAGIC_LEN + 1 :], BINARY)
        if data.startswith(_JSON_PREFIX):
            payload = data[_MAGIC_LEN + 1 :]
            # Spliced as it is into hub.v1 deliveries: anything but one JSON value would let a
            # bad writer break (or forge) every client's frames. It goes out as bytes instead.
            return Envelope(payload, JSON) if is_json_value(payload) else Envelope(data, BINARY)
        if data.startswith(POSITION_PREFIX):
            return _decode_positioned(data)
        if data.startswith(_EVENT_PREFIX) and _is_event(data[_MAGIC_LEN + 1 :]):
            return Envelope(data[_MAGIC_LEN + 1 :], EVENT)
        return Envelope(data, BINARY)
    if data.isascii():
        return Envelope(data, TEXT)
    try:
        data.decode()
    except UnicodeDecodeError:
        return Envelope(data, BINARY)
    return Envelope(data, TEXT)


def _decode_positioned(data: bytes) -> Envelope:
    end = data.find(b"\n", _POSITION_LEN, _POSITION_LEN + _MAX_POSITION_LEN)
    offset_text, _, epoch = data[_POSITION_LEN:end].partition(b":")
    if end < 0 or not offset_text.isdigit() or not epoch.isascii():
        return Envelope(data, BINARY)  # not one of ours: delivered as it is
    message = decode_envelope(data[end + 1 :])
    if message.offset:
        return Envelope(data, BINARY)  # a position inside a position is not one of ours
    message.offset = int(offset_text)
    message.epoch = epoch.decode()
    return message
