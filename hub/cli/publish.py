"""``hub publish``: one message into a channel, through Redis (hub.client.Publisher), a hub's
WebSocket (hub.client.Client) or its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hub.client import Client, ClientError, Publisher
from hub.core.channels import validate
from hub.core.config import Settings
from hub.core.envelope import BINARY, JSON, TEXT
from hub.core.errors import InvalidChannel, ProtocolError
from hub.core.jsontext import parse_json
from hub.core.protocol import message_from_body

__all__ = ["publish_command"]

_KINDS = {"text": TEXT, "json": JSON, "binary": BINARY}
_CONTENT_TYPES = {
    TEXT: "text/plain; charset=utf-8",
    JSON: "application/json",
    BINARY: "application/octet-stream",
}


def _fail(message: str) -> int:
    print(f"hub publish: {message}", file=sys.stderr)
    return 2


def publish_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        channel = validate(args.channel)
    except InvalidChannel as exc:
        return _fail(str(exc))
    kind = _KINDS[args.kind]
    body = sys.stdin.buffer.read() if args.message == "-" else args.message.encode()
    try:
        payload = message_from_body(body, kind).payload
    except ProtocolError as exc:
        return _fail(f"--kind {args.kind}: {exc.message}")
    if args.api:
        key = args.api_key or settings.api_key
        return _via_api(args.api, key, channel, payload, kind)
    if args.url:
        token = args.token or os.environ.get("HUB_TOKEN") or None
        return asyncio.run(_via_websocket(args.url, token, channel, payload, kind))
    url = args.redis or settings.redis_url
    if not url:
        return _fail(
            "say where to publish: --redis URL (or HUB_REDIS_URL), --url ws://HOST:PORT, "
            "or --api URL"
        )
    prefix = args.channel_prefix if args.channel_prefix is not None else settings.channel_prefix
    return _via_redis(
        Publisher(url, channel_prefix=prefix, rules=settings.channel_rules()),
        channel,
        payload,
        kind,
    )


def _via_redis(publisher: Publisher, channel: str, payload: bytes, kind: int) -> int:
    """PUBLISH, or on a history channel the history script, so the message gets its offset."""
    import redis

    try:
        with publisher:
            done = publisher.publish_encoded(channel, payload, kind)
    except redis.RedisError as exc:
        return _fail(f"cannot publish through {publisher.redis_url}: {exc}")
    if done.offset is not None:
        print(f"published to {channel} at offset {done.offset}")
    else:
        print(f"published to {channel} ({done.receivers} hub processes subscribed)")
    return 0


async def _via_websocket(
    urls: list[str], token: str | None, channel: str, payload: bytes, kind: int
) -> int:
    """As a hub.v1 client: the hub checks the token's right to publish, as for any client."""
    fields: dict[str, Any] = (
        {"data": parse_json(payload)}
        if kind == JSON
        else {"text": payload.decode()}
        if kind == TEXT
        else {"binary": payload}
    )
    try:
        async with Client(urls, token=token, backoff_max_s=1.0) as client:
            await client.publish(channel, **fields)
    except (ClientError, ValueError) as exc:
        return _fail(f"cannot publish through {', '.join(urls)}: {exc}")
    print(f"published to {channel}")
    return 0


def _via_api(base: str, key: str | None, channel: str, payload: bytes, kind: int) -> int:
    url = base.rstrip("/") + "/api/publish/" + urllib.parse.quote(channel, safe="/:")
    headers = {"Content-Type": _CONTENT_TYPES[kind]}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        return _fail(f"the API answered {exc.code}: {detail}")
    except OSError as exc:
        return _fail(f"cannot reach {base}: {exc}")
    print(body.decode(errors="replace"))
    return 0
