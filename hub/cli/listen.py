"""``hub listen``: print what arrives on a channel, one line per message, across restarts."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from hub.cli.connecting import reporting, tls_context
from hub.cli.output import say
from hub.client import Client, ClientError, Discontinuity, Message, Position
from hub.core.errors import InvalidChannel
from hub.core.jsontext import dump_json

__all__ = ["DEFAULT_URL", "format_message", "listen_command", "parse_since"]

DEFAULT_URL = "ws://127.0.0.1:8765"


def parse_since(text: str) -> Position:
    """``EPOCH:OFFSET`` (as ``hub listen --json`` and the history API print them)."""
    epoch, sep, offset = text.rpartition(":")
    if not sep or not epoch or not offset.isdigit():
        raise ValueError(f"--since {text!r}: use EPOCH:OFFSET, e.g. a1b2c3d4:41")
    return Position(epoch, int(offset))


def format_message(message: Message, *, as_json: bool) -> str:
    """One line: the payload (JSON compact, text with its newlines escaped as JSON does,
    binary in base64), or with ``as_json`` the whole delivery as one JSON object."""
    if as_json:
        line: dict[str, Any] = {"channel": message.channel}
        if message.offset:
            line["epoch"], line["offset"] = message.epoch, message.offset
        if message.kind == "binary":
            line["binary"] = base64.b64encode(message.binary or b"").decode()
        else:
            line[message.kind if message.kind == "text" else "data"] = message.value
        return dump_json(line).decode()
    if message.kind == "json":
        return dump_json(message.data).decode()
    if message.kind == "binary":
        return base64.b64encode(message.binary or b"").decode()
    text = message.text or ""
    return text if "\n" not in text and "\r" not in text else dump_json(text).decode()


def _warn(text: str) -> None:
    print(f"hub listen: {text}", file=sys.stderr, flush=True)


async def _listen(args: argparse.Namespace, since: Position | None) -> int:
    urls = args.url or [DEFAULT_URL]
    token = args.token or os.environ.get("HUB_TOKEN") or None
    get_token = _token_command(args.token_command) if args.token_command else None
    tls_context(args.ca_file, args.insecure)  # a CA file that does not load: said, naming the flag
    count = 0
    client = Client(
        urls,
        token=token,
        get_token=get_token,
        backoff_max_s=args.backoff_max_s,
        ca_file=args.ca_file,
        insecure=args.insecure,
    )
    _warn(f"connecting to {', '.join(urls)}")
    with reporting("listen") as failures:
        async with client:
            try:
                async with asyncio.timeout(args.timeout or None):
                    sub = await client.subscribe(args.channel, since=since)
            except TimeoutError:
                why = failures.last or "no answer"
                _warn(f"gave up after {args.timeout:g} s (--timeout): {why}")
                return 1
            except ClientError as exc:
                _warn(f"cannot subscribe: {exc}")
                return 1
            _warn(f"subscribed to {sub.channel} on {client.url or urls[0]}")
            while args.count is None or count < args.count:
                try:
                    message = await anext(sub)
                except Discontinuity as exc:
                    _warn(str(exc))
                    continue
                except (ClientError, StopAsyncIteration) as exc:
                    _warn(f"stopped: {exc}")
                    return 1
                if not say(format_message(message, as_json=args.json)):
                    return 0  # the reader has gone (| head -n 3): it has what it wanted
                count += 1
    return 0


def _token_command(command: str) -> Callable[[], Awaitable[str]]:
    """get_token from a shell command that prints a JWT (``hub token …``, a vault CLI)."""

    async def run() -> str:
        proc = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"--token-command exited {proc.returncode}: {err.decode()[-300:]}")
        return out.decode().strip()

    return run


def listen_command(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
        return asyncio.run(_listen(args, since))
    except (ValueError, InvalidChannel) as exc:
        _warn(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
