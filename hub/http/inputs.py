"""What the HTTP API's handlers share: a channel name validated as hub.v1 validates it, a
request body that must be a JSON object, and the JSON body of a refusal."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from hub.core.channels import validate
from hub.core.errors import InvalidChannel, ProtocolError
from hub.core.jsontext import NonFiniteNumber, parse_json
from hub.core.protocol import BAD_CHANNEL, BAD_FIELD, BAD_JSON, BAD_REQUEST

__all__ = [
    "dashboard_origin",
    "dashboard_preflight",
    "error_answer",
    "json_object",
    "valid_channel",
]


def error_answer(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """``{"error": {"code", "message"}, ...extra}`` with ``status``."""
    body = {"error": {"code": code, "message": message}, **extra}
    return web.json_response(body, status=status)


def valid_channel(name: str) -> str:
    """``name`` if it is a channel name; raise ProtocolError(BAD_CHANNEL)."""
    try:
        return validate(name)
    except InvalidChannel as exc:
        raise ProtocolError(BAD_CHANNEL, str(exc)) from None


async def json_object(request: web.Request) -> dict[str, object]:
    """The request's body, which must be a JSON object; raise ProtocolError."""
    body = await request.read()
    try:
        obj = parse_json(body)
    except NonFiniteNumber as exc:
        raise ProtocolError(BAD_FIELD, str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(BAD_JSON, f"the body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_REQUEST, 'the body must be a JSON object, e.g. {"user": "alice"}')
    return obj


def dashboard_origin(request: web.Request, dashboard_port: int) -> str | None:
    """The request's Origin if it is the hub's own dashboard (http or https, the host this
    request was sent to, on ``dashboard_port``); else None."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    try:
        url, here = URL(origin), URL(f"http://{request.host}")
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or url.path not in ("", "/") or not url.host:
        return None
    if url.host != here.host or url.port != dashboard_port:
        return None
    return origin


def dashboard_preflight(origin: str) -> dict[str, str]:
    """The answer to the dashboard's preflight: it carries no key; the request itself must."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Allow-Methods": "GET, POST, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
    }
