"""Backend hooks, pure: what hub asks the application's backend, and what an answer may say.

Each hook is one HTTP POST of a JSON object (``hub.hooks.proxy`` sends it). The backend
answers ``{"result": {...}}`` (allowed, with what the hook may carry) or ``{"error":
{"code": "...", "message": "..."}}`` (refused). Anything else (no answer in time, a 5xx,
invalid JSON, another shape) is a failure, never a refusal: the caller treats it as the
backend being unavailable. docs/protocol.md, "Backend hooks", describes every field.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hub.core.auth import Grant
from hub.core.channels import validate
from hub.core.envelope import BINARY, JSON, TEXT, Envelope
from hub.core.errors import HubError, InvalidChannel, ProtocolError
from hub.core.jsontext import parse_json
from hub.core.protocol import message_from_fields

__all__ = [
    "CONNECT",
    "HOOKS",
    "PUBLISH",
    "REFRESH",
    "RPC",
    "SUBSCRIBE",
    "ConnectResult",
    "HookRefused",
    "HookUnavailable",
    "connect_request",
    "connect_status",
    "message_body",
    "parse_answer",
    "parse_connect",
    "parse_publish",
    "parse_refresh",
    "parse_rpc",
]

CONNECT: Final = "connect"
SUBSCRIBE: Final = "subscribe"
PUBLISH: Final = "publish"
RPC: Final = "rpc"
REFRESH: Final = "refresh"
HOOKS: Final = (CONNECT, SUBSCRIBE, PUBLISH, RPC, REFRESH)

#: Why a hook call failed, the ``cause`` of HookUnavailable (a metric label, a log key).
TIMEOUT: Final = "timeout"
CONNECTION: Final = "connection"
STATUS: Final = "status"
BAD_JSON: Final = "bad_json"
BAD_SHAPE: Final = "bad_shape"

#: A backend's error code: short, lower-case words (it reaches clients as ``app_code``).
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Error codes of a connect refusal that answer 401 (the client must authenticate); any
#: other code answers 403 (who it is may not connect).
UNAUTHORIZED_CODES: Final = frozenset({"unauthorized", "unauthenticated", "token_expired"})
#: Channels one connect answer may subscribe a connection to.
MAX_SERVER_CHANNELS: Final = 1000
#: Longest message of a refusal that hub passes on.
MAX_MESSAGE: Final = 500


class HookUnavailable(HubError):
    """A hook call failed: the backend is down, slow, or answered nonsense."""

    def __init__(self, hook: str, cause: str, detail: str) -> None:
        super().__init__(hook, cause, detail)
        self.hook = hook
        self.cause = cause
        self.detail = detail

    def __str__(self) -> str:
        return f"the {self.hook} hook failed ({self.cause}): {self.detail}"


class HookRefused(HubError):
    """The backend answered ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(self, hook: str, code: str, message: str) -> None:
        super().__init__(hook, code, message)
        self.hook = hook
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse_answer(hook: str, answer: object) -> dict[str, object]:
    """The ``result`` object of an answer; raise HookRefused or HookUnavailable."""
    if not isinstance(answer, dict) or len(answer.keys() & {"result", "error"}) != 1:
        raise HookUnavailable(hook, BAD_SHAPE, 'the answer must be {"result": {...}} or {"error"}')
    if "error" in answer:
        error = answer["error"]
        if not isinstance(error, dict):
            raise HookUnavailable(hook, BAD_SHAPE, "'error' must be an object")
        code, message = error.get("code"), error.get("message", "")
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise HookUnavailable(hook, BAD_SHAPE, "error.code must be a short string")
        if not isinstance(message, str):
            raise HookUnavailable(hook, BAD_SHAPE, "error.message must be a string")
        raise HookRefused(hook, code, message[:MAX_MESSAGE])
    result = answer["result"]
    if not isinstance(result, dict):
        raise HookUnavailable(hook, BAD_SHAPE, "'result' must be an object")
    return result


def connect_status(refused: HookRefused) -> int:
    """The HTTP status of a refused connect: 401 for the codes that ask for credentials,
    else 403."""
    return 401 if refused.code in UNAUTHORIZED_CODES else 403


