"""Wire formats, pure: WebSocket data frames built once, and the envelope hub writes into Redis.

The Redis envelope
------------------
What the hub PUBLISHes to ``<prefix><channel>`` is, by the kind of message:

* text (a raw text frame): the UTF-8 bytes as they are, so that ``redis-cli SUBSCRIBE``
  shows them and any program can publish text with a plain ``PUBLISH``;
* binary (a raw binary frame): ``ENVELOPE_MAGIC + b"b" + payload``;
* JSON (a ``hub.v1`` publish of a JSON value): ``ENVELOPE_MAGIC + b"j" + json_text``.

``ENVELOPE_MAGIC`` starts with the byte 0xFF, which never occurs in valid UTF-8, so no text
payload can be mistaken for an envelope. A payload without the magic is text when it is valid
UTF-8 and binary otherwise.

A JSON envelope is trusted to hold valid JSON: the hub validates every JSON value before it
publishes one. The hub.v1 frames are described in ``docs/protocol.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from hub.core.channels import MAX_CHANNEL_LENGTH, RULE, validate
from hub.core.errors import InvalidChannel, ProtocolError

__all__ = [
    "BAD_BINARY_FRAME",
    "BAD_CHANNEL",
    "BAD_FIELD",
    "BAD_JSON",
    "BAD_REQUEST",
    "BINARY",
    "ENVELOPE_MAGIC",
    "ERROR_CODES",
    "FORBIDDEN",
    "JSON",
    "MISSING_FIELD",
    "OPS",
    "OP_BINARY",
    "OP_TEXT",
    "PUBLISH_REJECTED",
    "RATE_LIMITED",
    "SUBPROTOCOL",
    "TEXT",
    "TOO_MANY_SUBSCRIPTIONS",
    "UNKNOWN_OP",
    "Message",
    "Request",
    "ack_frame",
    "decode_binary_publish",
    "decode_envelope",
    "decode_request",
    "dump_json",
    "encode_envelope",
    "encode_frame",
    "error_frame",
    "message_from_body",
    "message_from_fields",
    "parse_json",
    "raw_frames",
    "v1_frames",
    "v1_messages",
]

TEXT: Final = 0
BINARY: Final = 1
JSON: Final = 2

ENVELOPE_MAGIC: Final = b"\xffhb"
_KIND_BYTE = {BINARY: b"b", JSON: b"j"}
_MAGIC_LEN = len(ENVELOPE_MAGIC)
_BINARY_PREFIX = ENVELOPE_MAGIC + b"b"
_JSON_PREFIX = ENVELOPE_MAGIC + b"j"

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


class Message:
    """One message on a channel: its payload bytes and its kind (TEXT, BINARY or JSON)."""

    __slots__ = ("kind", "payload")

    def __init__(self, payload: bytes, kind: int = TEXT) -> None:
        self.payload = payload
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message) and self.payload == other.payload and self.kind == other.kind
        )

    def __hash__(self) -> int:
        return hash((self.payload, self.kind))

    def __repr__(self) -> str:
        return f"Message({self.payload[:40]!r}, kind={self.kind})"


def encode_envelope(payload: bytes, kind: int = TEXT) -> bytes:
    """The bytes that the hub PUBLISHes for a message of this kind."""
    if kind == TEXT:
        return payload
    return ENVELOPE_MAGIC + _KIND_BYTE[kind] + payload


def decode_envelope(data: bytes) -> Message:
    """Read a PUBLISHed payload, whether the hub or any other program wrote it."""
    if data[:1] == b"\xff":
        if data.startswith(_BINARY_PREFIX):
            return Message(data[_MAGIC_LEN + 1 :], BINARY)
        if data.startswith(_JSON_PREFIX):
            return Message(data[_MAGIC_LEN + 1 :], JSON)
        return Message(data, BINARY)
    if data.isascii():
        return Message(data, TEXT)
    try:
        data.decode()
    except UnicodeDecodeError:
        return Message(data, BINARY)
    return Message(data, TEXT)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client WebSocket frame (RFC 6455, 5.2).

    Server frames carry no mask, so the same bytes serve every subscriber: this is what lets
    the fan-out build a frame once per message instead of once per connection.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return _pack_short(0x80 | opcode, 126, length) + payload
    return _pack_long(0x80 | opcode, 127, length) + payload


def raw_frames(messages: list[Message]) -> bytes:
    """The raw-mode frames of a batch, joined so that each subscriber gets one write."""
    return b"".join(
        [encode_frame(OP_BINARY if m.kind == BINARY else OP_TEXT, m.payload) for m in messages]
    )


# The hub.v1 subprotocol: JSON control frames over one socket.

SUBPROTOCOL: Final = "hub.v1"

# Stable error codes of hub.v1 error frames and of the HTTP API (docs/protocol.md lists each).
BAD_JSON: Final = "bad_json"
BAD_REQUEST: Final = "bad_request"
UNKNOWN_OP: Final = "unknown_op"
MISSING_FIELD: Final = "missing_field"
BAD_FIELD: Final = "bad_field"
BAD_CHANNEL: Final = "bad_channel"
BAD_BINARY_FRAME: Final = "bad_binary_frame"
TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"
FORBIDDEN: Final = "forbidden"
RATE_LIMITED: Final = "rate_limited"
PUBLISH_REJECTED: Final = "publish_rejected"

ERROR_CODES: Final = (
    BAD_JSON,
    BAD_REQUEST,
    UNKNOWN_OP,
    MISSING_FIELD,
    BAD_FIELD,
    BAD_CHANNEL,
    BAD_BINARY_FRAME,
    TOO_MANY_SUBSCRIPTIONS,
    FORBIDDEN,
    RATE_LIMITED,
    PUBLISH_REJECTED,
)

OPS: Final = ("subscribe", "unsubscribe", "publish", "ping")
#: Longest accepted string ``id``; integer ids must fit in 64 bits.
MAX_ID_LENGTH: Final = 200
_MAX_INT_ID = 2**63
#: Channels one subscribe or unsubscribe request may name.
MAX_CHANNELS_PER_REQUEST: Final = 1000

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded hub.v1 request.

    ``channels`` holds the channels of a (un)subscribe, or the one channel of a publish.
    ``payload`` and ``kind`` are the message of a publish.
    """

    op: str
    id: RequestId = None
    channels: tuple[str, ...] = ()
    payload: bytes = b""
    kind: int = TEXT

    @property
    def channel(self) -> str:
        return self.channels[0]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity); raise ValueError on anything else."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; lone surrogates (legal in JSON text, not in UTF-8) are escaped."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _error(code: str, message: str, request_id: RequestId = None) -> ProtocolError:
    return ProtocolError(code, message, request_id)


