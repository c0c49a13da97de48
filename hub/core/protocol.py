"""The hub.v1 subprotocol, pure: requests in, and request bodies validated once. Acks, errors
and the server's own frames are ``replies.py``; deliveries are built in ``frames.py``; the
Redis envelope is ``envelope.py``.
Every frame is described in ``docs/protocol.md``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final

from hub.core.channels import MAX_CHANNEL_LENGTH, RULE, validate
from hub.core.envelope import BINARY, JSON, TEXT, Envelope
from hub.core.errors import InvalidChannel, ProtocolError
from hub.core.jsontext import NonFiniteNumber, dump_json, parse_json
from hub.core.sequence import Position

__all__ = [
    "BAD_BINARY_FRAME",
    "BAD_CHANNEL",
    "BAD_FIELD",
    "BAD_JSON",
    "BAD_REQUEST",
    "BAD_TOKEN",
    "ERROR_CODES",
    "FORBIDDEN",
    "HISTORY_OFF",
    "MISSING_FIELD",
    "OPS",
    "PRESENCE_OFF",
    "PUBLISH_REJECTED",
    "RATE_LIMITED",
    "REFUSED",
    "RPC_OFF",
    "SUBPROTOCOL",
    "SUBSCRIBE_RATE_LIMITED",
    "TOO_MANY_SUBSCRIPTIONS",
    "UNAVAILABLE",
    "UNKNOWN_OP",
    "UNRECOVERABLE_POSITION",
    "Request",
    "decode_binary_publish",
    "decode_request",
    "message_from_body",
    "message_from_fields",
    "position_from",
]

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
SUBSCRIBE_RATE_LIMITED: Final = "subscribe_rate_limited"
PUBLISH_REJECTED: Final = "publish_rejected"
HISTORY_OFF: Final = "history_off"
PRESENCE_OFF: Final = "presence_off"
UNRECOVERABLE_POSITION: Final = "unrecoverable_position"
UNAVAILABLE: Final = "unavailable"
#: An answer larger than the connection may have queued (--max-buffered-bytes).
TOO_LARGE: Final = "too_large"
#: A backend hook refused the request; ``app_code`` carries the backend's own code.
REFUSED: Final = "refused"
#: An rpc while no --proxy-rpc-url is set.
RPC_OFF: Final = "rpc_off"
#: A refresh whose token is invalid, expired, or names another user.
BAD_TOKEN: Final = "bad_token"

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
    SUBSCRIBE_RATE_LIMITED,
    PUBLISH_REJECTED,
    HISTORY_OFF,
    PRESENCE_OFF,
    UNRECOVERABLE_POSITION,
    UNAVAILABLE,
    REFUSED,
    RPC_OFF,
    BAD_TOKEN,
)

OPS: Final = (
    "subscribe",
    "unsubscribe",
    "publish",
    "ping",
    "history",
    "presence",
    "rpc",
    "refresh",
)
#: Longest RPC method name.
MAX_METHOD_LENGTH: Final = 200
#: Messages one history request may return, and its default.
MAX_HISTORY_LIMIT: Final = 1000
DEFAULT_HISTORY_LIMIT: Final = 100
#: Longest accepted epoch in a position.
MAX_EPOCH_LENGTH: Final = 64
#: Longest accepted string ``id``; integer ids must fit in 64 bits.
MAX_ID_LENGTH: Final = 200
_MAX_INT_ID = 2**63
#: Channels one subscribe or unsubscribe request may name.
MAX_CHANNELS_PER_REQUEST: Final = 1000

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded hub.v1 request.

    ``channels`` holds the channels of a (un)subscribe, or the one channel of a publish or
    history request. ``payload`` and ``kind`` are the message of a publish. ``recover`` maps
    channels of a subscribe to the positions to recover from; ``since`` and ``limit`` shape
    a history request.
    """

    op: str
    id: RequestId = None
    channels: tuple[str, ...] = ()
    payload: bytes = b""
    kind: int = TEXT
    recover: dict[str, Position] = field(default_factory=dict)
    since: Position | None = None
    limit: int = DEFAULT_HISTORY_LIMIT
    join_leave: bool = False
    #: An rpc's method and params; a refresh's token (in ``method``).
    method: str = ""
    params: object = None

    @property
    def channel(self) -> str:
        return self.channels[0]


def _error(code: str, message: str, request_id: RequestId = None) -> ProtocolError:
    return ProtocolError(code, message, request_id)


def _channel(value: object, field: str, request_id: RequestId) -> str:
    if not isinstance(value, str):
        raise _error(BAD_CHANNEL, f"{field!r} must be a string; {RULE}", request_id)
    try:
        return validate(value)
    except InvalidChannel as exc:
        raise _error(BAD_CHANNEL, str(exc), request_id) from None


def _request_id(obj: dict[str, object]) -> RequestId:
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


def _channel_list(obj: dict[str, object], op: str, request_id: RequestId) -> tuple[str, ...]:
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


