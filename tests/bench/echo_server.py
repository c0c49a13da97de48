"""A minimal websockets echo server, not hub: each frame goes back to its sender. It appends
the path (with query) and the Authorization header of each upgrade to --log, one JSON line
per connection, so that tests see what the bench sent. With --cert/--key it serves wss://;
with --close it closes each socket right after the upgrade; --twice sends each frame back
twice (duplicates), --swap sends them back in pairs, the second first (reordering)."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl

from websockets.asyncio.server import ServerConnection, serve


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("--swap", action="store_true")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    log = open(args.log, "a", encoding="utf-8")

    async def echo(ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        entry = {"path": request.path, "authorization": request.headers.get("Authorization")}
        log.write(json.dumps(entry) + "\n")
        log.flush()
        if args.close:
            await ws.close()
            return
        held = None
        async for message in ws:
            if args.swap and held is None:
                held = message
                continue
            await ws.send(message)
            if args.twice:
                await ws.send(message)
            if held is not None:
                await ws.send(held)
                held = None

    async with serve(echo, "127.0.0.1", args.port, ssl=context):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
