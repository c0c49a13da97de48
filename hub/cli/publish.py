"""``hub publish``: one message into a channel, through Redis (hub.client.Publisher), a hub's
WebSocket (hub.client.Client) or its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.brokers.redispy import names_for, sync_client
from hub.cli.connecting import describe_failure, reporting, tls_context
from hub.cli.output import counted, say
from hub.client import Client, ClientError, NotConnected, Publisher
from hub.core.channels import validate
from hub.core.config import Settings
from hub.core.envelope import BINARY, JSON, TEXT
from hub.core.errors import InvalidChannel, ProtocolError, redact_url
from hub.core.jsontext import parse_json
from hub.core.protocol import message_from_body

__all__ = ["publish_command"]

_KINDS = {"text": TEXT, "json": JSON, "binary": BINARY}
_CONTENT_TYPES = {
    TEXT: "text/plain; charset=utf-8",
    JSON: "application/json",
    BINARY: "application/octet-stream",
}


def _fail(message: str, status: int = 2) -> int:
    """Say why, on stderr; status 2 for what the command was given, 1 for a hub, an API or a
    Redis that cannot be reached or refuses."""
    print(f"hub publish: {message}", file=sys.stderr)
    return status


def publish_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        channel = validate(args.channel)
        tls = tls_context(args.ca_file, args.insecure)
    except (InvalidChannel, ValueError) as exc:
        return _fail(str(exc))
    kind = _KINDS[args.kind]
    body = sys.stdin.buffer.read() if args.message == "-" else args.message.encode()
    try:
        payload = message_from_body(body, kind).payload
    except ProtocolError as exc:
        return _fail(f"--kind {args.kind}: {exc.message}")
    if args.api:
        key = args.api_key or settings.api_key
        return _via_api(args.api, key, channel, payload, kind, tls=tls, timeout_s=args.timeout)
    if args.url:
        token = args.token or os.environ.get("HUB_TOKEN") or None
        return asyncio.run(
            _via_websocket(
                args.url, token, channel, payload, kind, args.ca_file, args.insecure, args.timeout
            )
        )
    url = args.redis or settings.redis_url
    if not url:
        return _fail(
            "say where to publish: --redis URL (or HUB_REDIS_URL), --url ws://HOST:PORT, "
            "or --api URL"
        )
    prefix = args.channel_prefix if args.channel_prefix is not None else settings.channel_prefix
    publisher = Publisher(
        url,
        channel_prefix=prefix,
        rules=settings.channel_rules(),
        socket_timeout_s=args.timeout or _REDIS_TIMEOUT_S,
    )
    # Which channels keep history is in the hubs' configuration; without it, this command
    # cannot know, so it looks for the channel's history in Redis before a plain PUBLISH.
    knows_history = settings.config is not None or "HUB_HISTORY_SIZE" in os.environ
    return _via_redis(publisher, channel, payload, kind, knows_history=knows_history)


#: Redis's connect and answer timeout with --timeout 0.
_REDIS_TIMEOUT_S: Final = 10.0


def _via_redis(
    publisher: Publisher, channel: str, payload: bytes, kind: int, *, knows_history: bool
) -> int:
    """PUBLISH, or on a history channel the history script, so the message gets its offset."""
    import redis

    plain = not publisher.rules.options_for(channel).has_history
    try:
        with publisher:
            if plain and not knows_history and _has_history_in_redis(publisher, channel):
                return _fail(
                    f"Redis holds a history for {channel}: the hubs keep one, and this command "
                    "does not know its options. Pass the hubs' config file (--config FILE or "
                    "HUB_CONFIG), or publish through a hub (--url, --api). Nothing was published."
                )
            done = publisher.publish_encoded(channel, payload, kind)
    except redis.RedisError as exc:
        return _fail(f"cannot publish through {redact_url(publisher.redis_url)}: {exc}", 1)
    if done.offset is not None:
        say(f"published to {channel} at offset {done.offset}")
        return 0
    subscribed = counted(done.receivers or 0, "hub process", "hub processes")
    say(f"published to {channel} ({subscribed} subscribed)")
    if plain and not knows_history:
        print(
            f"hub publish: {channel} was published without history: with no --config (or "
            "HUB_CONFIG) this command knows of no history channel",
            file=sys.stderr,
        )
    return 0


def _has_history_in_redis(publisher: Publisher, channel: str) -> bool:
    """Whether Redis holds the history keys of ``channel`` (a hub stored some there)."""
    client = sync_client(
        publisher.redis_url,
        socket_timeout=_REDIS_TIMEOUT_S,
        socket_connect_timeout=_REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        names = names_for(publisher.redis_url, publisher.channel_prefix)
        return bool(client.exists(*names.history_keys(channel)))
    finally:
        client.close()


async def _via_websocket(
    urls: list[str],
    token: str | None,
    channel: str,
    payload: bytes,
    kind: int,
    ca_file: str | None,
    insecure: bool,
    timeout_s: float,
) -> int:
    """As a hub.v1 client: the hub checks the token's right to publish, as for any client."""
    fields: dict[str, Any] = (
        {"data": parse_json(payload)}
        if kind == JSON
        else {"text": payload.decode()}
        if kind == TEXT
        else {"binary": payload}
    )
    where = ", ".join(urls)
    with reporting("publish") as failures:
        try:
            client = Client(
                urls,
                token=token,
                ca_file=ca_file,
                insecure=insecure,
                backoff_max_s=1.0,
                connect_timeout_s=min(timeout_s, 10.0) if timeout_s else 10.0,
                publish_timeout_s=timeout_s or 1e9,
            )
        except ValueError as exc:
            return _fail(f"cannot publish through {where}: {exc}")
        try:
            async with asyncio.timeout(timeout_s or None), client:
                await client.publish(channel, **fields)
        except (NotConnected, TimeoutError):
            why = failures.last or "no answer in time"
            return _fail(
                f"cannot publish through {where}: gave up after {timeout_s:g} s (--timeout): {why}",
                1,
            )
        except ClientError as exc:
            return _fail(f"cannot publish through {where}: {exc}", 1)
    say(f"published to {channel}")
    return 0


def _via_api(
    base: str,
    key: str | None,
    channel: str,
    payload: bytes,
    kind: int,
    *,
    tls: ssl.SSLContext | None,
    timeout_s: float,
) -> int:
    url = base.rstrip("/") + "/api/publish/" + urllib.parse.quote(channel, safe="/:")
    headers = {"Content-Type": _CONTENT_TYPES[kind]}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s or None, context=tls) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        return _fail(f"the API answered {exc.code}: {detail}", 1)
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = describe_failure(reason) if isinstance(reason, BaseException) else str(reason)
        return _fail(f"cannot reach {base}: {why}", 1)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot reach {base}: {describe_failure(exc)}", 1)
    say(body.decode(errors="replace"))
    return 0