def message_from_fields(obj: dict[str, object], request_id: RequestId = None) -> Envelope:
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
        return Envelope(dump_json(value), JSON)
    if not isinstance(value, str):
        raise _error(BAD_FIELD, f"{field!r} must be a string", request_id)
    if field == "text":
        try:
            return Envelope(value.encode(), TEXT)
        except UnicodeEncodeError:
            raise _error(BAD_FIELD, "'text' holds a lone surrogate", request_id) from None
    try:
        return Envelope(base64.b64decode(value, validate=True), BINARY)
    except (binascii.Error, ValueError):
        raise _error(BAD_FIELD, "'binary' must be standard base64 (RFC 4648)", request_id) from None


def message_from_body(body: bytes, kind: int) -> Envelope:
    """A message of ``kind`` from a request body (HTTP, ``hub publish``), validated once:
    JSON must parse (it is stored compact, its numbers as written), text must be UTF-8;
    raise ProtocolError."""
    if kind == JSON:
        try:
            return Envelope(dump_json(parse_json(body, exact=True)), JSON)
        except NonFiniteNumber as exc:
            raise _error(BAD_FIELD, f"the body: {exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(BAD_JSON, f"the body is not valid JSON: {exc}") from None
    if kind == TEXT:
        try:
            body.decode()
        except UnicodeDecodeError:
            raise _error(BAD_REQUEST, "a text body must be UTF-8; send binary instead") from None
    return Envelope(body, kind)


def decode_request(data: str | bytes) -> Request:
    """Decode a hub.v1 text frame; raise ProtocolError (carrying the id, once known)."""
    try:
        obj = parse_json(data, exact=True)
    except NonFiniteNumber as exc:
        raise _error(BAD_FIELD, str(exc)) from None
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
    if op == "history":
        return _history_request(obj, request_id)
    if op == "rpc":
        method = obj.get("method")
        if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD_LENGTH:
            raise _error(
                MISSING_FIELD if method is None else BAD_FIELD,
                f'rpc needs "method": a string of 1 to {MAX_METHOD_LENGTH} characters',
                request_id,
            )
        return Request(op, request_id, method=method, params=obj.get("params"))
    if op == "refresh":
        token = obj.get("token")
        if not isinstance(token, str) or not token:
            raise _error(MISSING_FIELD, 'refresh needs "token": "<JWT>"', request_id)
        return Request(op, request_id, method=token)
    if op == "presence":
        if "channel" not in obj:
            raise _error(MISSING_FIELD, 'presence needs "channel": "name"', request_id)
        return Request(op, request_id, (_channel(obj["channel"], "channel", request_id),))
    channels = _channel_list(obj, op, request_id)
    if op == "subscribe":
        join_leave = obj.get("join_leave", False)
        if not isinstance(join_leave, bool):
            raise _error(BAD_FIELD, "'join_leave' must be true or false", request_id)
        return Request(
            op,
            request_id,
            channels,
            recover=_recover_map(obj, channels, request_id),
            join_leave=join_leave,
        )
    return Request(op, request_id, channels)


def position_from(value: object, where: str, request_id: RequestId = None) -> Position:
    """A position object ``{"epoch": "E", "offset": 41}``; raise ProtocolError."""
    if not isinstance(value, dict) or set(value) != {"epoch", "offset"}:
        raise _error(BAD_FIELD, f'{where} must be {{"epoch": "...", "offset": N}}', request_id)
    epoch, offset = value["epoch"], value["offset"]
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise _error(
            BAD_FIELD, f"{where}.epoch must be a string of 1 to {MAX_EPOCH_LENGTH}", request_id
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < _MAX_INT_ID:
        raise _error(BAD_FIELD, f"{where}.offset must be an integer >= 0", request_id)
    return Position(epoch, offset)


def _recover_map(
    obj: dict[str, object], channels: tuple[str, ...], request_id: RequestId
) -> dict[str, Position]:
    value = obj.get("recover")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(
            BAD_FIELD,
            '\'recover\' maps channels to positions: {"news": {"epoch": "E", "offset": 41}}',
            request_id,
        )
    unknown = [c for c in value if c not in channels]
    if unknown:
        raise _error(
            BAD_FIELD, f"'recover' names {unknown[:3]}, which this subscribe does not", request_id
        )
    return {c: position_from(p, f"recover[{c!r}]", request_id) for c, p in value.items()}


def _history_request(obj: dict[str, object], request_id: RequestId) -> Request:
    if "channel" not in obj:
        raise _error(MISSING_FIELD, 'history needs "channel": "name"', request_id)
    channel = _channel(obj["channel"], "channel", request_id)
    limit = obj.get("limit", DEFAULT_HISTORY_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_HISTORY_LIMIT:
        raise _error(
            BAD_FIELD, f"'limit' must be an integer from 0 to {MAX_HISTORY_LIMIT}", request_id
        )
    since = obj.get("since")
    position = None if since is None else position_from(since, "since", request_id)
    return Request("history", request_id, (channel,), since=position, limit=limit)


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
