"""``hub publish``: one message into a channel, through Redis or through the HTTP API."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from hub.core.channels import validate
from hub.core.config import Settings
from hub.core.envelope import BINARY, JSON, TEXT, encode_envelope
from hub.core.errors import InvalidChannel, ProtocolError
from hub.core.namespaces import ChannelOptions
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
    url = args.redis or settings.redis_url
    if not url:
        return _fail("say where to publish: --redis URL (or HUB_REDIS_URL), or --api URL")
    prefix = args.channel_prefix if args.channel_prefix is not None else settings.channel_prefix
    options = settings.channel_rules().options_for(channel)
    return _via_redis(url, prefix, channel, encode_envelope(payload, kind), options)


def _via_redis(
    url: str, prefix: str, channel: str, envelope: bytes, options: ChannelOptions
) -> int:
    """PUBLISH, or on a history channel the history script, so the message gets its offset."""
    import redis

    from hub.brokers.scripts import PUBLISH_SCRIPT, new_message_id, publish_args

    client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        if options.has_history:
            args = publish_args(
                prefix.encode(), channel, envelope, options, message_id=new_message_id()
            )
            offset = client.eval(PUBLISH_SCRIPT, *args)  # type: ignore[arg-type]
            print(f"published to {channel} at offset {offset}")
            return 0
        receivers = client.publish(prefix + channel, envelope)
    except redis.RedisError as exc:
        return _fail(f"cannot publish through {url}: {exc}")
    finally:
        client.close()
    print(f"published to {channel} ({receivers} hub processes subscribed)")
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