def _channel(value: object, field: str, request_id: RequestId) -> str:
    if not isinstance(value, str):
        raise _error(BAD_CHANNEL, f"{field!r} must be a string; {RULE}", request_id)
    try:
        return validate(value)
    except InvalidChannel as exc:
        raise _error(BAD_CHANNEL, str(exc), request_id) from None


def _request_id(obj: dict[str, Any]) -> RequestId:
    value = obj.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _error(BAD_FIELD, "'id' must be a string or an integer (or absent)")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise _error(BAD_FIELD, f"'id' must be at most {MAX_ID_LENGTH} characters")
    if isinstance(value, int) and not -_MAX_INT_ID <= value < _MAX_INT_ID:
        raise _error(BAD_FIELD, "an integer 'id' must fit in 64 bits")
    return value


def _channel_list(obj: dict[str, Any], op: str, request_id: RequestId) -> tuple[str, ...]:
    if "channel" in obj:
        if "channels" in obj:
            raise _error(BAD_REQUEST, f"{op}: give 'channel' or 'channels', not both", request_id)
        return (_channel(obj["channel"], "channel", request_id),)
    if "channels" not in obj:
        raise _error(
            MISSING_FIELD,
            f'{op} needs "channel": "name" or "channels": ["name", ...]',
            request_id,
        )
    names = obj["channels"]
    if not isinstance(names, list) or not names:
        raise _error(BAD_FIELD, "'channels' must be a non-empty list of names", request_id)
    if len(names) > MAX_CHANNELS_PER_REQUEST:
        raise _error(
            BAD_FIELD,
            f"'channels' may name at most {MAX_CHANNELS_PER_REQUEST} channels per request",
            request_id,
        )
    return tuple(dict.fromkeys(_channel(n, "channels", request_id) for n in names))