@dataclass(frozen=True)
class ConnectResult:
    """What an allowed connect carries."""

    user: str | None = None
    expire_at: float | None = None
    channels: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    #: Given to a hub.v1 client in its ``connected`` frame (absent: None and not given).
    data: object = None
    has_data: bool = False

    def grant(self) -> Grant:
        return Grant(
            sub=self.user, exp=self.expire_at, subscribe=self.subscribe, publish=self.publish
        )


def _strings(hook: str, result: dict[str, object], name: str) -> tuple[str, ...]:
    value = result.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HookUnavailable(hook, BAD_SHAPE, f"result.{name} must be a string or a list of them")
    return tuple(value)


def _expire_at(hook: str, result: dict[str, object]) -> float | None:
    value = result.get("expire_at")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise HookUnavailable(hook, BAD_SHAPE, "result.expire_at must be unix seconds")
    return float(value)


def parse_connect(answer: object) -> ConnectResult:
    result = parse_answer(CONNECT, answer)
    user = result.get("user")
    if user is not None and not isinstance(user, str | int):
        raise HookUnavailable(CONNECT, BAD_SHAPE, "result.user must be a string")
    channels = _strings(CONNECT, result, "channels")
    if len(channels) > MAX_SERVER_CHANNELS:
        raise HookUnavailable(
            CONNECT, BAD_SHAPE, f"result.channels names more than {MAX_SERVER_CHANNELS}"
        )
    try:
        channels = tuple(dict.fromkeys(validate(c) for c in channels))
    except InvalidChannel as exc:
        raise HookUnavailable(CONNECT, BAD_SHAPE, f"result.channels: {exc}") from None
    return ConnectResult(
        user=None if user is None else str(user),
        expire_at=_expire_at(CONNECT, result),
        channels=channels,
        subscribe=_strings(CONNECT, result, "subscribe"),
        publish=_strings(CONNECT, result, "publish"),
        data=result.get("data"),
        has_data="data" in result,
    )


def parse_publish(answer: object) -> Envelope | None:
    """The replacement message of an allowed publish (``data``, ``text`` or ``binary``, as
    a hub.v1 publish gives them), or None to publish the client's message as it is."""
    result = parse_answer(PUBLISH, answer)
    if not result.keys() & {"data", "text", "binary"}:
        return None
    try:
        return message_from_fields(result)
    except ProtocolError as exc:
        raise HookUnavailable(PUBLISH, BAD_SHAPE, f"result: {exc.message}") from None


def parse_rpc(answer: object) -> object:
    """The ``data`` of an RPC's result (None when it gives none)."""
    return parse_answer(RPC, answer).get("data")


def parse_refresh(answer: object) -> float:
    """The new expiry of a refreshed connection."""
    expire_at = _expire_at(REFRESH, parse_answer(REFRESH, answer))
    if expire_at is None:
        raise HookUnavailable(REFRESH, BAD_SHAPE, "result.expire_at is required")
    return expire_at


def message_body(payload: bytes, kind: int) -> dict[str, object]:
    """A message as the publish hook gets it: ``data`` (JSON), ``text`` or ``binary``."""
    if kind == JSON:
        return {"data": parse_json(payload, exact=True)}
    if kind == TEXT:
        return {"text": payload.decode()}
    assert kind == BINARY
    return {"binary": base64.b64encode(payload).decode()}


def connect_request(
    *,
    transport: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    forward: Iterable[str],
    subprotocol: str | None,
    remote_addr: str | None,
) -> dict[str, object]:
    """The connect hook's request: the forwarded headers (``--proxy-header``, by their
    lower-case names; repeated ones joined with ", "), the path and query of ``target``,
    the subprotocol offered, the remote address and the transport (``ws`` or ``sse``)."""
    wanted = {name.lower() for name in forward}
    forwarded: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in wanted:
            forwarded[low] = f"{forwarded[low]}, {value}" if low in forwarded else value
    path, _, query = target.partition("?")
    return {
        "transport": transport,
        "path": path,
        "query": query,
        "headers": forwarded,
        "subprotocol": subprotocol,
        "remote_addr": remote_addr,
    }