def message_from_fields(obj: dict[str, Any], request_id: RequestId = None) -> Message:
    """The message of a publish: exactly one of ``data`` (JSON), ``text`` or ``binary``."""
    given = [f for f in ("data", "text", "binary") if f in obj]
    if not given:
        raise _error(
            MISSING_FIELD,
            'publish needs one of "data" (any JSON), "text" (a string) or "binary" (base64)',
            request_id,
        )
    if len(given) > 1:
        raise _error(
            BAD_REQUEST, f"publish takes one of data, text or binary, not {given}", request_id
        )
    field = given[0]
    value = obj[field]
    if field == "data":
        return Message(dump_json(value), JSON)
    if not isinstance(value, str):
        raise _error(BAD_FIELD, f"{field!r} must be a string", request_id)
    if field == "text":
        try:
            return Message(value.encode(), TEXT)
        except UnicodeEncodeError:
            raise _error(BAD_FIELD, "'text' holds a lone surrogate", request_id) from None
    try:
        return Message(base64.b64decode(value, validate=True), BINARY)
    except (binascii.Error, ValueError):
        raise _error(BAD_FIELD, "'binary' must be standard base64 (RFC 4648)", request_id) from None


def message_from_body(body: bytes, kind: int) -> Message:
    """A message of ``kind`` from a request body (HTTP, ``hub publish``), validated once:
    JSON must parse (it is stored compact), text must be UTF-8; raise ProtocolError."""
    if kind == JSON:
        try:
            return Message(dump_json(parse_json(body)), JSON)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(BAD_JSON, f"the body is not valid JSON: {exc}") from None
    if kind == TEXT:
        try:
            body.decode()
        except UnicodeDecodeError:
            raise _error(BAD_REQUEST, "a text body must be UTF-8; send binary instead") from None
    return Message(body, kind)


def decode_request(data: str | bytes) -> Request:
    """Decode a hub.v1 text frame; raise ProtocolError (carrying the id, once known)."""
    try:
        obj = parse_json(data)
    except ValueError as exc:
        raise _error(BAD_JSON, f"a request must be a JSON object: {exc}") from None
    if not isinstance(obj, dict):
        raise _error(BAD_REQUEST, 'a request must be a JSON object like {"op": "ping"}')
    request_id = _request_id(obj)
    op = obj.get("op")
    if op is None:
        raise _error(MISSING_FIELD, f"a request needs 'op', one of {', '.join(OPS)}", request_id)
    if op not in OPS:
        raise _error(
            UNKNOWN_OP, f"unknown op {str(op)[:40]!r}; use one of {', '.join(OPS)}", request_id
        )
    if op == "ping":
        return Request("ping", request_id)
    if op == "publish":
        if "channel" not in obj:
            raise _error(MISSING_FIELD, 'publish needs "channel": "name"', request_id)
        channel = _channel(obj["channel"], "channel", request_id)
        message = message_from_fields(obj, request_id)
        return Request("publish", request_id, (channel,), message.payload, message.kind)
    return Request(op, request_id, _channel_list(obj, op, request_id))


def decode_binary_publish(data: bytes) -> Request:
    """A hub.v1 binary frame: ``<channel> LF <payload>``, published as a BINARY message."""
    end = data.find(b"\n", 0, MAX_CHANNEL_LENGTH + 1)
    if end < 0:
        raise _error(
            BAD_BINARY_FRAME,
            "a binary frame must start with the channel name and a newline (\\n), then the payload",
        )
    try:
        name = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise _error(BAD_CHANNEL, f"invalid channel name in a binary frame; {RULE}") from None
    channel = _channel(name, "channel", None)
    return Request("publish", None, (channel,), data[end + 1 :], BINARY)


def ack_frame(op: str, request_id: RequestId, **extra: Any) -> str:
    """``{"type":"ack","op":..,"id":..}`` plus any extra fields."""
    return json.dumps({"type": "ack", "op": op, "id": request_id, **extra}, separators=(",", ":"))


def error_frame(code: str, message: str, request_id: RequestId = None) -> str:
    return json.dumps(
        {"type": "error", "id": request_id, "code": code, "message": message},
        separators=(",", ":"),
    )


def v1_messages(channel: str, messages: list[Message]) -> list[bytes]:
    """The hub.v1 delivery frames' payloads for a batch of one channel's messages."""
    head = b'{"type":"message","channel":' + dump_json(channel)
    out = []
    for m in messages:
        if m.kind == JSON:
            out.append(head + b',"data":' + m.payload + b"}")
        elif m.kind == TEXT:
            out.append(head + b',"text":' + dump_json(m.payload.decode()) + b"}")
        else:
            out.append(head + b',"binary":"' + base64.b64encode(m.payload) + b'"}')
    return out


def v1_frames(channel: str, messages: list[Message]) -> bytes:
    """The hub.v1 text frames of a batch, joined so that each subscriber gets one write."""
    return b"".join([encode_frame(OP_TEXT, p) for p in v1_messages(channel, messages)])
